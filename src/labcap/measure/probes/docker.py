"""Spawn-storm probe on a Docker engine: start N containers at once, time every phase.

The storms, the run directory and the table are the probe core's
(:mod:`labcap.measure.probes.core`); this back-end creates, starts and removes the
containers. The phase times come from
:class:`~labcap.collectors.docker.DockerCollector` (the engine's own timestamps),
so the probe only orchestrates.

The run directory is an ordinary labcap run: ``manifest.json`` (scenario
``probe-startup``, one step per concurrency level), ``startup_records``,
``container_samples`` and ``host_samples`` tables, and per-step window rows
in which each phase is an "endpoint" (``startup.ready``, ``startup.running``
...) holding the phase durations in the same HDR histograms as request
latencies, so ``labcap plan`` and ``labcap report`` read it unchanged.

Every container carries the label ``labcap.probe=<run id>`` and is removed by
that label in a ``finally``: on success, on Ctrl-C or SIGTERM, and on errors.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcap.collectors.base import RunContext, StartupRecord
from labcap.collectors.docker import (
    HTTP_PATH_LABEL,
    HTTP_PORT_LABEL,
    DockerCollector,
    DockerSettings,
    describe_unavailable,
    docker_host_description,
)
from labcap.errors import LabcapError, MissingExtraError
from labcap.measure.cleanup import MANAGED_BY, MANAGED_BY_LABEL, RUN_ID_LABEL
from labcap.measure.probes.core import (
    DEFAULT_SLOS,
    PROBE_LABEL,
    SCENARIO,
    Attempt,
    BackendTraits,
    ManifestParts,
    ProbeRefused,
    ProbeResult,
    Progress,
    Round,
    StartupRow,
    format_ms,
    new_run_id,
    not_ready_line,
    run_probe,
    startup_table,
    validate_common,
)

# The phases recorded as window "endpoints", in the order a container passes them.
PHASE_ENDPOINTS = ("started", "running", "healthy", "http_ready", "ready")

TRAITS = BackendTraits(
    target="docker",
    noun="containers",
    storm_verb="starting",
    cleanup_note="removing the probe's containers",
    lost_why="the engine was lost before it was ready",
    record_type=StartupRecord,
    fed_phases=PHASE_ENDPOINTS[:-1],
    missing_ready_via="running",
    missing_reason="the engine reported no create event for it (engine lost?)",
    tables=("container_samples",),
    samples_table="container_samples",
)


@dataclass(frozen=True)
class StartupProbeSettings:
    image: str = field(metadata={"help": "Image to start (must be present locally)."})
    concurrency: tuple[int, ...] = field(
        default=(1, 4, 8), metadata={"help": "Containers started at once, per step."}
    )
    repeat: int = field(default=1, metadata={"help": "Rounds per concurrency level."})
    command: tuple[str, ...] = field(
        default=(), metadata={"help": "Command (argv); {port} becomes the container's port."}
    )
    env: tuple[str, ...] = field(default=(), metadata={"help": "KEY=VALUE environment."})
    port: str | None = field(
        default=None,
        metadata={"help": "HTTP readiness port: a number, or auto (a free port each, as $PORT)."},
    )
    path: str = field(default="/", metadata={"help": "HTTP readiness path."})
    timeout_s: float = field(default=60.0, metadata={"help": "A container not ready by then."})
    interval_s: float = field(default=1.0, metadata={"help": "Resource sampling interval."})
    slos: tuple[str, ...] = field(default=DEFAULT_SLOS, metadata={"help": "Startup SLOs."})


def validate(settings: StartupProbeSettings) -> StartupProbeSettings:
    """Refuse impossible settings before anything starts."""
    validate_common(settings)
    if settings.port is not None and settings.port != "auto":
        if not settings.port.isdigit() or not 0 < int(settings.port) < 65536:
            raise LabcapError(f"--port {settings.port!r}: use a port number or auto")
        if max(settings.concurrency) > 1:
            raise LabcapError(
                "containers share the host's network, so each needs its own port: "
                "use --port auto (a free port each, passed as $PORT and {port} in --command)"
            )
    return settings


def run_startup_probe(
    settings: StartupProbeSettings,
    out: Path,
    *,
    client: Any | None = None,
    overwrite: bool = False,
    progress: Progress = lambda _msg: None,
) -> ProbeResult:
    """Run the probe and leave a finalised run directory in ``out``."""
    validate(settings)
    client = client or _client_from_env(max(settings.concurrency) + 8)
    backend = DockerProbe(settings, client, new_run_id())
    return run_probe(backend, settings, out, overwrite=overwrite, progress=progress)


def _client_from_env(pool: int) -> Any:
    try:
        import docker
    except ImportError:
        raise MissingExtraError("docker", "docker") from None
    try:
        client = docker.from_env(max_pool_size=pool)
        client.ping()
    except Exception as e:
        raise LabcapError(
            f"docker: {describe_unavailable(e, docker_host_description(None))}"
        ) from None
    return client


class DockerProbe:
    """The probe's Docker back-end: containers labelled with the run id, host networking."""

    traits = TRAITS

    def __init__(self, settings: StartupProbeSettings, client: Any, run_id: str) -> None:
        self.settings = settings
        self.client = client
        self.run_id = run_id
        self.collector = DockerCollector(
            DockerSettings(
                labels=(f"{PROBE_LABEL}={run_id}",),
                name_patterns=(),
                interval_s=settings.interval_s,
                ready_timeout_s=settings.timeout_s,
            ),
            client=client,
        )

    def manifest_parts(self) -> ManifestParts:
        return ManifestParts(
            scenario={"port": self.settings.port, "path": self.settings.path},
            hosts={"docker": docker_host_description(self.client)},
            note=(
                "each step starts its concurrency's containers at once, repeat times; phase "
                "times are seconds after each container's create event, from the engine's own "
                "timestamps (http_ready: labcap's clock, loopback)"
            ),
        )

    def start(self, ctx: RunContext) -> None:
        self.collector.start(ctx)
        status = self.collector.status()
        if not status.available:
            raise ProbeRefused(f"docker: {status.reason}", status.reason)

    def prepare(self, ctx: RunContext, progress: Progress) -> None:
        pass

    def creator(self, step_index: int, round_index: int, n: int) -> Callable[[int], Attempt]:
        auto = self.settings.port == "auto"
        ports = [_free_port() if auto else self.settings.port for _ in range(n)]

        def create(k: int) -> Attempt:
            name = f"labcap-probe-{self.run_id}-{step_index}-{round_index}-{k}"
            return self._create_and_start(name, ports[k], step_index)

        return create

    def _create_and_start(self, name: str, port: str | None, step_index: int) -> Attempt:
        import docker

        settings, client = self.settings, self.client
        env = dict(kv.split("=", 1) for kv in settings.env)
        labels = {
            PROBE_LABEL: self.run_id,
            "labcap.step": str(step_index),
            MANAGED_BY_LABEL: MANAGED_BY,  # labcap cleanup finds leftovers by these two
            RUN_ID_LABEL: self.run_id,
        }
        if port:
            env["PORT"] = port
            labels[HTTP_PORT_LABEL] = port
            labels[HTTP_PATH_LABEL] = settings.path
        command = [c.replace("{port}", port or "") for c in settings.command] or None

        def attempt(**kw: Any) -> Attempt:
            return Attempt(step_index, name, requested, image=settings.image, **kw)

        requested = time.time()
        try:
            cid = client.api.create_container(
                settings.image,
                command=command,
                environment=env,
                labels=labels,
                name=name,
                host_config=client.api.create_host_config(network_mode="host"),
            )["Id"]
        except docker.errors.ImageNotFound:
            why = (
                f"image {settings.image} not found locally "
                "(labcap never pulls: docker pull or docker load it first)"
            )
            return attempt(create_call_s=None, container_id=None, failure="pull-failed", reason=why)
        except Exception as e:
            return attempt(
                create_call_s=None,
                container_id=None,
                failure="create-failed",
                reason=_short(e),
                lost=_unreachable(e, client),
            )
        create_call_s = time.time() - requested
        self.collector.note_requested(cid, requested)
        try:
            client.api.start(cid)
        except Exception as e:
            self.collector.note_start_failed(cid, f"start failed: {_short(e)}")
            lost = _unreachable(e, client)
            return attempt(create_call_s=create_call_s, container_id=cid, lost=lost)
        return attempt(create_call_s=create_call_s, container_id=cid)

    def remove(self, step_index: int, round_index: int, ids: list[str]) -> None:
        _remove(self.client, ids)

    def lost(self) -> bool:
        return self.collector.engine_lost

    def lost_after(self, last: Round) -> str:
        """Why the engine is gone, or "" while it still answers.

        The event stream notices a stopped daemon only when its connection drops,
        which can be after the daemon has stopped our containers; a ping after any
        round with failures (or a lost stream) settles it.
        """
        unreachable = [a.lost for a in last.attempts if a.lost]
        if unreachable:
            return f"lost the Docker engine during step {last.step_index + 1}: {unreachable[0]}"
        collector = self.collector
        failed = any(a.failure for a in last.attempts)
        exited = collector.startup_records()
        suspicious = failed or collector.engine_lost or any(r.outcome == "exited" for r in exited)
        if not suspicious:
            return ""
        try:
            self.client.ping()
            return ""
        except Exception as e:
            warnings = collector.status().warnings
            lost = [w for w in warnings if w.startswith("lost the Docker engine")]
            where = docker_host_description(self.client)
            return lost[0] if lost else f"lost the Docker engine: {describe_unavailable(e, where)}"

    def cleanup(self, progress: Progress) -> str:
        """Remove every container this probe created; a reason string if some may remain."""
        flt = {"label": f"{PROBE_LABEL}={self.run_id}"}
        try:
            ids = [c["Id"] for c in self.client.api.containers(all=True, filters=flt)]
            _remove(self.client, ids)
            left = self.client.api.containers(all=True, filters=flt)
        except Exception as e:
            return (
                f"could not remove the probe's containers ({_short(e)}); once the engine is "
                f"back: docker rm -f $(docker ps -aq --filter label={PROBE_LABEL}={self.run_id})"
            )
        if left:
            return (
                f"{len(left)} containers labelled {PROBE_LABEL}={self.run_id} could not be removed"
            )
        return ""

    def late_reasons(self, reasons: list[str]) -> list[str]:
        return []

    def probe_extra(self) -> dict[str, Any]:
        return {}

    def startup_table(self, records: Any, levels: tuple[int, ...]) -> tuple[StartupRow, ...]:
        return startup_table(records, levels)


def _unreachable(e: BaseException, client: Any) -> str:
    """Why the engine could not be reached at all when ``e`` says so, else ""."""
    import requests

    if isinstance(e, requests.exceptions.ConnectionError | ConnectionError | OSError):
        return describe_unavailable(e, docker_host_description(client))
    return ""


def _short(e: BaseException) -> str:
    text = getattr(e, "explanation", None) or str(e)
    return f"{type(e).__name__}: {text}"[:200]


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _remove(client: Any, ids: list[str]) -> None:
    def rm(cid: str) -> None:
        with contextlib.suppress(Exception):  # gone already, or the engine is: label sweep
            client.api.remove_container(cid, force=True, v=True)

    if ids:
        with ThreadPoolExecutor(max_workers=min(len(ids), 8)) as pool:
            list(pool.map(rm, ids))


def format_table(rows: tuple[StartupRow, ...]) -> str:
    """The table the CLI prints: startup percentiles versus concurrency."""
    ms = format_ms
    head = (
        f"{'concurrency':>11} {'started':>7} {'ready':>5}  {'create p50':>10}  "
        f"{'running p50':>11} {'p95':>6}  {'ready p50':>9} {'p95':>6} {'p99':>6} {'max':>6}  (ms)"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.concurrency:>11} {r.containers:>7} {r.ready:>5}  {ms(r.create_call_p50_ms):>10}  "
            f"{ms(r.running_p50_ms):>11} {ms(r.running_p95_ms):>6}  {ms(r.ready_p50_ms):>9} "
            f"{ms(r.ready_p95_ms):>6} {ms(r.ready_p99_ms):>6} {ms(r.ready_max_ms):>6}"
        )
        if bad := not_ready_line(r):
            lines.append(bad)
    return "\n".join(lines)


__all__ = [
    "DEFAULT_SLOS",
    "PROBE_LABEL",
    "SCENARIO",
    "DockerProbe",
    "ProbeResult",
    "StartupProbeSettings",
    "StartupRow",
    "format_table",
    "run_startup_probe",
    "startup_table",
    "validate",
]
