"""The ``labcap`` command. Thin: each command parses, calls one library function, prints.

Data goes to stdout, progress and logs to stderr. Errors the user can fix
are ``LabcapError``s, turned into one stderr line and an exit code here and
nowhere else: 2 for bad input or an unreachable target, 1 for a failed run,
130 when interrupted.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from labcap import __version__
from labcap.errors import LabcapError

DEFAULT_STEPS = "5,10,20"


def _progress(msg: str) -> None:
    click.echo(f"labcap: {msg}", err=True)


def _raise_interrupted(signum: int, frame: Any) -> None:
    from labcap.runner import Interrupted

    raise Interrupted()


class _Group(click.Group):
    """Turns LabcapError into one line on stderr and its exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # click's own usage errors print "Usage: ... Error: ..." over several lines; every
        # error labcap reports is one line on stderr (issue 9), so they are caught here too.
        if kwargs.get("standalone_mode", True) is False:
            return super().main(*args, **kwargs)
        try:
            rv = super().main(*args, **dict(kwargs, standalone_mode=False))
        except click.ClickException as e:
            where = f"{e.ctx.command_path}: " if getattr(e, "ctx", None) else ""
            hint = " (see --help)" if isinstance(e, click.UsageError) else ""
            message = " ".join(e.format_message().split())
            click.echo(f"labcap: error: {where}{message}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("labcap: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LabcapError as e:
            click.echo(f"labcap: error: {' '.join(str(e).split())}", err=True)
            ctx.exit(e.exit_code)
        except OSError as e:  # disk full, permission denied: the environment, not a bug
            where = f"{e.filename}: " if e.filename else ""
            click.echo(f"labcap: error: {where}{e.strerror or e}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("labcap: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="labcap")
def cli() -> None:
    """Measure how many concurrent users your AI lab (JupyterHub + MLflow) holds
    within its latency objectives, and decide: stay on Docker Compose or move to K3s.

    \b
    Start here:
      labcap demo                      # reference lab + short step load + report
      labcap run --host URL --scenario mlflow --users 10,25,50
      labcap plan runs/NAME --json     # capacity, per-step verdicts
      labcap report runs/NAME          # self-contained HTML

    Exit codes: 0 ok, 1 run failed, 2 bad input or unreachable target, 130 interrupted;
    `labcap gate`: 0 pass, 1 regression, 2 usage error, 3 inconclusive.
    """


def _kube_target_options(f: Any) -> Any:
    """--kubeconfig and --context of a command's ``--target k8s``."""
    f = click.option("--context", "kube_context", default=None, help="With --target k8s: context.")(
        f
    )
    return click.option(
        "--kubeconfig",
        default=None,
        metavar="FILE",
        help="With --target k8s: kubeconfig [default: $KUBECONFIG, ~/.kube/config, then "
        "/etc/rancher/k3s/k3s.yaml].",
    )(f)


def _load_options(f: Any) -> Any:
    options = [
        click.option(
            "--slo",
            "slos",
            multiple=True,
            metavar="EXPR",
            help="Objective, repeatable: p95_ms=500, error_pct=1, or per endpoint "
            "hub.spawn_ready:p95_ms=15000. Default: the scenario's own.",
        ),
        click.option(
            "--step-duration",
            default="60s",
            show_default=True,
            help="How long each user count is held (e.g. 30s, 2m).",
        ),
        click.option(
            "--settle",
            default=None,
            help="Start of each step excluded from its statistics "
            "[default: a quarter of the step].",
        ),
        click.option(
            "--window",
            default="5s",
            show_default=True,
            help="Aggregation window for latency histograms.",
        ),
        click.option(
            "--spawn-rate",
            default=5.0,
            show_default=True,
            type=float,
            help="Users started per second when a step begins.",
        ),
        click.option(
            "--out",
            type=click.Path(path_type=Path),
            default=None,
            help="Run directory [default: runs/<scenario>-<timestamp>].",
        ),
        click.option("--overwrite", is_flag=True, help="Replace a run already in --out."),
        click.option(
            "--calibrate/--no-calibrate",
            "calibrate",
            default=True,
            show_default=True,
            help="First measure the load generator's own latency floor and throughput "
            "ceiling here (about 5 s, see `labcap calibrate`); kept in the manifest, shown "
            "beside the measured latencies, and no SLO breach within that floor is called.",
        ),
        click.option(
            "--json", "as_json", is_flag=True, help="Print the capacity plan as JSON on stdout."
        ),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


@cli.command()
@click.option(
    "--host",
    default=None,
    metavar="URL",
    help="Base URL of the deployment (JupyterHub's public URL, or MLflow's).",
)
@click.option(
    "--mlflow-url",
    default=None,
    metavar="URL",
    help="MLflow's URL when it differs from --host (scenario lab).",
)
@click.option(
    "--scenario",
    default="lab",
    show_default=True,
    help="jupyterhub, mlflow, lab (both), or a path to your own locustfile.py (for plain "
    "HTTP/1.1 APIs, subclass labcap.loadtests.users.WireHttpUser: timed to the kernel's "
    "receipt of each answer).",
)
@click.option(
    "--target",
    type=click.Choice(["remote", "local", "docker", "k8s"]),
    default="remote",
    show_default=True,
    help="local: start the embedded reference lab and measure it. docker: also record "
    "container startups and resources from the Docker engine (DOCKER_HOST). k8s: also "
    "record pod startup phases, scheduling conflicts and node inventory from Kubernetes/K3s.",
)
@_kube_target_options
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    metavar="NS",
    help="With --target k8s: namespace whose pods are watched, repeatable [default: default].",
)
@click.option(
    "--selector",
    default=None,
    metavar="LABELS",
    help="With --target k8s: pods to follow [default: component=singleuser-server, "
    "KubeSpawner's user pods].",
)
@click.option(
    "--compose-project",
    default=None,
    metavar="NAME",
    help="With --target docker: watch this Compose project's containers (by label).",
)
@click.option(
    "--users",
    default=DEFAULT_STEPS,
    show_default=True,
    help="Concurrent users per step, comma separated; or auto: search for the capacity "
    "adaptively up to --max-users (grow x2, then narrow the bracket at the knee the "
    "operational laws estimate; each probe one step, ended once its verdict is clear).",
)
@click.option(
    "--max-users",
    type=int,
    default=None,
    help="With --users auto: the largest user count the search may probe.",
)
@click.option(
    "--hub-password-env",
    default="LABCAP_HUB_PASSWORD",
    show_default=True,
    help="Environment variable holding the JupyterHub password for the test users.",
)
@click.option(
    "--gpu",
    "gpu_mode",
    type=click.Choice(["auto", "nvml", "none"]),
    default="auto",
    show_default=True,
    help="GPU sampling through NVML on this machine: auto (when a GPU is found), nvml "
    "(always; recorded as unavailable, with the reason, where there is none), none.",
)
@click.option(
    "--gpu-metrics-url",
    default=None,
    metavar="URL",
    help="Also scrape NVIDIA dcgm-exporter's Prometheus metrics (e.g. "
    "http://NODE:9400/metrics): per-GPU, MIG-instance and pod GPU use on the lab's nodes.",
)
@click.option(
    "--workers",
    default="0",
    show_default=True,
    metavar="N|auto",
    help="Locust worker processes on this machine (Locust's own master/worker mode, "
    "127.0.0.1 only); auto = one per CPU core; 0 = a single process.",
)
@_load_options
def run(
    host: str | None,
    mlflow_url: str | None,
    scenario: str,
    target: str,
    compose_project: str | None,
    users: str,
    hub_password_env: str,
    workers: str,
    max_users: int | None,
    gpu_mode: str,
    gpu_metrics_url: str | None,
    **opts: Any,
) -> None:
    """Run a step-load capacity test and write a run directory.

    Users grow through --users, each count held for --step-duration. Every
    request lands in per-endpoint, per-window latency histograms; the run
    directory (manifest.json + Parquet tables) is what plan and report read.

    \b
    Examples:
      labcap run --target local --users 5,10,20 --step-duration 30s
      LABCAP_HUB_PASSWORD=... labcap run --host http://127.0.0.1:8000 \\
          --scenario jupyterhub --users 10,25,50 --slo p95_ms=800
      labcap run --host URL --gpu nvml --gpu-metrics-url http://127.0.0.1:9400/metrics
      labcap run --target k8s --namespace jhub --host https://hub.example.org \\
          --scenario jupyterhub --users 10,25,50
    """
    import os

    if target in ("remote", "docker", "k8s") and not host:
        raise LabcapError("--host URL is required (or --target local for the reference lab)")
    if compose_project and target != "docker":
        raise LabcapError("--compose-project needs --target docker")
    opts["compose_project"] = compose_project
    opts["workers"] = _workers(workers)
    if (users.strip() == "auto") != (max_users is not None):
        raise LabcapError("--users auto and --max-users N go together")
    if max_users is not None and not 1 <= max_users <= 100_000:
        raise LabcapError(f"--max-users {max_users}: use 1..100000")
    opts["max_users"] = max_users
    k8s = {k: opts.pop(k) for k in ("kubeconfig", "kube_context", "namespaces", "selector")}
    if target != "k8s" and any(k8s.values()):
        raise LabcapError("--kubeconfig, --context, --namespace and --selector need --target k8s")
    if target == "k8s":  # a bad kubeconfig or a dead API server stops us before any work
        from labcap.collectors.kubernetes import connect

        k8s["target"] = connect(k8s["kubeconfig"], k8s["kube_context"])
    opts["k8s"] = k8s
    if gpu_metrics_url:
        from labcap.collectors.dcgm import check_metrics_url

        gpu_metrics_url = check_metrics_url(gpu_metrics_url)  # bad URL: exit 2 before any work
    opts["gpu_mode"], opts["gpu_metrics_url"] = gpu_mode, gpu_metrics_url
    hosts = {}
    if host:
        hosts = {"default": host, "jupyterhub": host, "mlflow": mlflow_url or host}
    password = os.environ.get(hub_password_env, "")
    _run_and_print(scenario, target, users, hosts, password, opts)


@cli.command()
@click.option(
    "--steps", default=DEFAULT_STEPS, show_default=True, help="Concurrent users per step."
)
@click.option(
    "--step-duration", default="20s", show_default=True, help="How long each step is held."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Run directory [default: runs/demo-<timestamp>].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the capacity plan as JSON.")
def demo(steps: str, step_duration: str, out: Path | None, as_json: bool) -> None:
    """Start the embedded reference lab, run a short step load, write the report.

    The lab is real: JupyterHub (with its proxy and single-user servers) and an
    MLflow tracking server, on loopback ports. The figure describes this
    machine, where the load generator shares the CPU with the lab.
    """
    opts = {
        "slos": (),
        "step_duration": step_duration,
        "settle": None,
        "window": "5s",
        "spawn_rate": 5.0,
        "out": out,
        "overwrite": False,
        "as_json": as_json,
    }
    result = _run_and_print("lab", "local", steps, {}, "", opts, prefix="demo")
    from labcap.reports.html import write_run_report

    report = write_run_report(result.path)
    _progress(f"report: {report}")


def _run_and_print(
    scenario: str,
    target: str,
    users: str,
    hosts: dict[str, str],
    password: str,
    opts: dict[str, Any],
    prefix: str | None = None,
) -> Any:
    from labcap.loadtests.catalog import SCENARIOS
    from labcap.model import build_plan, parse_duration, parse_slo, parse_user_steps
    from labcap.planner.capacity import plan_run
    from labcap.runner import RunRequest, resolve_scenario

    info = resolve_scenario(scenario)  # fail fast on a bad name, before starting anything
    step_s = parse_duration(opts["step_duration"], what="--step-duration")
    settle_s = (
        parse_duration(opts["settle"], what="--settle") if opts["settle"] else round(step_s / 4, 3)
    )
    plan = build_plan(
        (1,) if users.strip() == "auto" else parse_user_steps(users),
        step_s,
        settle_s=settle_s,
        window_s=parse_duration(opts["window"], what="--window"),
        spawn_rate=_positive(opts["spawn_rate"], "--spawn-rate"),
    )
    slo_text = opts["slos"] or (
        SCENARIOS[info["name"]].default_slos
        if info["name"] in SCENARIOS
        else ("p95_ms=1000", "error_pct=1")
    )
    slos = tuple(parse_slo(s) for s in slo_text)
    from labcap.preflight import check_locustfile, check_out_dir, check_reachable

    if target != "local":
        check_reachable(hosts)  # unreachable or malformed: one line, no run directory
    if info.get("path"):
        check_locustfile(info["path"])
    out = opts["out"] or _default_out(prefix or info["name"].removesuffix(".py"))
    check_out_dir(out, overwrite=opts["overwrite"])  # before calibrating: one line, at once
    signal.signal(signal.SIGTERM, _raise_interrupted)
    calibration = _calibrate_first() if opts.get("calibrate", True) else None
    if target == "local":
        result = _run_on_reference_lab(out, scenario, plan, slos, opts, calibration)
    else:
        req = RunRequest(
            out=out,
            scenario=scenario,
            hosts=hosts,
            plan=plan,
            slos=slos,
            target=target,
            overwrite=opts["overwrite"],
            hub_password=password,
            collectors=_default_collectors()
            + _docker_collectors(target, opts)
            + _k8s_collectors(target, opts)
            + _gpu_collectors(opts),
            calibration=calibration,
            workers=opts.get("workers", 0),
        )
        result = _execute(req, opts)
    plan_result = plan_run(str(result.path))
    if opts["as_json"]:
        click.echo(json.dumps(plan_result.to_dict(), indent=2))
    else:
        click.echo(plan_result.verdict)
        click.echo(f"run directory: {result.path}")
    if result.interrupted:
        _progress(f"interrupted: the {result.status} run in {result.path} keeps what was measured")
        sys.exit(130)
    return result


def _execute(req: Any, opts: dict[str, Any]) -> Any:
    """One run of the plan, or (--users auto) the adaptive search's probes."""
    from labcap.runner import execute_run

    if not opts.get("max_users"):
        return execute_run(req, _progress)
    from labcap.planner.search import SearchSettings, search_capacity

    step = req.plan.steps[0]
    return search_capacity(
        req,
        SearchSettings(max_users=opts["max_users"]),
        step_s=step.duration_s,
        settle_s=step.settle_s,
        window_s=req.plan.window_s,
        spawn_rate=req.plan.spawn_rate,
        progress=_progress,
    )


def _workers(text: str) -> int:
    import os

    if text.strip() == "auto":
        return os.cpu_count() or 1
    if not text.strip().isdigit() or int(text) > 256:
        raise LabcapError(f"--workers {text!r}: use a whole number 0..256 or auto")
    return int(text)


def _calibrate_first() -> dict[str, Any]:
    from labcap.calibrate import calibrate, describe

    _progress("calibrating the load generator on this machine (--no-calibrate skips)")
    cal = calibrate()
    for line in describe(cal).splitlines():
        _progress(line)
    return cal


def _run_on_reference_lab(
    out: Path,
    scenario: str,
    plan: Any,
    slos: Any,
    opts: dict[str, Any],
    calibration: dict[str, Any] | None = None,
) -> Any:
    from labcap.lab import ReferenceLab
    from labcap.runner import RunRequest

    workdir = Path(tempfile.mkdtemp(prefix="labcap-lab-"))
    _progress(f"starting the reference lab in {workdir}")
    with ReferenceLab(workdir, progress=_progress) as lab:
        req = RunRequest(
            out=out,
            scenario=scenario,
            hosts={"jupyterhub": lab.hub_url, "mlflow": lab.mlflow_url, "default": lab.hub_url},
            plan=plan,
            slos=slos,
            target="local",
            overwrite=opts["overwrite"],
            hub_password=lab.hub_password,
            collectors=_default_collectors() + _gpu_collectors(opts),
            notes=("load generator and reference lab share this machine's CPU cores",),
            calibration=calibration,
            workers=opts.get("workers", 0),
        )
        result = _execute(req, opts)
        _progress("stopping the reference lab")
    shutil.rmtree(workdir, ignore_errors=True)  # the run directory holds the results
    return result


def _default_collectors() -> tuple[Any, ...]:
    from labcap.collectors.host import HostCollector

    return (HostCollector(),)


def _gpu_collectors(opts: dict[str, Any]) -> tuple[Any, ...]:
    from labcap.collectors.gpu import gpu_collectors

    return tuple(gpu_collectors(opts.get("gpu_mode", "auto"), opts.get("gpu_metrics_url")))


def _k8s_collectors(target: str, opts: dict[str, Any]) -> tuple[Any, ...]:
    """The Kubernetes collector, connected first: a bad kubeconfig stops us before the load."""
    if target != "k8s":
        return ()
    from labcap.collectors.kubernetes import (
        DEFAULT_SELECTOR,
        KubernetesCollector,
        KubernetesSettings,
        connect,
    )

    k8s = opts["k8s"]
    kube = k8s.get("target") or connect(k8s["kubeconfig"], k8s["kube_context"])
    _progress(f"kubernetes: {kube.server} ({kube.version}), context {kube.context or '-'}")
    settings = KubernetesSettings(
        kubeconfig=kube.kubeconfig,
        context=kube.context or None,
        namespaces=tuple(k8s["namespaces"]) or ("default",),
        selector=DEFAULT_SELECTOR if k8s["selector"] is None else k8s["selector"],
    )
    return (KubernetesCollector(settings, api_client=kube.api_client),)


def _docker_collectors(target: str, opts: dict[str, Any]) -> tuple[Any, ...]:
    if target != "docker":
        return ()
    from labcap.collectors.docker import DockerCollector, DockerSettings

    return (DockerCollector(DockerSettings(compose_project=opts.get("compose_project"))),)


def _positive(value: float, name: str) -> float:
    if not value > 0:
        raise LabcapError(f"{name} must be greater than zero")
    return value


def _default_out(prefix: str) -> Path:
    import datetime as dt

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{prefix}-{stamp}"


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path),
    default=None,
    metavar="FILE",
    help="YAML policy merged over the default by rule id (change thresholds, disable or add "
    "rules).",
)
@click.option(
    "--expected-users", default=None, metavar="N", help="Concurrent users the lab expects."
)
@click.option(
    "--growth-per-month",
    default=None,
    metavar="PCT",
    help="Expected growth of those users, percent a month (for the projection).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(
    run_dir: Path,
    policy_file: Path | None,
    expected_users: str | None,
    growth_per_month: str | None,
    as_json: bool,
) -> None:
    """Capacity of a run, and what to do about it: stay on Compose, tune it, or move to K3s.

    Reads a run directory (complete or partial). The JSON output has
    capacity (max_users_at_slo, band, binding, per_slo, knee), steps[],
    projection, and recommendation (action, reasons[], binding_constraint,
    confidence). Without --expected-users the action is insufficient-data.
    """
    from labcap.planner.recommend import parse_expected_users, parse_growth, plan_and_recommend

    outcome = plan_and_recommend(
        run_dir,
        policy_file=policy_file,
        expected_users=parse_expected_users(expected_users),
        growth_pct_per_month=parse_growth(growth_per_month),
    )
    if as_json:
        click.echo(json.dumps(outcome.to_dict(), indent=2))
        return
    result, rec = outcome.capacity, outcome.recommendation
    click.echo(result.verdict)
    for s in result.steps:
        p95 = "–" if s.p95_ms is None else f"{s.p95_ms:.1f} ms"
        click.echo(
            f"  step {s.index + 1}: {s.users:>4} users  {s.verdict:<8} "
            f"{s.requests:>7} req  {s.error_pct:6.2f}% failed  p95 {p95}"
        )
    click.echo(f"recommendation: {rec.action} ({rec.confidence.level} confidence)")
    for r in rec.reasons:
        click.echo(f"  - [{r.rule}] {r.message}")
    if not rec.reasons:
        click.echo(f"  {rec.summary}")
    for why in rec.confidence.why:
        click.echo(f"  confidence: {why}")
    if outcome.projection.available:
        click.echo(f"projection: {outcome.projection.text}")
    if outcome.gpu is not None and outcome.gpu.available:
        click.echo(f"gpu: {outcome.gpu.summary()}")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="HTML file to write [default: RUN_DIR/report.html; compare.html for several runs].",
)
def report(run_dirs: tuple[Path, ...], output: Path | None) -> None:
    """Write a self-contained HTML report (opens offline; plotly inlined).

    \b
    One run: its capacity report.
    Several runs: a side-by-side comparison (Docker vs K3s, before vs after), the
    first run being the baseline, with a warning when they are not comparable:
      labcap report runs/docker runs/k3s -o compare.html
    """
    if len(run_dirs) == 1:
        from labcap.reports.html import write_run_report

        click.echo(str(write_run_report(run_dirs[0], output)))
        return
    from labcap.reports.compare import write_comparison

    click.echo(str(write_comparison(list(run_dirs), output or Path("compare.html"))))


@cli.command()
@click.argument("baseline", type=click.Path(path_type=Path))
@click.argument("current", type=click.Path(path_type=Path))
@click.option(
    "--max-regression",
    "max_regressions",
    multiple=True,
    metavar="METRIC=LIMIT",
    help="How much worse a metric may get, repeatable: p50/p90/p95/p99=PERCENT (relative) or "
    "error_pct=POINTS (absolute); ENDPOINT:METRIC=LIMIT for one endpoint; METRIC=off drops "
    "one. [default: p95=10%, error_pct=0.5]",
)
@click.option(
    "--min-effect-ms",
    default="1",
    metavar="MS",
    show_default=True,
    help="Noise floor: latency slowdowns smaller than this never fail.",
)
@click.option(
    "--alpha",
    default="0.05",
    metavar="P",
    show_default=True,
    help="Significance level of the test, per comparison.",
)
@click.option(
    "--min-windows",
    default="5",
    metavar="N",
    show_default=True,
    help="Steady windows with data each run needs per step and endpoint.",
)
@click.option(
    "--junit",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write JUnit XML here (one testcase per step x endpoint x metric).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def gate(
    baseline: Path,
    current: Path,
    max_regressions: tuple[str, ...],
    min_effect_ms: str,
    alpha: str,
    min_windows: str,
    junit: Path | None,
    as_json: bool,
) -> None:
    """Fail the build when CURRENT is slower or fails more than BASELINE beyond noise.

    Per step and endpoint, over steady windows: a one-sided Mann-Whitney U test
    on per-window values, and the step percentile's change (merged histograms,
    bootstrap interval). A regression must be significant, above its margin and
    above the --min-effect-ms noise floor. Missing data never passes.

    \b
    Exit codes: 0 pass, 1 regression, 2 usage or input error,
    3 inconclusive (a partial or failed run, runs that are not comparable,
      a missing step or endpoint, too few windows, data too noisy for a margin).

    \b
    Example:
      labcap gate runs/baseline runs/current --max-regression p95=10% \\
          --max-regression hub.spawn_ready:p95=50% --junit reports/gate.xml
    See docs/ci-gate.md for the statistics and a CI workflow.
    """
    from labcap.planner.gate import compare_paths, thresholds_from_options

    thresholds = thresholds_from_options(
        max_regressions, min_effect_ms=min_effect_ms, alpha=alpha, min_windows=min_windows
    )
    result = compare_paths(baseline, current, thresholds)
    if junit is not None:
        from labcap.reports.junit import write_junit

        _progress(f"junit: {write_junit(result, junit)}")
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(result.summary)
        for reason in result.reasons:
            click.echo(f"  {reason}")
        for c in result.comparisons:
            click.echo(
                f"  {c.outcome.upper():<12} step {c.step_index + 1} ({c.users} users) "
                f"{c.endpoint} {c.metric}: {c.reason}"
            )
    sys.exit(result.exit_code)


@cli.command()
@click.option(
    "--old",
    "old",
    required=True,
    metavar="URL_OR_PROFILE",
    help="The deployment in service: hub URL, reference lab workdir (lab.json) or "
    "target file (YAML/JSON: hub_url, mlflow_url, files, profile, gpu).",
)
@click.option(
    "--new",
    "new",
    required=True,
    metavar="URL_OR_PROFILE",
    help="The deployment to cut over to (same forms as --old).",
)
@click.option(
    "--checks",
    default="logins,gpu,data",
    show_default=True,
    help="Comma-separated: logins, gpu, data, capacity.",
)
@click.option(
    "--users",
    default="3",
    show_default=True,
    metavar="LIST|N",
    help="Sample users for logins and gpu: alice,bob or N generated labcap-verify-N.",
)
@click.option("--old-mlflow", default=None, metavar="URL", help="MLflow URL of old.")
@click.option("--new-mlflow", default=None, metavar="URL", help="MLflow URL of new.")
@click.option(
    "--old-files",
    multiple=True,
    metavar="DIR",
    help="Home/project tree of old as a local directory (repeatable).",
)
@click.option(
    "--new-files",
    multiple=True,
    metavar="DIR",
    help="The matching tree of new, in the same order as --old-files.",
)
@click.option(
    "--profile",
    "profile",
    default=None,
    type=click.Path(path_type=Path),
    help="`labcap profile` output of new (its sizing.json): the expected GPU plan.",
)
@click.option(
    "--credentials",
    default=None,
    type=click.Path(path_type=Path),
    help="YAML/JSON (mode 0600) with old:/new: hub_password, hub_token, mlflow_token. "
    "Or env: LABCAP_OLD_HUB_PASSWORD, LABCAP_NEW_HUB_TOKEN, ... (never argv).",
)
@click.option(
    "--checksums",
    default="all",
    show_default=True,
    metavar="all|none|N",
    help="sha256 of every file, of none, or of a sample of N files per tree.",
)
@click.option(
    "--artifacts",
    "artifact_source",
    type=click.Choice(["auto", "api", "store"]),
    default="auto",
    show_default=True,
    help="MLflow artifact listings through the server's API, or read from the artifact store "
    "(auto: the store when a run's artifact_uri is a local path here, else the API).",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="GLOB",
    help="Experiment names / top-level tree entries to leave out "
    "[default: labcap-* (labcap's own load-test data)].",
)
@click.option(
    "--spawn-margin",
    default="100%",
    show_default=True,
    help="How much slower new's median spawn may be (also >10 s) before it fails.",
)
@click.option("--capacity-users", default="2,4", show_default=True, help="Capacity load steps.")
@click.option("--capacity-step", default="60s", show_default=True, help="Each step's length.")
@click.option(
    "--capacity-scenario", default="", help="Scenario [default: lab, or the one the URLs allow]."
)
@click.option(
    "--max-regression",
    "max_regressions",
    multiple=True,
    metavar="METRIC=LIMIT",
    help="Capacity gate margins, as for `labcap gate` [default: p95=10%, error_pct=0.5].",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write verify.json (and the capacity runs) here [default: runs/verify-<time> "
    "with capacity, else nothing].",
)
@click.option(
    "--junit",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write JUnit XML here (one testcase per check).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def verify(**kw: Any) -> None:
    """Verify a new deployment against the old one before cutting over.

    \b
    Checks (data runs first: it only reads; the others log in, spawn and load):
      data      MLflow experiments, runs, params, metrics, tags, artifact
                listings, and file trees (counts, sizes, sha256): every
                difference listed
      logins    each sample user logs in and spawns a server on both;
                success and median spawn time compared
      gpu       a user server on new sees its GPUs (NVML) as the plan says;
                skipped, with the reason, when no GPU is planned or present
      capacity  the same short step load on both at once, then the gate

    \b
    Verdict and exit code (the gate's conventions):
      ready-to-cut-over    0  every check passed or does not apply
      fix-before-cut-over  1  checks failed (listed); 3 if none failed but
                              one could not be made
      roll-back            1  new cannot serve users (no login works, MLflow down)
      usage error          2

    \b
    Example (parallel testing, old on 80/443, new on 8080/8443):
      export LABCAP_OLD_HUB_PASSWORD=... LABCAP_NEW_HUB_PASSWORD=...
      labcap verify --old https://lab.example.org --new https://lab.example.org:8443 \\
          --old-mlflow https://lab.example.org/mlflow --new-mlflow https://...:8443/mlflow \\
          --old-files /srv/old/home --new-files /mnt/k3s/home --profile deploy/k3s \\
          --checks logins,gpu,data,capacity --junit reports/verify.xml
    See docs/migration-runbook.md (`labcap verify`).
    """
    from labcap.planner.gate import thresholds_from_options
    from labcap.verify import (
        ChecksumPolicy,
        DataSettings,
        LoginSettings,
        VerifySettings,
        parse_checks,
        read_credentials,
        resolve_deployment,
        run_verify,
        sample_users,
        write_result,
    )
    from labcap.verify.data import DEFAULT_IGNORE

    checks = parse_checks(kw["checks"])
    creds = read_credentials(kw["credentials"]) if kw["credentials"] else {}
    old = resolve_deployment(
        "old",
        kw["old"],
        mlflow_url=kw["old_mlflow"],
        files=kw["old_files"],
        credentials=creds.get("old"),
    )
    new = resolve_deployment(
        "new",
        kw["new"],
        mlflow_url=kw["new_mlflow"],
        files=kw["new_files"],
        profile=kw["profile"],
        credentials=creds.get("new"),
    )
    out = kw["out"] or (_default_out("verify") if "capacity" in checks else None)
    settings = VerifySettings(
        checks=checks,
        users=sample_users(kw["users"]),
        logins=LoginSettings(spawn_margin=_percent(kw["spawn_margin"], "--spawn-margin")),
        data=DataSettings(
            ChecksumPolicy.parse(kw["checksums"]),
            ignore=tuple(kw["ignore"]) or DEFAULT_IGNORE,
            artifact_source=kw["artifact_source"],
        ),
        capacity=_capacity_settings(kw, thresholds_from_options(kw["max_regressions"])),
        out=out,
    )
    result = run_verify(old, new, settings, _progress)
    secrets = (*old.secrets, *new.secrets)
    if out is not None:
        _progress(f"result: {write_result(result, out, secrets)}")
    if kw["junit"] is not None:
        from labcap.verify.junit import write_junit

        _progress(f"junit: {write_junit(result, kw['junit'])}")
    if kw["as_json"]:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        click.echo("\n".join(result.lines()))
    sys.exit(result.exit_code)


def _percent(text: str, what: str) -> float:
    raw = str(text).strip().removesuffix("%")
    try:
        value = float(raw) / 100
    except ValueError:
        raise LabcapError(f"{what} {text!r} is not a percentage, e.g. 100%") from None
    if not 0 <= value <= 100:
        raise LabcapError(f"{what} {text!r} must lie between 0% and 10000%")
    return value


def _capacity_settings(kw: dict[str, Any], thresholds: Any) -> Any:
    from labcap.model import parse_duration, parse_user_steps
    from labcap.verify import CapacitySettings

    return CapacitySettings(
        scenario=kw["capacity_scenario"],
        users=parse_user_steps(kw["capacity_users"]),
        step_duration_s=parse_duration(kw["capacity_step"], what="--capacity-step"),
        thresholds=thresholds,
    )


@cli.group()
def probe() -> None:
    """Focused measurements of one part of the platform (container startup)."""


@probe.command("startup")
@click.option(
    "--target",
    type=click.Choice(["docker", "k8s"]),
    default="docker",
    show_default=True,
    help="Where containers are started: the Docker engine of DOCKER_HOST, or pods in a "
    "throw-away namespace of a Kubernetes/K3s cluster (deleted afterwards).",
)
@_kube_target_options
@click.option(
    "--pull-policy",
    type=click.Choice(["IfNotPresent", "Never", "Always"]),
    default="IfNotPresent",
    show_default=True,
    help="With --target k8s: the pods' imagePullPolicy.",
)
@click.option("--image", required=True, help="Image to start; must be present locally.")
@click.option(
    "--command", "command", default=None, help="Command line; {port} becomes the container's port."
)
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Environment, repeatable.")
@click.option(
    "--port",
    default=None,
    help="Ready when http://127.0.0.1:PORT/PATH answers: a number, or auto "
    "(a free port per container, given to it as $PORT and {port}).",
)
@click.option("--path", default="/", show_default=True, help="HTTP path for --port.")
@click.option(
    "--concurrency",
    default="1,4,8",
    show_default=True,
    help="Containers started at once, per step.",
)
@click.option("--repeat", default=1, show_default=True, type=int, help="Rounds per step.")
@click.option("--timeout", default="60s", show_default=True, help="Not ready by then: timeout.")
@click.option("--interval", default="1s", show_default=True, help="Resource sampling interval.")
@click.option(
    "--slo",
    "slos",
    multiple=True,
    metavar="EXPR",
    help="Startup objective, repeatable [default: startup.ready:p95_ms=30000, error_pct=0].",
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run directory.")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def probe_startup(target: str, **kw: Any) -> None:
    """Spawn storms: start N containers at once and time every startup phase.

    Phases come from the engine's own event timestamps (created, started,
    running, healthy) and, with --port, the first HTTP answer. Every container
    is removed afterwards, also on Ctrl-C. The run directory works with
    `labcap plan` and `labcap report` (each concurrency level is a step).

    \b
    Examples:
      labcap probe startup --image my/app:1 --port auto --path /health \\
          --concurrency 1,4,8,16 --repeat 3 --out runs/startup
      labcap probe startup --target k8s --image busybox --command "sleep 3600" \\
          --concurrency 1,4,8,16 --repeat 3 --out runs/startup-k8s

    With --target k8s the phases are PodScheduled, Initialized, containers
    running, ContainersReady and Ready, timed on labcap's clock when each
    arrived on the watch (the API server's 1 s timestamps are kept too).
    """
    import shlex

    from labcap.model import parse_duration, parse_user_steps
    from labcap.probe import DEFAULT_SLOS, StartupProbeSettings, format_table, run_startup_probe

    k8s = {k: kw.pop(k) for k in ("kubeconfig", "kube_context", "pull_policy")}
    if target == "k8s":
        _probe_startup_k8s(kw, k8s)
        return
    if k8s["kubeconfig"] or k8s["kube_context"]:
        raise LabcapError("--kubeconfig and --context need --target k8s")
    settings = StartupProbeSettings(
        image=kw["image"],
        concurrency=parse_user_steps(kw["concurrency"]),
        repeat=kw["repeat"],
        command=tuple(shlex.split(kw["command"])) if kw["command"] else (),
        env=tuple(kw["env"]),
        port=kw["port"],
        path=kw["path"],
        timeout_s=parse_duration(kw["timeout"], what="--timeout"),
        interval_s=parse_duration(kw["interval"], what="--interval"),
        slos=tuple(kw["slos"]) or DEFAULT_SLOS,
    )
    signal.signal(signal.SIGTERM, _raise_interrupted)
    out = kw["out"] or _default_out("probe-startup")
    result = run_startup_probe(settings, out, overwrite=kw["overwrite"], progress=_progress)
    if kw["as_json"]:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(format_table(result.rows))
        click.echo(f"run directory: {result.path} ({result.status})")
    for reason in result.reasons:
        _progress(reason)
    if result.interrupted:
        sys.exit(130)
    if result.status == "failed":
        sys.exit(1)


def _probe_startup_k8s(kw: dict[str, Any], k8s: dict[str, Any]) -> None:
    import shlex

    from labcap.model import parse_duration, parse_user_steps
    from labcap.probe import DEFAULT_SLOS
    from labcap.probe_k8s import K8sProbeSettings, format_table, run_k8s_startup_probe

    if kw["port"] is not None:
        raise LabcapError(
            "--port is for --target docker; with k8s, readiness is the pod's Ready condition"
        )
    settings = K8sProbeSettings(
        image=kw["image"],
        concurrency=parse_user_steps(kw["concurrency"]),
        repeat=kw["repeat"],
        command=tuple(shlex.split(kw["command"])) if kw["command"] else (),
        env=tuple(kw["env"]),
        timeout_s=parse_duration(kw["timeout"], what="--timeout"),
        interval_s=parse_duration(kw["interval"], what="--interval"),
        slos=tuple(kw["slos"]) or DEFAULT_SLOS,
        kubeconfig=k8s["kubeconfig"],
        context=k8s["kube_context"],
        pull_policy=k8s["pull_policy"],
    )
    signal.signal(signal.SIGTERM, _raise_interrupted)
    out = kw["out"] or _default_out("probe-startup-k8s")
    result = run_k8s_startup_probe(settings, out, overwrite=kw["overwrite"], progress=_progress)
    if kw["as_json"]:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(format_table(result.rows))  # type: ignore[arg-type]
        click.echo(f"run directory: {result.path} ({result.status})")
    for reason in result.reasons:
        _progress(reason)
    if result.interrupted:
        sys.exit(130)
    if result.status == "failed":
        sys.exit(1)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--platform",
    type=click.Choice(["compose", "k3s"]),
    required=True,
    help="compose: docker-compose.yml + .env; k3s: Kubernetes manifests. Compose from a "
    "K3s-sized run is the rollback direction.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory to write; empty, or holding an earlier profile of the same platform "
    "(its secrets are kept).",
)
@click.option(
    "--expected-users", type=int, default=None, metavar="N", help="Concurrent users to plan for."
)
@click.option("--gpus", type=int, default=0, show_default=True, help="GPUs, all nodes together.")
@click.option(
    "--gpu-sharing",
    type=click.Choice(["none", "time-slicing", "mig"]),
    default="none",
    show_default=True,
    help="How user servers share the GPUs.",
)
@click.option(
    "--gpu-users",
    type=int,
    default=None,
    metavar="N",
    help="Concurrent GPU users [default: every design user].",
)
@click.option(
    "--time-slicing-replicas",
    type=int,
    default=None,
    metavar="R",
    help="Shares per GPU with time-slicing [default: enough for --gpu-users].",
)
@click.option(
    "--mig-profile",
    "mig_profiles",
    multiple=True,
    metavar="PROFILE[=N]",
    help="MIG profile and instances per GPU, repeatable (e.g. 1g.10gb=4) [N: as many as fit].",
)
@click.option("--gpu-model", default=None, help="GPU model for MIG, e.g. A100-40GB, H100-80GB.")
@click.option("--domain", default="lab.example.org", show_default=True, help="Public host name.")
@click.option(
    "--loadgen",
    type=click.Choice(["none", "k8s"]),
    default="none",
    show_default=True,
    help="k8s: also write loadgen/ (a Locust master Deployment + Service and a worker "
    "Deployment, sized from the run's req/s per user and the calibrated generator "
    "ceiling) for when one machine cannot generate --expected-users.",
)
@click.option(
    "--loadgen-host",
    default=None,
    metavar="URL",
    help="With --loadgen k8s: the URL the workers load [default: the run's host].",
)
@click.option(
    "--cpu-per-user", type=float, default=2.0, show_default=True, help="CPU limit per user (cores)."
)
@click.option(
    "--mem-per-user",
    type=float,
    default=4.0,
    show_default=True,
    metavar="GIB",
    help="Memory limit per user, GiB.",
)
@click.option(
    "--validate-server",
    is_flag=True,
    help="k3s: also submit every object to a live API server with dryRun=All (nothing is "
    "persisted) before writing. Kinds it does not serve are reported, not rejected.",
)
@click.option(
    "--kubeconfig",
    default=None,
    metavar="PATH",
    help="For --validate-server [default: $KUBECONFIG, ~/.kube/config, /etc/rancher/k3s/k3s.yaml].",
)
@click.option("--context", default=None, help="kubeconfig context for --validate-server.")
@click.option(
    "--admin-user",
    "admin_users",
    multiple=True,
    metavar="NAME",
    help="Hub admin, repeatable; signs up first and approves sign-ups [default: the .env's, "
    "else admin].",
)
@click.option(
    "--idle-timeout",
    type=int,
    default=3600,
    show_default=True,
    metavar="S",
    help="Stop user servers idle this long (jupyterhub-idle-culler).",
)
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="KEY=REF",
    help="Pin another image, repeatable (e.g. notebook=quay.io/jupyter/scipy-notebook:2024-12-02).",
)
@click.option("--json", "as_json", is_flag=True, help="Print sizing.json's content on stdout.")
def profile(run_dir: Path, out: Path, as_json: bool, **kw: Any) -> None:
    """Render the deployment a run calls for: Compose or K3s, sized from its capacity.

    Every file is validated (Kubernetes schemas, the Compose schema, GPU sharing
    consistency) before any is written; secrets are random and land only in .env or
    secrets.yaml (mode 0600). sizing.json and RUNBOOK.md state each sizing decision
    and the measured number behind it.

    \b
    Examples:
      labcap profile runs/lab-1 --platform k3s --out deploy/k3s --expected-users 120 \\
          --gpus 4 --gpu-sharing time-slicing
      labcap profile runs/lab-1 --platform compose --out deploy/compose --expected-users 30
      labcap profile runs/lab-1 --platform k3s --out deploy/k3s --validate-server \\
          --kubeconfig /etc/rancher/k3s/k3s.yaml
    """
    from labcap.deploy_profiles import ProfileSettings, build_profile
    from labcap.deploy_profiles.dryrun import server_checker

    if kw["validate_server"] and kw["platform"] != "k3s":
        raise LabcapError("--validate-server needs --platform k3s (Compose has no API server)")

    loadgen = _loadgen_files(run_dir, kw) if kw["loadgen"] == "k8s" else None
    settings = ProfileSettings(
        platform=kw["platform"],
        expected_users=kw["expected_users"],
        gpus=kw["gpus"],
        gpu_sharing=kw["gpu_sharing"],
        gpu_users=kw["gpu_users"],
        time_slicing_replicas=kw["time_slicing_replicas"],
        mig_profiles=tuple(kw["mig_profiles"]),
        gpu_model=kw["gpu_model"],
        domain=kw["domain"],
        cpu_per_user=kw["cpu_per_user"],
        mem_per_user_gib=kw["mem_per_user"],
        admin_users=tuple(kw["admin_users"]),
        idle_timeout_s=kw["idle_timeout"],
        images=tuple((i.partition("=")[0], i.partition("=")[2]) for i in kw["images"]),
    )
    check = server_checker(kw["kubeconfig"], kw["context"]) if kw["validate_server"] else None
    result = build_profile(run_dir, settings, out, server_check=check)
    if loadgen:
        from labcap.store import atomic_write_bytes

        for name, text in loadgen[0].items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out / name, text.encode("utf-8"))
        _progress(f"load generator: {out / 'loadgen'} ({loadgen[1]})")
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    for d in result.sizing.decisions:
        click.echo(f"  {d.key:<30} {d.value!s:>8} {d.unit:<11} {d.source}")
    for w in result.sizing.warnings:
        click.echo(f"warning: {w}")
    if check is not None:
        click.echo(result.checks[-1])
    click.echo(f"{settings.platform} profile: {len(result.files)} files in {out} (RUNBOOK.md)")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the calibration as JSON.")
def calibrate(as_json: bool) -> None:
    """Measure the load generator's own latency floor and throughput ceiling here.

    labcap starts a trivial loopback target that answers at once and drives it
    with its scenarios' HTTP client: at 200 req/s from 20 users the response
    times are what the generator itself adds to every measurement (its floor);
    flat out, the req/s one generator process sends is its ceiling. `labcap run`
    does this first (about 5 s) unless --no-calibrate.

    \b
    Examples:
      labcap calibrate
      labcap calibrate --json | jq .floor_p99_ms
    """
    from labcap.calibrate import calibrate as measure
    from labcap.calibrate import describe

    cal = measure()
    click.echo(json.dumps(cal, indent=2, ensure_ascii=False) if as_json else describe(cal))


def _loadgen_files(run_dir: Path, kw: dict[str, Any]) -> tuple[dict[str, str], str]:
    from labcap.deploy_profiles.loadgen import render_loadgen
    from labcap.planner.capacity import plan_capacity
    from labcap.store import RunDir

    if not kw["expected_users"]:
        raise LabcapError("--loadgen k8s needs --expected-users N (the users to generate)")
    run = RunDir.open(run_dir)
    hosts = run.manifest.get("hosts") or {}
    host = kw["loadgen_host"] or hosts.get("default") or next(iter(hosts.values()), "")
    if not host:
        raise LabcapError("--loadgen k8s: the run names no host; give --loadgen-host URL")
    steps = list(plan_capacity(run).steps)
    return render_loadgen(run.manifest, steps, users=kw["expected_users"], host=host)


@cli.command("cleanup")
@click.option(
    "--run",
    "run_id",
    default=None,
    metavar="ID",
    help="Only this run: a probe's run id (label labcap.run-id / labcap.probe) or a run "
    "directory name. Default: every leftover of every crashed run.",
)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Where run directories live (their stale .lock files are removed).",
)
@click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path),
    default=None,
    help="Also delete namespaces labelled app.kubernetes.io/managed-by=labcap in this cluster.",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print what was found as JSON.")
def cleanup_cmd(
    run_id: str | None, runs_dir: Path, kubeconfig: Path | None, dry_run: bool, as_json: bool
) -> None:
    """Remove what crashed labcap runs left behind.

    \b
    Looks for, and removes (unless --dry-run):
      load engines and Locust workers whose labcap run is gone,
      containers labelled app.kubernetes.io/managed-by=labcap or labcap.probe (DOCKER_HOST),
      namespaces labelled app.kubernetes.io/managed-by=labcap (with --kubeconfig),
      .lock files in --runs-dir that no live run holds,
      labcap-* temporary directories no process uses (only without --run).
    A live run's resources are never touched: its lock is held.

    \b
    Example:
      labcap cleanup --dry-run
      labcap cleanup --run 3f9c2a1b7d4e --kubeconfig ~/.kube/config --json
    """
    from labcap.cleanup import cleanup

    found = cleanup(
        run=run_id,
        runs_dir=runs_dir,
        kubeconfig=kubeconfig,
        dry_run=dry_run,
        progress=None if as_json else _progress,
    )
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in found], indent=2))
    elif not [f for f in found if f.action in ("removed", "would remove")]:
        _progress("nothing to clean up")


@cli.group()
def lab() -> None:
    """The embedded reference lab: real JupyterHub + MLflow on loopback ports."""


DEFAULT_LAB_DIR = Path(".labcap/lab")


@lab.command("up")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=DEFAULT_LAB_DIR,
    show_default=True,
    help="Where the lab keeps its state, logs and databases.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the endpoints as JSON.")
def lab_up(workdir: Path, as_json: bool) -> None:
    """Start the lab in the background; `labcap lab down` stops it.

    The generated JupyterHub password and API token are kept in
    WORKDIR/lab.json (readable by you only), never printed.
    """
    from labcap.lab import ReferenceLab, lab_status

    if lab_status(workdir):
        raise LabcapError(f"a lab is already running from {workdir}: labcap lab down first")
    workdir.mkdir(parents=True, exist_ok=True)
    endpoints = ReferenceLab(workdir, progress=_progress, detach=True).start()
    info = endpoints.redacted()
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            click.echo(f"{k}: {v}")
        _progress(f"credentials: {workdir / 'lab.json'} (mode 0600)")


@lab.command("down")
@click.option(
    "--workdir", type=click.Path(path_type=Path), default=DEFAULT_LAB_DIR, show_default=True
)
def lab_down_cmd(workdir: Path) -> None:
    """Stop a lab started with `labcap lab up`, leaving no process behind."""
    from labcap.lab import lab_down

    if lab_down(workdir):
        _progress("lab stopped")
    else:
        _progress(f"no lab running from {workdir}")


@lab.command("status")
@click.option(
    "--workdir", type=click.Path(path_type=Path), default=DEFAULT_LAB_DIR, show_default=True
)
def lab_status_cmd(workdir: Path) -> None:
    """Print the running lab's endpoints and processes as JSON (exit 1 if none)."""
    from labcap.lab import lab_status

    status = lab_status(workdir)
    if not status:
        _progress(f"no lab running from {workdir}")
        sys.exit(1)
    click.echo(json.dumps(status, indent=2))


def main() -> None:
    cli(prog_name="labcap")


if __name__ == "__main__":
    main()
