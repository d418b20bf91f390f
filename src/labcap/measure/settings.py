"""The settings of one measuring session (``labcap run``): a typed record whose fields'
descriptions are also ``labcap run``'s options and ``--help`` (``metadata["cli"]``: the
option's flags and how it reads; the field's name and default are the option's).

Standard library only: the CLI reads this before any of the measuring code is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labcap.options import option

DEFAULT_STEPS = "5,10,20"
TARGETS = ("remote", "local", "docker", "k8s")
GPU_MODES = ("auto", "nvml", "none")
KUBECONFIG_HELP = (
    "With --target k8s: kubeconfig [default: $KUBECONFIG, ~/.kube/config, then "
    "/etc/rancher/k3s/k3s.yaml]."
)


@dataclass(frozen=True, kw_only=True)
class SessionSettings:
    """A run as the user asked for it: ``labcap run``'s options, their text unparsed."""

    host: str | None = field(
        default=None,
        metadata=option(
            "--host",
            metavar="URL",
            config="host",
            help="Base URL of the deployment (JupyterHub's public URL, or MLflow's).",
        ),
    )
    mlflow_url: str | None = field(
        default=None,
        metadata=option(
            "--mlflow-url",
            metavar="URL",
            config="mlflow_url",
            help="MLflow's URL when it differs from --host (scenario lab).",
        ),
    )
    candidate_host: str | None = field(
        default=None,
        metadata=option(
            "--candidate-host",
            metavar="URL",
            help="A paired run: the candidate deployment's base URL, loaded in the same "
            "windows as --host (the baseline), half the users on each; `labcap gate RUN` "
            "then compares the two sides window by window (docs/ci-gate.md).",
        ),
    )
    candidate_mlflow_url: str | None = field(
        default=None,
        metadata=option(
            "--candidate-mlflow-url",
            metavar="URL",
            help="The candidate's MLflow URL when it differs from --candidate-host.",
        ),
    )
    scenario: str = field(
        default="lab",
        metadata=option(
            "--scenario",
            show_default=True,
            config="scenario",
            help="jupyterhub, mlflow, lab (both), or a path to your own locustfile.py (for "
            "plain HTTP/1.1 APIs, subclass labcap.loadtests.users.WireHttpUser: timed to the "
            "kernel's receipt of each answer).",
        ),
    )
    target: str = field(
        default="remote",
        metadata=option(
            "--target",
            choices=TARGETS,
            show_default=True,
            help="local: start the embedded reference lab and measure it. docker: also record "
            "container startups and resources from the Docker engine (DOCKER_HOST). k8s: also "
            "record pod startup phases, scheduling conflicts and node inventory from "
            "Kubernetes/K3s.",
        ),
    )
    kubeconfig: str | None = field(
        default=None, metadata=option("--kubeconfig", metavar="FILE", help=KUBECONFIG_HELP)
    )
    kube_context: str | None = field(
        default=None, metadata=option("--context", help="With --target k8s: context.")
    )
    namespaces: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "--namespace",
            multiple=True,
            metavar="NS",
            help="With --target k8s: namespace whose pods are watched, repeatable "
            "[default: default].",
        ),
    )
    selector: str | None = field(
        default=None,
        metadata=option(
            "--selector",
            metavar="LABELS",
            help="With --target k8s: pods to follow [default: component=singleuser-server, "
            "KubeSpawner's user pods].",
        ),
    )
    compose_project: str | None = field(
        default=None,
        metadata=option(
            "--compose-project",
            metavar="NAME",
            help="With --target docker: watch this Compose project's containers (by label).",
        ),
    )
    users: str = field(
        default=DEFAULT_STEPS,
        metadata=option(
            "--users",
            show_default=True,
            help="Concurrent users per step, comma separated; or auto: search for the "
            "capacity adaptively up to --max-users (grow x2, then narrow the bracket at the "
            "knee the operational laws estimate; each probe one step, ended once its verdict "
            "is clear).",
        ),
    )
    max_users: int | None = field(
        default=None,
        metadata=option(
            "--max-users",
            type=int,
            help="With --users auto: the largest user count the search may probe.",
        ),
    )
    hub_password_env: str = field(
        default="LABCAP_HUB_PASSWORD",
        metadata=option(
            "--hub-password-env",
            show_default=True,
            help="Environment variable holding the JupyterHub password for the test users.",
        ),
    )
    login: str = field(
        default="auto",
        metadata=option(
            "--login",
            choices=("auto", "api", "form"),
            show_default=True,
            help="How JupyterHub users get in. api: an admin/service token (--hub-token-env) "
            "creates users labcap-<run id>-N through the hub's REST API, issues each a "
            "short-lived token and deletes them afterwards; works with any authenticator. "
            "form: the login page with --hub-password-env (measures the login). auto: api "
            "when the token variable is set, else form.",
        ),
    )
    hub_token_env: str = field(
        default="LABCAP_HUB_TOKEN",
        metadata=option(
            "--hub-token-env",
            show_default=True,
            help="Environment variable holding the hub admin/service token for --login api "
            "(scopes admin:users, tokens, admin:servers, list:users); never printed or "
            "written.",
        ),
    )
    users_file: str | None = field(
        default=None,
        metadata=option(
            "--users-file",
            metavar="FILE",
            help="With --login form: the hub accounts to log in as, one name a line "
            "(NativeAuthenticator and other hubs without sign-up at first login); each "
            "simulated user holds one, so list as many as the largest step has users.",
        ),
    )
    ca_bundle: str | None = field(
        default=None,
        metadata=option(
            "--ca-bundle",
            metavar="FILE",
            help="CA bundle that https targets are verified with [default: "
            "$REQUESTS_CA_BUNDLE, $SSL_CERT_FILE, then the system's]. HTTP(S)_PROXY and "
            "NO_PROXY are followed everywhere.",
        ),
    )
    gpu_mode: str = field(
        default="auto",
        metadata=option(
            "--gpu",
            choices=GPU_MODES,
            show_default=True,
            help="GPU sampling through NVML on this machine: auto (when a GPU is found), nvml "
            "(always; recorded as unavailable, with the reason, where there is none), none.",
        ),
    )
    gpu_metrics_url: str | None = field(
        default=None,
        metadata=option(
            "--gpu-metrics-url",
            metavar="URL",
            help="Also scrape NVIDIA dcgm-exporter's Prometheus metrics (e.g. "
            "http://NODE:9400/metrics): per-GPU, MIG-instance and pod GPU use on the lab's "
            "nodes.",
        ),
    )
    prometheus_url: str | None = field(
        default=None,
        metadata=option(
            "--prometheus-url",
            metavar="URL",
            help="Also read the lab's own Prometheus (e.g. http://NODE:9090) for the run's "
            "time range: node-exporter CPU, I/O wait and memory, cAdvisor container CPU "
            "throttling and memory, dcgm-exporter GPUs, into the host, container and GPU "
            "tables (source prometheus), so the planner's contention rules see the lab's "
            "machine.",
        ),
    )
    kernel_workload: str | None = field(
        default=None,
        metadata=option(
            "--kernel-workload",
            metavar="NAME[:N]|FILE",
            help="Scenarios jupyterhub and lab: after the journey's first cell, run real work "
            "on each kernel, timed as endpoint kernel.workload: cpu[:SECONDS] (a CPU-bound "
            "loop, default 1), memory[:MIB] (allocate and touch, default 64), "
            "gpu-matmul[:SECONDS] (torch or cupy matmuls, default 5; recorded as skipped, "
            "with the reason, where the kernel sees no GPU), or a file of Python code. Each "
            "cell's outcome goes to kernel_workload.parquet and the manifest.",
        ),
    )
    workers: str = field(
        default="0",
        metadata=option(
            "--workers",
            show_default=True,
            metavar="N|auto",
            help="Locust worker processes on this machine (Locust's own master/worker mode, "
            "127.0.0.1 only); auto = one per CPU core; 0 = a single process.",
        ),
    )
    expect_workers: int = field(
        default=0,
        metadata=option(
            "--expect-workers",
            type=int,
            show_default=True,
            metavar="N",
            help="Wait for N `labcap worker`s (other machines) to join this master, hand them "
            "the load plan and locustfile, and merge their windows into this run directory. "
            "Needs LABCAP_WORKER_SECRET (shared with the workers) in the environment.",
        ),
    )
    master_bind: str = field(
        default="0.0.0.0:5557",
        metadata=option(
            "--master-bind",
            show_default=True,
            metavar="ADDR:PORT",
            help="With --expect-workers: where workers join (the handshake); Locust's own "
            "master/worker link listens on PORT+1.",
        ),
    )
    worker_wait: str = field(
        default="120s",
        metadata=option(
            "--worker-wait",
            show_default=True,
            help="With --expect-workers: how long to wait for them before giving up.",
        ),
    )
    slos: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "--slo",
            multiple=True,
            metavar="EXPR",
            config="slo",
            help="Objective, repeatable: p95=500ms, error_pct=1, or per endpoint "
            "hub.spawn_ready:p95=15s. Default: the scenario's own.",
        ),
    )
    step_duration: str = field(
        default="60s",
        metadata=option(
            "--step-duration",
            show_default=True,
            unit="duration",
            config="step_duration",
            help="How long each user count is held (e.g. 30s, 2m, 1m30s).",
        ),
    )
    settle: str | None = field(
        default=None,
        metadata=option(
            "--settle",
            unit="duration",
            help="Start of each step excluded from its statistics "
            "[default: a quarter of the step].",
        ),
    )
    window: str = field(
        default="5s",
        metadata=option(
            "--window",
            show_default=True,
            unit="duration",
            help="Aggregation window for latency histograms.",
        ),
    )
    spawn_rate: float = field(
        default=5.0,
        metadata=option(
            "--spawn-rate",
            show_default=True,
            type=float,
            help="Users started per second when a step begins.",
        ),
    )
    out: Path | None = field(
        default=None,
        metadata=option(
            "--out", type=Path, help="Run directory [default: runs/<scenario>-<timestamp>]."
        ),
    )
    overwrite: bool = field(
        default=False,
        metadata=option("--overwrite", is_flag=True, help="Replace a run already in --out."),
    )
    calibrate: bool = field(
        default=True,
        metadata=option(
            "--calibrate/--no-calibrate",
            show_default=True,
            help="First measure the load generator's own latency floor and throughput "
            "ceiling here (about 5 s, see `labcap calibrate`); kept in the manifest, shown "
            "beside the measured latencies, and no SLO breach within that floor is called.",
        ),
    )
    # not options: labcap demo's run directory name, and a password given directly
    out_prefix: str | None = None  # default: the scenario's name
    hub_password: str | None = field(default=None, repr=False)  # default: $hub_password_env


@dataclass(frozen=True, kw_only=True)
class StartupOptions:
    """What the user asked ``labcap probe startup`` for: its options, their text unparsed."""

    target: str = field(
        default="docker",
        metadata=option(
            "--target",
            choices=("docker", "k8s"),
            show_default=True,
            help="Where containers are started: the Docker engine of DOCKER_HOST, or pods in a "
            "throw-away namespace of a Kubernetes/K3s cluster (deleted afterwards).",
        ),
    )
    kubeconfig: str | None = field(
        default=None, metadata=option("--kubeconfig", metavar="FILE", help=KUBECONFIG_HELP)
    )
    kube_context: str | None = field(
        default=None, metadata=option("--context", help="With --target k8s: context.")
    )
    pull_policy: str = field(
        default="IfNotPresent",
        metadata=option(
            "--pull-policy",
            choices=("IfNotPresent", "Never", "Always"),
            show_default=True,
            help="With --target k8s: the pods' imagePullPolicy.",
        ),
    )
    image: str = field(metadata=option("--image", help="Image to start; must be present locally."))
    command: str | None = field(
        default=None,
        metadata=option("--command", help="Command line; {port} becomes the container's port."),
    )
    env: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "--env", multiple=True, metavar="KEY=VALUE", help="Environment, repeatable."
        ),
    )
    port: str | None = field(
        default=None,
        metadata=option(
            "--port",
            help="Ready when http://127.0.0.1:PORT/PATH answers: a number, or auto "
            "(a free port per container, given to it as $PORT and {port}).",
        ),
    )
    path: str = field(
        default="/", metadata=option("--path", show_default=True, help="HTTP path for --port.")
    )
    concurrency: str = field(
        default="1,4,8",
        metadata=option(
            "--concurrency",
            show_default=True,
            unit="user_steps",
            help="Containers started at once, per step.",
        ),
    )
    repeat: int = field(
        default=1,
        metadata=option("--repeat", show_default=True, type=int, help="Rounds per step."),
    )
    timeout: str = field(
        default="60s",
        metadata=option(
            "--timeout", show_default=True, unit="duration", help="Not ready by then: timeout."
        ),
    )
    interval: str = field(
        default="1s",
        metadata=option(
            "--interval", show_default=True, unit="duration", help="Resource sampling interval."
        ),
    )
    slos: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "--slo",
            multiple=True,
            metavar="EXPR",
            help="Startup objective, repeatable [default: startup.ready:max=30s, error_pct=0].",
        ),
    )
    out: Path | None = field(
        default=None, metadata=option("--out", type=Path, help="Run directory.")
    )
    overwrite: bool = field(
        default=False,
        metadata=option("--overwrite", is_flag=True, help="Replace a run already in --out."),
    )


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """``labcap demo``'s options: a short local step load on the reference lab."""

    users: str = field(
        default=DEFAULT_STEPS,
        metadata=option(
            "--users",
            show_default=True,
            unit="user_steps",
            deprecated=("--steps",),
            help="Concurrent users per step, comma separated.",
        ),
    )
    step_duration: str = field(
        default="20s",
        metadata=option(
            "--step-duration",
            show_default=True,
            unit="duration",
            help="How long each user count is held (e.g. 20s, 1m30s).",
        ),
    )
    out: Path | None = field(
        default=None,
        metadata=option("--out", type=Path, help="Run directory [default: runs/demo-<timestamp>]."),
    )

    def session(self) -> SessionSettings:
        """The run demo makes: the reference lab, started here, under load."""
        return SessionSettings(
            scenario="lab",
            target="local",
            users=self.users,
            step_duration=self.step_duration,
            out=self.out,
            out_prefix="demo",
        )


@dataclass(frozen=True, kw_only=True)
class CleanupOptions:
    """``labcap cleanup``'s options: what crashed runs left behind, where to look."""

    run: str | None = field(
        default=None,
        metadata=option(
            "--run",
            metavar="ID",
            help="Only this run: a probe's run id (label labcap.run-id / labcap.probe) or a run "
            "directory name. Default: every leftover of every crashed run.",
        ),
    )
    runs_dir: Path = field(
        default=Path("runs"),
        metadata=option(
            "--runs-dir",
            type=Path,
            show_default=True,
            help="Where run directories live (their stale .lock files are removed).",
        ),
    )
    kubeconfig: Path | None = field(
        default=None,
        metadata=option(
            "--kubeconfig",
            type=Path,
            help="Also delete namespaces labelled app.kubernetes.io/managed-by=labcap in this "
            "cluster.",
        ),
    )
    hub: str | None = field(
        default=None,
        metadata=option(
            "--hub",
            metavar="URL",
            help="Also delete this JupyterHub's users named labcap-* (with --run ID: "
            "labcap-ID-*), their servers and tokens: what `labcap run --login api` left "
            "behind. Needs the admin token in --hub-token-env.",
        ),
    )
    hub_token_env: str = field(
        default="LABCAP_HUB_TOKEN",
        metadata=option(
            "--hub-token-env",
            show_default=True,
            help="Environment variable holding the hub admin/service token for --hub.",
        ),
    )
    dry_run: bool = field(
        default=False,
        metadata=option("--dry-run", is_flag=True, help="Only list what would be removed."),
    )


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    """``labcap worker``'s options: a load machine that joins a master (``labcap run
    --expect-workers``)."""

    master: str = field(
        metadata=option(
            "--master",
            metavar="HOST:PORT",
            help="The master's --master-bind address (its handshake port).",
        )
    )
    bind: str | None = field(
        default=None,
        metadata=option(
            "--bind",
            metavar="ADDR",
            help="Source address of this worker's connections to the master (a host with "
            "several addresses).",
        ),
    )
    locustfile: Path | None = field(
        default=None,
        metadata=option(
            "--locustfile",
            type=Path,
            help="This machine's own copy of the run's locustfile: the master refuses the "
            "worker unless it is byte for byte the master's (without it, the master's is "
            "used).",
        ),
    )
    calibrate: bool = field(
        default=True,
        metadata=option(
            "--calibrate/--no-calibrate",
            show_default=True,
            help="First measure this machine's generator floor and ceiling (about 5 s); it "
            "goes into the master's manifest.",
        ),
    )
    wait: str = field(
        default="300s",
        metadata=option(
            "--wait",
            show_default=True,
            help="How long to keep trying to reach the master before giving up.",
        ),
    )
