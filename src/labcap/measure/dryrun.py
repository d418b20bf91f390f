"""``labcap run --dry-run``: the run as it would be made, every option resolved (flag >
LABCAP_* environment > labcap.toml > default), and nothing sent: no request reaches the
target, no run directory is written, no calibration or lab starts."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from labcap.errors import LabcapError
from labcap.measure.run import resolve_scenario
from labcap.measure.session import default_out, default_slos, load_plan, parse_workers
from labcap.measure.settings import TARGETS, SessionSettings
from labcap.redact import redact_url
from labcap.units import format_duration

SECRET_FIELDS = ("hub_password",)


@dataclass(frozen=True)
class ResolvedRun:
    """What ``labcap run`` would do with these settings, and where each option came from."""

    options: dict[str, Any]
    sources: dict[str, str]
    steps: tuple[int, ...] | str
    step_duration_s: float
    duration_s: float | None
    slos: tuple[str, ...]
    out: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "options": self.options,
            "sources": self.sources,
            "plan": {
                "users": list(self.steps) if isinstance(self.steps, tuple) else self.steps,
                "step_duration_s": self.step_duration_s,
                "duration_s": self.duration_s,
                "out": self.out,
            },
            "slos": list(self.slos),
        }

    def lines(self) -> list[str]:
        """The resolved plan as text: each option, its value and its source."""
        out = ["labcap run --dry-run: the resolved plan (nothing is sent)"]
        for name, value in self.options.items():
            shown = ",".join(map(str, value)) if isinstance(value, list) else value
            out.append(f"  {name:<18} {shown!s:<40} ({self.sources.get(name, 'default')})")
        users = self.steps if isinstance(self.steps, str) else ", ".join(map(str, self.steps))
        total = f"about {format_duration(self.duration_s)}" if self.duration_s else "adaptive"
        out.append(
            f"plan: users {users}, each held {format_duration(self.step_duration_s)}; {total}"
        )
        out.append(f"SLOs: {', '.join(self.slos)}")
        out.append(f"run directory: {self.out}")
        return out


def resolve_run(settings: SessionSettings, sources: dict[str, str]) -> ResolvedRun:
    """Check and resolve ``settings`` as ``labcap run`` would, without any network or disk."""
    s = settings
    if s.target not in TARGETS:
        raise LabcapError(f"--target {s.target!r}: choose one of {', '.join(TARGETS)}")
    if s.target != "local" and not s.host:
        raise LabcapError("--host URL is required (or --target local for the reference lab)")
    parse_workers(s.workers)
    info = resolve_scenario(s.scenario)
    plan = load_plan(s)
    auto = s.users.strip() == "auto"
    slos = default_slos(s.slos, info["name"])
    options = {}
    for f in fields(s):
        if "cli" not in f.metadata or f.name in SECRET_FIELDS:
            continue
        value = getattr(s, f.name)
        if isinstance(value, str) and f.name in ("host", "mlflow_url", "gpu_metrics_url"):
            value = redact_url(value)
        options[f.name] = list(value) if isinstance(value, tuple) else value
        if hasattr(options[f.name], "__fspath__"):
            options[f.name] = str(options[f.name])
    out = s.out or default_out(s.out_prefix or info["name"].removesuffix(".py"))
    return ResolvedRun(
        options=options,
        sources={k: v for k, v in sources.items() if k in options},
        steps=f"auto (up to {s.max_users})" if auto else tuple(st.users for st in plan.steps),
        step_duration_s=plan.steps[0].duration_s,
        duration_s=None if auto else plan.duration_s,
        slos=tuple(x.option_text for x in slos),
        out=str(out),
    )
