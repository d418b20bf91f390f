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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from labcap.clients.kube import KubeTarget, connect
from labcap.clients.mlflow import check_credentials
from labcap.collectors.dcgm import check_metrics_url
from labcap.collectors.docker import DockerSettings
from labcap.collectors.kubernetes import DEFAULT_SELECTOR, KubernetesSettings
from labcap.collectors.prometheus import check_prometheus
from labcap.collectors.registry import CollectorSettings, build_collectors
from labcap.errors import LabcapError
from labcap.lab import ReferenceLab
from labcap.loadtests.catalog import SCENARIOS
from labcap.loadtests.handshake import parse_address, read_secret
from labcap.loadtests.kernel_workloads import ENDPOINT as WORKLOAD_ENDPOINT
from labcap.loadtests.kernel_workloads import KernelWorkload, parse_workload
from labcap.measure import calibrate as calibration
from labcap.measure.hub_accounts import resolve_login
from labcap.measure.preflight import (
    check_locustfile,
    check_out_dir,
    check_reachable,
    check_url,
)
from labcap.measure.remote import RemoteWorkers
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
from labcap.model import CANDIDATE_SIDE, SIDES, LoadPlan, build_plan
from labcap.planner.capacity import CapacityPlan, plan_run
from labcap.planner.search_controller import SearchSettings
from labcap.slo import Slo, parse_slos
from labcap.units import parse_duration, parse_user_steps

FALLBACK_SLOS = ("p95_ms=1000", "error_pct=1")  # a user locustfile's, which names none


@dataclass(frozen=True)
class SessionResult:
    run: RunResult
    plan: CapacityPlan  # the finished (or interrupted) run's capacity plan (paired: candidate's)
    side_plans: dict[str, CapacityPlan] | None = None  # a paired run: each side's plan


def run_session(
    settings: SessionSettings,
    progress: Progress,
    watch: Callable[[Path], str | None] | None = None,
) -> SessionResult:
    """Measure what ``settings`` describe and leave a finalised, planned run directory.
    ``watch``: the run's live hook (``RunRequest.watch``; measure.live.LiveMonitor)."""
    workers, kube = _check(settings)
    remote = remote_workers(settings)
    metrics_url = settings.gpu_metrics_url
    if metrics_url:
        metrics_url = check_metrics_url(metrics_url)  # bad URL: exit 2 before any work
    s = replace(settings, gpu_metrics_url=metrics_url)
    info = resolve_scenario(s.scenario)  # fail fast on a bad name, before starting anything
    workload = check_kernel_workload(s.kernel_workload, info["name"])
    plan = load_plan(s)
    slos = default_slos(s.slos, info["name"], workload)
    hosts = _hosts(s)
    for url in sorted(set(hosts.values())):
        check_url(url, what="--mlflow-url" if url == s.mlflow_url != s.host else "--host")
    needs = info.get("needs", [])
    if s.target != "local" and {"jupyterhub", "mlflow"} <= set(needs) and not s.mlflow_url:
        raise LabcapError(
            f"--scenario {info['name']} needs --mlflow-url URL (MLflow's own URL, or its path "
            "behind the hub's proxy); --host is the hub's"
        )
    for flag, path in (("--users-file", s.users_file), ("--ca-bundle", s.ca_bundle)):
        if path and not Path(path).is_file():
            raise LabcapError(f"{flag} {path}: no such file")
    with _ca_bundle_env(s.ca_bundle):
        return _run_checked(
            s, info, plan, slos, hosts, workers, kube, progress, watch, workload, remote
        )


def _run_checked(
    s: SessionSettings,
    info: dict[str, Any],
    plan: LoadPlan,
    slos: tuple[Slo, ...],
    hosts: dict[str, str],
    workers: int,
    kube: KubeTarget | None,
    progress: Progress,
    watch: Callable[[Path], str | None] | None,
    workload: KernelWorkload | None,
    remote: RemoteWorkers | None,
) -> SessionResult:
    needs = info.get("needs", [])
    local = s.target == "local"
    candidate_hosts = _candidate_hosts(s, plan)
    if not local:
        check_reachable(hosts)  # unreachable or malformed: one line, no run directory
        if candidate_hosts:
            check_reachable(candidate_hosts)
    if s.prometheus_url:
        version = check_prometheus(s.prometheus_url)  # bad or silent: one line, exit 2
        progress(f"prometheus: {s.prometheus_url} (version {version})")
    hub = resolve_login(  # the reference lab's own token is used there (below)
        s.login,
        token_env=s.hub_token_env,
        users_file=s.users_file,
        uses_hub="jupyterhub" in needs and not local,
        hub_url=None if local else hosts.get("jupyterhub"),
    )
    if hub is not None and hub.login == "api":
        # each user's token outlives the planned run by 15 min (a search's length is unknown:
        # a day); the users, and their tokens with them, are deleted at the end anyway
        horizon_s = plan.duration_s if s.max_users is None else 86400
        hub = replace(hub, token_ttl_s=int(horizon_s) + 900)
    if not local and "mlflow" in needs and info["name"] in SCENARIOS:
        check_credentials(hosts["mlflow"])  # refused credentials: one line, exit 2
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
        watch=watch,
        kernel_workload=workload.to_dict() if workload else None,
        hub=hub,
        remote=remote,
        candidate_hosts=candidate_hosts,
    )
    if hub is not None and hub.login == "api":
        progress(f"hub accounts: {hub.prefix}-* through the hub's API (removed at the end)")
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


def remote_workers(s: SessionSettings) -> RemoteWorkers | None:
    """``--expect-workers N``: whom the master waits for, where, how long; None without it."""
    if not s.expect_workers:
        return None
    if not 1 <= s.expect_workers <= 256:
        raise LabcapError(f"--expect-workers {s.expect_workers}: use 1..256")
    if parse_workers(s.workers):
        raise LabcapError("--workers (local processes) and --expect-workers go separately")
    if s.target == "local":
        raise LabcapError(
            "--expect-workers needs a --host the workers reach (the reference lab of "
            "--target local listens on this machine's loopback only)"
        )
    host, port = parse_address(s.master_bind, what="--master-bind")
    wait_s = parse_duration(s.worker_wait, what="--worker-wait")
    return RemoteWorkers(s.expect_workers, host, port, wait_s, read_secret())


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


def default_slos(
    given: tuple[str, ...], scenario_name: str, workload: KernelWorkload | None = None
) -> tuple[Slo, ...]:
    """The SLOs given, else the built-in scenario's own, else p95 1 s and 1 % errors.

    A kernel workload's cell gets its own p95 bound by default (its own duration plus the
    first cell's 5 s): the scenario's 1 s for interactive calls would fail any real work."""
    if given:
        text = given
    elif scenario_name in SCENARIOS:
        text = SCENARIOS[scenario_name].default_slos
        if workload is not None:
            bound_ms = round(1000 * workload.expected_s + 5000)
            text = (*text, f"{WORKLOAD_ENDPOINT}:p95_ms={bound_ms}")
    else:
        text = FALLBACK_SLOS
    return parse_slos(text)


WORKLOAD_SCENARIOS = ("jupyterhub", "lab")


def check_kernel_workload(spec: str | None, scenario_name: str) -> KernelWorkload | None:
    """``--kernel-workload`` parsed; only the scenarios that run kernels take one."""
    if not spec:
        return None
    if scenario_name not in WORKLOAD_SCENARIOS:
        raise LabcapError(
            f"--kernel-workload needs --scenario {' or '.join(WORKLOAD_SCENARIOS)} "
            f"(scenario {scenario_name} runs no kernels)"
        )
    return parse_workload(spec)


def collector_settings(s: SessionSettings) -> CollectorSettings:
    """The collectors a target calls for: the host and the GPUs always; the Docker engine
    with ``docker``, the cluster with ``k8s``."""
    extra = {"docker": ("docker",), "k8s": ("kubernetes",)}.get(s.target, ())
    return CollectorSettings(
        names=("host", *extra, "gpu", *(("prometheus",) if s.prometheus_url else ())),
        gpu_mode=s.gpu_mode,
        gpu_metrics_url=s.gpu_metrics_url,
        prometheus_url=s.prometheus_url,
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
        hub = resolve_login(
            "form" if s.login == "auto" else s.login,
            token_env=s.hub_token_env,
            users_file=s.users_file,
            uses_hub=True,
            hub_url=lab.hub_url,
            token=lab.api_token,
        )
        req = replace(
            req,
            hosts={"jupyterhub": lab.hub_url, "mlflow": lab.mlflow_url, "default": lab.hub_url},
            hub=hub,
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


@contextmanager
def _ca_bundle_env(path: str | None) -> Iterator[None]:
    """``--ca-bundle``: REQUESTS_CA_BUNDLE for this run (every client and the engine read it)."""
    if not path:
        yield
        return
    before = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(Path(path).resolve())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = before


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
