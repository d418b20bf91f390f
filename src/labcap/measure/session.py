"""One measuring session, as ``labcap run`` and ``labcap demo`` ask for it
(``measure.settings.SessionSettings``).

``run_session`` checks the settings (every bad input fails before any work, in the
order the options are listed), builds the load plan, picks the scenario's default SLOs,
runs the preflight checks, calibrates the load generator, starts the reference lab where
asked, builds the collectors from the registry, runs the ladder or the adaptive search,
and plans the finished run.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from labcap.clients.kube import KubeTarget, connect
from labcap.collectors.dcgm import check_metrics_url
from labcap.collectors.docker import DockerSettings
from labcap.collectors.kubernetes import DEFAULT_SELECTOR, KubernetesSettings
from labcap.collectors.registry import CollectorSettings, build_collectors
from labcap.errors import LabcapError
from labcap.lab import ReferenceLab
from labcap.loadtests.catalog import SCENARIOS
from labcap.measure import calibrate as calibration
from labcap.measure.preflight import check_locustfile, check_out_dir, check_reachable
from labcap.measure.run import (
    Interrupted,
    Progress,
    RunRequest,
    RunResult,
    execute_run,
    resolve_scenario,
)
from labcap.measure.search import search_capacity
from labcap.measure.settings import TARGETS, SessionSettings
from labcap.model import (
    CANDIDATE_SIDE,
    SIDES,
    LoadPlan,
    build_plan,
    parse_duration,
    parse_user_steps,
)
from labcap.planner.capacity import CapacityPlan, plan_run
from labcap.planner.search_controller import SearchSettings
from labcap.slo import Slo, parse_slos

FALLBACK_SLOS = ("p95_ms=1000", "error_pct=1")  # a user locustfile's, which names none


@dataclass(frozen=True)
class SessionResult:
    run: RunResult
    plan: CapacityPlan  # the finished (or interrupted) run's capacity plan (paired: candidate's)
    side_plans: dict[str, CapacityPlan] | None = None  # a paired run: each side's plan


def run_session(settings: SessionSettings, progress: Progress) -> SessionResult:
    """Measure what ``settings`` describe and leave a finalised, planned run directory."""
    workers, kube = _check(settings)
    metrics_url = settings.gpu_metrics_url
    if metrics_url:
        metrics_url = check_metrics_url(metrics_url)  # bad URL: exit 2 before any work
    s = replace(settings, gpu_metrics_url=metrics_url)
    info = resolve_scenario(s.scenario)  # fail fast on a bad name, before starting anything
    plan = load_plan(s)
    slos = default_slos(s.slos, info["name"])
    hosts = _hosts(s)
    candidate_hosts = _candidate_hosts(s, plan)
    if s.target != "local":
        check_reachable(hosts)  # unreachable or malformed: one line, no run directory
        if candidate_hosts:
            check_reachable(candidate_hosts)
    if info.get("path"):
        check_locustfile(info["path"])
    out = s.out or default_out(s.out_prefix or info["name"].removesuffix(".py"))
    check_out_dir(out, overwrite=s.overwrite)  # before calibrating: one line, at once
    interrupt_on_sigterm()
    cal = calibrate_first(progress) if s.calibrate else None
    req = RunRequest(
        out=out,
        scenario=s.scenario,
        hosts=hosts,
        plan=plan,
        slos=slos,
        target=s.target,
        overwrite=s.overwrite,
        hub_password=_password(s),
        calibration=cal,
        workers=workers,
        candidate_hosts=candidate_hosts,
    )
    if s.target == "local":
        result = _run_on_reference_lab(req, s, progress)
    else:
        collectors = build_collectors(collector_settings(s), kube=kube, progress=progress)
        result = _execute(replace(req, collectors=collectors), s.max_users, progress)
    if candidate_hosts:  # each side's own plan; the gate compares them (labcap gate RUN)
        sides = {side: plan_run(str(result.path), side) for side in SIDES}
        return SessionResult(result, sides[CANDIDATE_SIDE], sides)
    return SessionResult(result, plan_run(str(result.path)))


def _check(s: SessionSettings) -> tuple[int, KubeTarget | None]:
    """The options' own checks, in the order they are listed; a bad kubeconfig or a dead API
    server also stops us here, before any work. Returns the worker count and the cluster."""
    if s.target not in TARGETS:
        raise LabcapError(f"--target {s.target!r}: choose one of {', '.join(TARGETS)}")
    if s.target in ("remote", "docker", "k8s") and not s.host:
        raise LabcapError("--host URL is required (or --target local for the reference lab)")
    if s.compose_project and s.target != "docker":
        raise LabcapError("--compose-project needs --target docker")
    workers = parse_workers(s.workers)
    if (s.users.strip() == "auto") != (s.max_users is not None):
        raise LabcapError("--users auto and --max-users N go together")
    if s.max_users is not None and not 1 <= s.max_users <= 100_000:
        raise LabcapError(f"--max-users {s.max_users}: use 1..100000")
    k8s = (s.kubeconfig, s.kube_context, s.namespaces, s.selector)
    if s.target != "k8s" and any(k8s):
        raise LabcapError("--kubeconfig, --context, --namespace and --selector need --target k8s")
    kube = connect(s.kubeconfig, s.kube_context) if s.target == "k8s" else None
    return workers, kube


def parse_workers(text: str) -> int:
    """``--workers N|auto``: Locust worker processes; auto is one per CPU core."""
    if text.strip() == "auto":
        return os.cpu_count() or 1
    if not text.strip().isdigit() or int(text) > 256:
        raise LabcapError(f"--workers {text!r}: use a whole number 0..256 or auto")
    return int(text)


def load_plan(s: SessionSettings) -> LoadPlan:
    """The step ladder (with ``users`` auto: the search's first step, whose timing it reuses)."""
    step_s = parse_duration(s.step_duration, what="--step-duration")
    settle_s = parse_duration(s.settle, what="--settle") if s.settle else round(step_s / 4, 3)
    return build_plan(
        (1,) if s.users.strip() == "auto" else parse_user_steps(s.users),
        step_s,
        settle_s=settle_s,
        window_s=parse_duration(s.window, what="--window"),
        spawn_rate=_positive(s.spawn_rate, "--spawn-rate"),
    )


def default_slos(given: tuple[str, ...], scenario_name: str) -> tuple[Slo, ...]:
    """The SLOs given, else the built-in scenario's own, else p95 1 s and 1 % errors."""
    if given:
        text = given
    elif scenario_name in SCENARIOS:
        text = SCENARIOS[scenario_name].default_slos
    else:
        text = FALLBACK_SLOS
    return parse_slos(text)


def collector_settings(s: SessionSettings) -> CollectorSettings:
    """The collectors a target calls for: the host and the GPUs always; the Docker engine
    with ``docker``, the cluster with ``k8s``."""
    extra = {"docker": ("docker",), "k8s": ("kubernetes",)}.get(s.target, ())
    return CollectorSettings(
        names=("host", *extra, "gpu"),
        gpu_mode=s.gpu_mode,
        gpu_metrics_url=s.gpu_metrics_url,
        docker=DockerSettings(compose_project=s.compose_project),
        kubernetes=KubernetesSettings(
            kubeconfig=s.kubeconfig,
            context=s.kube_context,
            namespaces=s.namespaces or ("default",),
            selector=DEFAULT_SELECTOR if s.selector is None else s.selector,
        ),
    )


def _candidate_hosts(s: SessionSettings, plan: LoadPlan) -> dict[str, str] | None:
    """A paired run's candidate hosts (None without --candidate-host); its own checks."""
    if s.candidate_mlflow_url and not s.candidate_host:
        raise LabcapError("--candidate-mlflow-url needs --candidate-host")
    if not s.candidate_host:
        return None
    if s.target == "local":
        raise LabcapError("--candidate-host needs --host (a paired run of two deployments)")
    if s.users.strip() == "auto":
        raise LabcapError("--candidate-host and --users auto do not go together: pair a ladder")
    odd = [st.users for st in plan.steps if st.users < 2 or st.users % 2]
    if odd:
        raise LabcapError(
            f"--users: a paired run puts half the users on each side, so every step needs an "
            f"even count of at least 2 (not {', '.join(map(str, odd))})"
        )
    if s.candidate_host.rstrip("/") == (s.host or "").rstrip("/"):
        raise LabcapError("--candidate-host is --host: a paired run needs two deployments")
    return {
        "default": s.candidate_host,
        "jupyterhub": s.candidate_host,
        "mlflow": s.candidate_mlflow_url or s.candidate_host,
    }


def _password(s: SessionSettings) -> str:
    return os.environ.get(s.hub_password_env, "") if s.hub_password is None else s.hub_password


def _hosts(s: SessionSettings) -> dict[str, str]:
    if not s.host or s.target == "local":
        return {}
    return {"default": s.host, "jupyterhub": s.host, "mlflow": s.mlflow_url or s.host}


def calibrate_first(progress: Progress) -> dict[str, Any]:
    """The generator's floor and ceiling on this machine, told on ``progress`` as measured."""
    progress("calibrating the load generator on this machine (--no-calibrate skips)")
    cal = calibration.calibrate()
    for line in calibration.describe(cal).splitlines():
        progress(line)
    return cal


def _run_on_reference_lab(req: RunRequest, s: SessionSettings, progress: Progress) -> RunResult:
    with _reference_lab(progress) as lab:
        req = replace(
            req,
            hosts={"jupyterhub": lab.hub_url, "mlflow": lab.mlflow_url, "default": lab.hub_url},
            hub_password=lab.hub_password,
            collectors=build_collectors(collector_settings(s), progress=progress),
            notes=("load generator and reference lab share this machine's CPU cores",),
        )
        result = _execute(req, s.max_users, progress)
        progress("stopping the reference lab")
    return result


@contextmanager
def _reference_lab(progress: Progress) -> Iterator[Any]:
    """The embedded lab in a temporary directory, removed afterwards (the run keeps the
    results)."""
    workdir = Path(tempfile.mkdtemp(prefix="labcap-lab-"))
    progress(f"starting the reference lab in {workdir}")
    with ReferenceLab(workdir, progress=progress) as lab:
        yield lab
    shutil.rmtree(workdir, ignore_errors=True)


def _execute(req: RunRequest, max_users: int | None, progress: Progress) -> RunResult:
    """One run of the plan, or (``users`` auto) the adaptive search's probes."""
    if not max_users:
        return execute_run(req, progress)
    step = req.plan.steps[0]
    return search_capacity(
        req,
        SearchSettings(max_users=max_users),
        step_s=step.duration_s,
        settle_s=step.settle_s,
        window_s=req.plan.window_s,
        spawn_rate=req.plan.spawn_rate,
        progress=progress,
    )


def interrupt_on_sigterm() -> None:
    """From here on SIGTERM takes Ctrl-C's path (``Interrupted`` is a KeyboardInterrupt)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupted)


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted()


def default_out(prefix: str) -> Path:
    """``runs/<prefix>-<timestamp>``: where a run goes when no --out is given."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{prefix}-{stamp}"


def _positive(value: float, name: str) -> float:
    if not value > 0:
        raise LabcapError(f"{name} must be greater than zero")
    return value
