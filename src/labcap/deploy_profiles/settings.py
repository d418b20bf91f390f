"""``labcap profile``'s options as one typed record: each field's ``metadata["cli"]`` is its
option (or argument) and ``--help`` text (see labcap.options), in ``--help`` order.

A field named like a field of ``ProfileSettings`` (sizing.py) is handed to it as is
(``labcap.deploy_profiles.make.profile_settings``): a new sizing option is a field there
plus a field here of the same name, with its ``option(...)``. The other fields (run_dir,
out, loadgen ..., validate_server ...) are read by ``make_profile``.

Standard library only: the CLI reads this before the renderer (jinja2, the planner) is
imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labcap.options import argument, option

PLATFORM_CHOICES = ("compose", "k3s")
GPU_SHARING_CHOICES = ("none", "time-slicing", "mig")
LOADGEN_CHOICES = ("none", "k8s")


@dataclass(frozen=True, kw_only=True)
class ProfileOptions:
    """One ``labcap profile``: the run, where to write, the sizing, and the extras."""

    run_dir: Path = field(metadata=argument(type=Path))
    platform: str = field(
        metadata=option(
            "--platform",
            choices=PLATFORM_CHOICES,
            help="compose: docker-compose.yml + .env; k3s: Kubernetes manifests. Compose from "
            "a K3s-sized run is the rollback direction.",
        )
    )
    out: Path = field(
        metadata=option(
            "--out",
            type=Path,
            help="Directory to write; empty, or holding an earlier profile of the same "
            "platform (its secrets are kept).",
        )
    )
    expected_users: int | None = field(
        default=None,
        metadata=option(
            "--expected-users",
            unit="users",
            config="expected_users",
            help="Concurrent users the lab expects.",
        ),
    )
    gpus: int = field(
        default=0,
        metadata=option("--gpus", type=int, show_default=True, help="GPUs, all nodes together."),
    )
    gpu_sharing: str = field(
        default="none",
        metadata=option(
            "--gpu-sharing",
            choices=GPU_SHARING_CHOICES,
            show_default=True,
            help="How user servers share the GPUs.",
        ),
    )
    gpu_users: int | None = field(
        default=None,
        metadata=option(
            "--gpu-users",
            type=int,
            metavar="N",
            help="Concurrent GPU users [default: every design user].",
        ),
    )
    time_slicing_replicas: int | None = field(
        default=None,
        metadata=option(
            "--time-slicing-replicas",
            type=int,
            metavar="R",
            help="Shares per GPU with time-slicing; every share sees all of the GPU's memory "
            "[default: GPU users per GPU, at least 2, at most 4 (NVIDIA's example)].",
        ),
    )
    mig_profiles: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "--mig-profile",
            multiple=True,
            metavar="PROFILE[=N]",
            help="MIG profile and instances per GPU, repeatable (e.g. 1g.10gb=4) "
            "[N: as many as fit].",
        ),
    )
    gpu_model: str | None = field(
        default=None,
        metadata=option("--gpu-model", help="GPU model for MIG, e.g. A100-40GB, H100-80GB."),
    )
    domain: str = field(
        default="lab.example.org",
        metadata=option("--domain", show_default=True, help="Public host name."),
    )
    loadgen: str = field(
        default="none",
        metadata=option(
            "--loadgen",
            choices=LOADGEN_CHOICES,
            show_default=True,
            help="k8s: also write loadgen/ (a Job of `labcap worker` Pods, from labcap's own "
            "image, that join your `labcap run --expect-workers N`; sized from the run's req/s "
            "per user and the calibrated generator ceiling) for when one machine cannot "
            "generate --expected-users.",
        ),
    )
    loadgen_host: str | None = field(
        default=None,
        metadata=option(
            "--loadgen-host",
            metavar="URL",
            help="With --loadgen k8s: the URL the run loads, in loadgen/README.md's command "
            "[default: the run's host].",
        ),
    )
    loadgen_master: str | None = field(
        default=None,
        metadata=option(
            "--loadgen-master",
            metavar="HOST:PORT",
            help="With --loadgen k8s: where the Pods reach your `labcap run --expect-workers "
            "N --master-bind ADDR:PORT` (its handshake port).",
        ),
    )
    loadgen_host_network: bool = field(
        default=False,
        metadata=option(
            "--loadgen-host-network",
            is_flag=True,
            help="With --loadgen k8s: the worker Pods use the node's network (where the Pod "
            "network cannot reach the master).",
        ),
    )
    cpu_per_user: float = field(
        default=2.0,
        metadata=option(
            "--cpu-per-user",
            unit="cpu",
            show_default=True,
            help="CPU limit per user, in Kubernetes' form: 2, 0.5 or 500m.",
        ),
    )
    mem_per_user_gib: float = field(
        default=4.0,
        metadata=option(
            "--mem-per-user",
            unit="memory_gib",
            show_default=True,
            help="Memory limit per user, in Kubernetes' form: 4Gi, 512Mi (a bare number is GiB).",
        ),
    )
    validate_server: bool = field(
        default=False,
        metadata=option(
            "--validate-server",
            is_flag=True,
            help="k3s: also submit every object to a live API server with dryRun=All (nothing "
            "is persisted) before writing. Kinds it does not serve are reported, not rejected.",
        ),
    )
    kubeconfig: str | None = field(
        default=None,
        metadata=option(
            "--kubeconfig",
            metavar="PATH",
            help="For --validate-server [default: $KUBECONFIG, ~/.kube/config, "
            "/etc/rancher/k3s/k3s.yaml].",
        ),
    )
    context: str | None = field(
        default=None,
        metadata=option("--context", help="kubeconfig context for --validate-server."),
    )
    admin_users: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "--admin-user",
            multiple=True,
            metavar="NAME",
            help="Hub admin, repeatable; signs up first and approves sign-ups [default: the "
            ".env's, else admin].",
        ),
    )
    idle_timeout_s: int = field(
        default=3600,
        metadata=option(
            "--idle-timeout",
            unit="duration_whole_s",
            show_default=True,
            help="Stop user servers idle this long (jupyterhub-idle-culler).",
        ),
    )
    image_pins: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "--image",
            multiple=True,
            metavar="KEY=REF",
            help="Pin another image, repeatable (e.g. "
            "notebook=quay.io/jupyter/scipy-notebook:2024-12-02).",
        ),
    )
