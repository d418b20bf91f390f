"""The ``labcap`` command. Thin: each command parses, calls one library function, prints.

Data goes to stdout, progress and logs to stderr. Errors the user can fix
are ``LabcapError``s, turned into one stderr line and an exit code here and
nowhere else: 2 for bad input or an unreachable target, 1 for a failed run,
130 when interrupted.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from labcap import __version__
from labcap.cliopts import options_of as _options_of
from labcap.cliopts import progress_options
from labcap.deploy_profiles.settings import ProfileOptions
from labcap.errors import LabcapError
from labcap.lab.settings import LabOptions, LabUpOptions
from labcap.measure.settings import (
    CleanupOptions,
    DemoOptions,
    SessionSettings,
    StartupOptions,
    WorkerOptions,
)
from labcap.planner.settings import GateOptions, PlanOptions
from labcap.reports.settings import ReportOptions
from labcap.verify.settings import VerifyOptions


def _progress(msg: str) -> None:
    click.echo(f"labcap: {msg}", err=True)


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


@cli.command()
@_options_of(SessionSettings)
@click.option("--json", "as_json", is_flag=True, help="Print the capacity plan as JSON on stdout.")
@click.option(
    "--fail-on-slo",
    is_flag=True,
    help="Exit 4 when a step missed its SLOs, 3 when some step could not be judged.",
)
@click.option(
    "--dry-run",
    "resolve_only",
    is_flag=True,
    help="Print the resolved plan (each option's value and source: flag, LABCAP_* "
    "environment, labcap.toml, default) and send nothing.",
)
@progress_options
def run(
    as_json: bool,
    fail_on_slo: bool,
    resolve_only: bool,
    quiet: bool,
    verbose: bool,
    **options: Any,
) -> None:
    """Run a step-load capacity test and write a run directory.

    Users grow through --users, each count held for --step-duration. Every
    request lands in per-endpoint, per-window latency histograms; the run
    directory (manifest.json + Parquet tables) is what plan and report read.

    \b
    Examples:
      labcap run --target local --users 5,10,20 --step-duration 30s
      LABCAP_HUB_PASSWORD=... labcap run --host http://127.0.0.1:8000 \\
          --scenario jupyterhub --users 10,25,50 --slo p95=800ms
      labcap run --host URL --gpu nvml --gpu-metrics-url http://127.0.0.1:9400/metrics
      labcap run --target k8s --namespace jhub --host https://hub.example.org \\
          --scenario jupyterhub --users 10,25,50

    \b
    Exit codes: 0 ok, 1 the run could not be carried out, 2 usage or input error,
    3 inconclusive (an invalid run; with --fail-on-slo also a step not judged),
    4 SLOs missed (with --fail-on-slo), 130 interrupted.
    """
    if resolve_only:
        from labcap.cliopts import option_sources
        from labcap.measure.dryrun import resolve_run

        resolved = resolve_run(
            SessionSettings(**options), option_sources(click.get_current_context())
        )
        click.echo(
            json.dumps(resolved.to_dict(), indent=2) if as_json else "\n".join(resolved.lines())
        )
        return
    from labcap.planner.exit_codes import run_exit

    result = _print_session(SessionSettings(**options), as_json, quiet, verbose)
    verdict = run_exit(result.plan, fail_on_slo)
    if verdict.code:
        _progress(verdict.message)
        sys.exit(verdict.code)


@cli.command()
@_options_of(WorkerOptions)
def worker(**options: Any) -> None:
    """Lend this machine to a master's run as a Locust worker (one run, then exit).

    The master (`labcap run ... --expect-workers N --master-bind ADDR:PORT`) checks the
    shared secret in LABCAP_WORKER_SECRET (never sent), this machine's labcap and Locust
    versions and, with --locustfile, its copy of the locustfile; then hands over the load
    plan and the locustfile. This worker's windows go into the master's run directory.
    The hub password, if the scenario needs one, comes from this machine's
    LABCAP_HUB_PASSWORD.

    \b
    Examples:
      LABCAP_WORKER_SECRET=... labcap worker --master 10.0.0.5:5557
    """
    from labcap.measure.remote import serve

    serve(WorkerOptions(**options), _progress)


@cli.command()
@_options_of(DemoOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the capacity plan as JSON.")
@progress_options
def demo(as_json: bool, quiet: bool, verbose: bool, **options: Any) -> None:
    """Start the embedded reference lab, run a short step load, write the report.

    The lab is real: JupyterHub (with its proxy and single-user servers) and an
    MLflow tracking server, on loopback ports. The figure describes this
    machine, where the load generator shares the CPU with the lab.
    """
    from labcap.reports.html import write_run_report

    result = _print_session(DemoOptions(**options).session(), as_json, quiet, verbose)
    _progress(f"report: {write_run_report(result.run.path)}")


def _print_session(settings: SessionSettings, as_json: bool, quiet: bool, verbose: bool) -> Any:
    """Run and plan (labcap.measure.session) with live progress on stderr (measure.live),
    print the plan; exit 130 when interrupted."""
    from labcap.measure.live import Console, LiveMonitor
    from labcap.measure.session import run_session

    console = Console(quiet=quiet, verbose=verbose)
    try:
        result = run_session(settings, console.line, LiveMonitor(console))
    finally:
        console.close()
    plans = result.side_plans or {"": result.plan}
    if as_json:
        if result.side_plans:  # a paired run: each side's capacity plan
            doc = {s: p.to_dict() for s, p in result.side_plans.items()}
        else:  # the one plan shape (schemas/plan.schema.json), as `labcap plan --json`
            from labcap.planner.recommend import plan_and_recommend

            doc = plan_and_recommend(result.run.path).to_dict()
        click.echo(json.dumps(doc, indent=2))
    else:
        for side, side_plan in plans.items():
            click.echo(f"{side}: {side_plan.verdict}" if side else side_plan.verdict)
        click.echo(f"run directory: {result.run.path}")
    if result.run.interrupted:
        where = f"the {result.run.status} run in {result.run.path}"
        _progress(f"interrupted: {where} keeps what was measured")
        sys.exit(130)
    return result


@cli.command()
@_options_of(PlanOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(as_json: bool, **options: Any) -> None:
    """Capacity of a run, and what to do about it: stay on Compose, tune it, or move to K3s.

    Reads a run directory (complete or partial). The JSON output has
    capacity (max_users_at_slo, band, binding, per_slo, knee), steps[],
    projection, and recommendation (action, reasons[], binding_constraint,
    confidence). Without --expected-users the action is insufficient-data.
    Given a decision input, the inputs and the answer are saved beside the
    run (RUN_DIR/plan.json), where `labcap report` reads them.
    """
    from labcap.planner.plan_file import plan_and_save
    from labcap.planner.text import describe_plan

    saved = plan_and_save(PlanOptions(**options))
    if saved.note:
        _progress(saved.note)
    outcome = saved.outcome
    click.echo(json.dumps(outcome.to_dict(), indent=2) if as_json else describe_plan(outcome))


@cli.command()
@_options_of(ReportOptions)
def report(**options: Any) -> None:
    """Write a self-contained HTML report (opens offline; plotly inlined).

    \b
    One run: its capacity report, the recommendation first. Its decision inputs
    (--expected-users, --growth-per-month, --policy) default to what `labcap plan`
    saved beside the run (RUN_DIR/plan.json).
    Several runs: a side-by-side comparison (Docker vs K3s, before vs after), the
    first run being the baseline, with a warning when they are not comparable:
      labcap report runs/docker runs/k3s -o compare.html
    """
    from labcap.reports.write import write_report

    click.echo(str(write_report(ReportOptions(**options))))


@cli.command()
@_options_of(GateOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def gate(as_json: bool, **options: Any) -> None:
    """Fail the build when CURRENT is slower or fails more than BASELINE beyond noise.

    \b
    Three modes:
      labcap gate PAIRED_RUN          a paired run (labcap run --candidate-host):
                                      candidate vs baseline, window by window
      labcap gate HISTORY_DIR CURRENT a directory of >= 5 past baseline runs
      labcap gate BASELINE CURRENT    two runs

    Per step and endpoint, over steady windows: a one-sided Mann-Whitney U test
    on per-window values, and the step percentile's change (merged histograms,
    bootstrap interval). A regression must be significant, above its margin and
    above the --min-effect noise floor. Missing data never passes.

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
    from labcap.planner.gate_modes import gate_with_options
    from labcap.planner.text import describe_gate

    opts = GateOptions(**options)
    result = gate_with_options(opts)
    if opts.junit is not None:
        from labcap.reports.junit import write_junit

        _progress(f"junit: {write_junit(result, opts.junit)}")
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else describe_gate(result))
    sys.exit(result.exit_code)


@cli.command()
@_options_of(VerifyOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def verify(as_json: bool, **options: Any) -> None:
    """Verify a new deployment against the old one before cutting over.

    \b
    Checks (data runs first: it only reads; the others log in, spawn and load):
      data      MLflow experiments, runs, params, metrics with their
                histories, tags, artifacts (sha256), the model registry,
                and file trees (counts, sizes, sha256): every difference
                listed
      logins    each sample user logs in and spawns a server on both;
                success and median spawn time compared
      gpu       a user server on new sees its GPUs (NVML) as the plan says;
                skipped, with the reason, when no GPU is planned or present
      capacity  the same short step load on both at once, then the gate;
                --capacity-runs OLD,NEW: the gate on two runs measured before

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
    from labcap.verify.options import verify_deployments

    result = verify_deployments(VerifyOptions(**options), _progress)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        click.echo("\n".join(result.lines()))
    sys.exit(result.exit_code)


@cli.group()
def probe() -> None:
    """Focused measurements of one part of the platform (container startup)."""


@probe.command("startup")
@_options_of(StartupOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def probe_startup(as_json: bool, **options: Any) -> None:
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
    from labcap.measure.startup import describe_startup, probe_startup

    opts = StartupOptions(**options)
    result = probe_startup(opts, _progress)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(describe_startup(result, opts.target))
    for reason in result.reasons:
        _progress(reason)
    if result.interrupted:
        sys.exit(130)
    if result.status == "failed":
        sys.exit(1)


@cli.command()
@_options_of(ProfileOptions)
@click.option("--json", "as_json", is_flag=True, help="Print sizing.json's content on stdout.")
def profile(as_json: bool, **options: Any) -> None:
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
    from labcap.deploy_profiles.make import describe_profile, make_profile

    opts = ProfileOptions(**options)
    result = make_profile(opts, _progress)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(describe_profile(result, opts))


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
    from labcap.measure.calibrate import calibrate as measure
    from labcap.measure.calibrate import describe

    cal = measure()
    click.echo(json.dumps(cal, indent=2, ensure_ascii=False) if as_json else describe(cal))


@cli.command("cleanup")
@_options_of(CleanupOptions)
@click.option("--json", "as_json", is_flag=True, help="Print what was found as JSON.")
def cleanup_cmd(as_json: bool, **options: Any) -> None:
    """Remove what crashed labcap runs left behind.

    \b
    Looks for, and removes (unless --dry-run):
      load engines and Locust workers whose labcap run is gone,
      containers labelled app.kubernetes.io/managed-by=labcap or labcap.probe (DOCKER_HOST),
      namespaces labelled app.kubernetes.io/managed-by=labcap (with --kubeconfig),
      hub users named labcap-* that --login api made (with --hub and $LABCAP_HUB_TOKEN),
      .lock files in --runs-dir that no live run holds,
      labcap-* temporary directories no process uses (only without --run).
    A live run's resources are never touched: its lock is held.

    \b
    Example:
      labcap cleanup --dry-run
      labcap cleanup --run 3f9c2a1b7d4e --kubeconfig ~/.kube/config --json
    """
    from labcap.measure.cleanup import cleanup

    found = cleanup(**vars(CleanupOptions(**options)), progress=None if as_json else _progress)
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in found], indent=2))
    elif not [f for f in found if f.action in ("removed", "would remove")]:
        _progress("nothing to clean up")


@cli.group()
def lab() -> None:
    """The embedded reference lab: real JupyterHub + MLflow on loopback ports."""


@lab.command("up")
@_options_of(LabUpOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the endpoints as JSON.")
def lab_up(as_json: bool, **options: Any) -> None:
    """Start the lab in the background; `labcap lab down` stops it.

    The generated JupyterHub password and API token are kept in
    WORKDIR/lab.json (readable by you only), never printed.
    """
    from labcap.lab import ReferenceLab, lab_status

    workdir = LabUpOptions(**options).workdir
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
@_options_of(LabOptions)
def lab_down_cmd(**options: Any) -> None:
    """Stop a lab started with `labcap lab up`, leaving no process behind."""
    from labcap.lab import lab_down

    workdir = LabOptions(**options).workdir
    if lab_down(workdir):
        _progress("lab stopped")
    else:
        _progress(f"no lab running from {workdir}")


@lab.command("status")
@_options_of(LabOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def lab_status_cmd(as_json: bool, **options: Any) -> None:
    """Print the running lab's endpoints and processes (exit 1 if none)."""
    from labcap.lab import lab_status

    workdir = LabOptions(**options).workdir
    status = lab_status(workdir)
    if not status:
        _progress(f"no lab running from {workdir}")
        sys.exit(1)
    click.echo(json.dumps(status, indent=2) if as_json else "\n".join(_flat_lines(status)))


def _flat_lines(data: dict[str, Any], indent: str = "") -> list[str]:
    """A nested record as ``key: value`` lines (lab status without --json)."""
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += [f"{indent}{key}:", *_flat_lines(value, indent + "  ")]
        else:
            out.append(f"{indent}{key}: {value}")
    return out


def main() -> None:
    cli(prog_name="labcap")


if __name__ == "__main__":
    main()
