"""GPU sharing plans (whole GPUs, time-slicing, MIG), checked for consistency before rendering.

The MIG table lists, per GPU model, each profile's compute slices (of 7; 4 on
A30), memory slices (of 8; 4 on A30) and the most instances of it one GPU
holds. Source: NVIDIA's MIG User Guide, "Supported MIG Profiles", and the
``all-<profile>`` configurations of NVIDIA mig-parted's default config. The fit
check adds up compute and memory slices per GPU; it does not model the
placement geometry, so a few sums that fit (rare mixes of 4g with 2g) may still
be refused by the driver: ``nvidia-smi mig -lgipp`` on the node is the last word.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from labcap.errors import LabcapError

GPU_SHARING = ("none", "time-slicing", "mig")
COMPOSE_GPU_CHOICE = "GPU share"  # the Compose hub's DockerSpawner.allowed_images key for GPU


@dataclass(frozen=True)
class MigProfile:
    name: str
    compute_slices: int
    memory_slices: int
    max_instances: int


@dataclass(frozen=True)
class GpuModel:
    name: str
    compute_slices: int
    memory_slices: int
    profiles: tuple[MigProfile, ...]

    def profile(self, name: str) -> MigProfile | None:
        return next((p for p in self.profiles if p.name == name), None)


def _model(name: str, compute: int, memory: int, *rows: tuple[str, int, int, int]) -> GpuModel:
    return GpuModel(name, compute, memory, tuple(MigProfile(*r) for r in rows))


_SEVEN_WAY_80GB = (
    ("1g.10gb", 1, 1, 7),
    ("1g.20gb", 1, 2, 4),
    ("2g.20gb", 2, 2, 3),
    ("3g.40gb", 3, 4, 2),
    ("4g.40gb", 4, 4, 1),
    ("7g.80gb", 7, 8, 1),
)

MIG_MODELS: dict[str, GpuModel] = {
    m.name: m
    for m in (
        _model(
            "A100-40GB",
            7,
            8,
            ("1g.5gb", 1, 1, 7),
            ("1g.10gb", 1, 2, 4),
            ("2g.10gb", 2, 2, 3),
            ("3g.20gb", 3, 4, 2),
            ("4g.20gb", 4, 4, 1),
            ("7g.40gb", 7, 8, 1),
        ),
        _model("A100-80GB", 7, 8, *_SEVEN_WAY_80GB),
        _model("H100-80GB", 7, 8, *_SEVEN_WAY_80GB),
        _model("A30-24GB", 4, 4, ("1g.6gb", 1, 1, 4), ("2g.12gb", 2, 2, 2), ("4g.24gb", 4, 4, 1)),
        _model(
            "H200-141GB",
            7,
            8,
            ("1g.18gb", 1, 1, 7),
            ("1g.35gb", 1, 2, 4),
            ("2g.35gb", 2, 2, 3),
            ("3g.71gb", 3, 4, 2),
            ("4g.71gb", 4, 4, 1),
            ("7g.141gb", 7, 8, 1),
        ),
    )
}


@dataclass(frozen=True)
class GpuPlan:
    """How GPUs are shared among user servers, and how many GPU users that serves.

    ``capacity`` is the number of concurrent GPU users the configuration can
    place: whole GPUs, GPUs × time-slicing replicas, or GPUs × MIG devices per GPU.
    ``mig_devices`` are (profile, instances per GPU).
    """

    gpus: int
    sharing: str
    gpu_users: int
    capacity: int
    gpu_model: str | None = None
    replicas: int | None = None
    mig_strategy: str | None = None
    mig_devices: tuple[tuple[str, int], ...] = field(default=())
    notes: tuple[str, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())  # the notes a profile's reader must see

    @property
    def enabled(self) -> bool:
        return self.gpus > 0

    @property
    def resource_names(self) -> tuple[str, ...]:
        """The extended resources user pods request (one per MIG profile in mixed mode)."""
        if not self.enabled:
            return ()
        if self.mig_strategy == "mixed":
            return tuple(f"nvidia.com/mig-{p}" for p, _ in self.mig_devices)
        return ("nvidia.com/gpu",)

    def resource_counts(self) -> tuple[tuple[str, int], ...]:
        """Each resource and how many of it the node offers (for ResourceQuota)."""
        if self.mig_strategy == "mixed":
            return tuple((f"nvidia.com/mig-{p}", n * self.gpus) for p, n in self.mig_devices)
        return (("nvidia.com/gpu", self.capacity),) if self.enabled else ()

    def profile_slugs(self) -> tuple[str, ...]:
        """The K3s hub's GPU profile_list slugs, one per resource: gpu-1, gpu-2, ..."""
        return tuple(f"gpu-{i}" for i, _ in enumerate(self.resource_names, 1))

    def spawn_options(self, platform: str) -> dict[str, str] | None:
        """The user_options a GPU server is spawned with (``POST .../server`` body), as a
        user picks the GPU entry on the spawn page: KubeSpawner's profile slug on K3s (the
        first one with MIG mixed), DockerSpawner's image choice on Compose; None without
        GPUs. Without them the hub starts the default, CPU-only server."""
        if not self.enabled:
            return None
        if platform == "k3s":
            return {"profile": self.profile_slugs()[0]}
        return {"image": COMPOSE_GPU_CHOICE}

    def device_pool(self) -> tuple[str, ...]:
        """Docker device ids, one entry per concurrent GPU user (for the Compose spawner hook).

        A time-sliced GPU appears ``replicas`` times; a MIG device is ``GPU:INDEX``. The
        pool goes round the GPUs, so that the first free entry spreads users over them.
        """
        if self.sharing == "mig":
            per_gpu = sum(n for _, n in self.mig_devices)
            return tuple(f"{g}:{i}" for i in range(per_gpu) for g in range(self.gpus))
        copies = self.replicas if self.sharing == "time-slicing" else 1
        return tuple(str(g) for _ in range(copies or 1) for g in range(self.gpus))

    def to_dict(self) -> dict[str, object]:
        return {
            "gpus": self.gpus,
            "sharing": self.sharing,
            "gpu_users": self.gpu_users,
            "capacity": self.capacity,
            "gpu_model": self.gpu_model,
            "time_slicing_replicas": self.replicas,
            "mig_strategy": self.mig_strategy,
            "mig_devices_per_gpu": dict(self.mig_devices),
            "resources": list(self.resource_names),
            "notes": list(self.notes),
        }


def parse_mig_profile(text: str) -> tuple[str, int | None]:
    """'1g.10gb' -> ('1g.10gb', None); '1g.10gb=3' -> ('1g.10gb', 3) instances per GPU."""
    name, _, count = str(text).strip().partition("=")
    name = name.strip()
    if not name:
        raise LabcapError(f"--mig-profile {text!r} is empty: use e.g. 1g.10gb or 1g.10gb=3")
    if not count:
        return name, None
    if not re.fullmatch(r"[0-9]+", count.strip()) or int(count) <= 0:
        raise LabcapError(
            f"--mig-profile {text!r}: the count after '=' must be a positive whole number"
        )
    return name, int(count)


def plan_gpus(
    gpus: int,
    sharing: str,
    gpu_users: int,
    *,
    replicas: int | None = None,
    gpu_model: str | None = None,
    mig_profiles: tuple[str, ...] = (),
    gpu_users_given: bool = True,
) -> GpuPlan:
    """Check a GPU sharing request and return its plan; refuse an inconsistent one.

    ``gpu_users_given``: False when ``gpu_users`` is labcap's default (every design user),
    not the user's figure; time-slicing then sizes to its default replicas and notes the
    shortfall instead of refusing (an explicit --time-slicing-replicas too)."""
    if sharing not in GPU_SHARING:
        raise LabcapError(f"--gpu-sharing {sharing!r} is unknown; valid: {', '.join(GPU_SHARING)}")
    if gpus < 0 or gpu_users < 0:
        raise LabcapError("--gpus and --gpu-users must be zero or more")
    if replicas is not None and sharing != "time-slicing":
        raise LabcapError("--time-slicing-replicas needs --gpu-sharing time-slicing")
    if mig_profiles and sharing != "mig":
        raise LabcapError("--mig-profile needs --gpu-sharing mig")
    if gpus == 0:
        if sharing != "none":
            raise LabcapError(f"--gpu-sharing {sharing} needs GPUs: pass --gpus N")
        if gpu_users:
            raise LabcapError(f"{gpu_users} GPU users were planned but --gpus is 0")
        return GpuPlan(0, "none", 0, 0, gpu_model=gpu_model)
    if sharing == "none":
        if gpu_users > gpus:
            raise LabcapError(
                f"GPU sharing is inconsistent: {gpu_users} planned concurrent GPU users but "
                f"only {gpus} whole GPU(s) without sharing; use --gpu-sharing time-slicing or "
                f"mig, more --gpus, or fewer --gpu-users"
            )
        return GpuPlan(gpus, "none", gpu_users, gpus, gpu_model=gpu_model)
    if sharing == "time-slicing":
        return _time_slicing(gpus, gpu_users, replicas, gpu_model, gpu_users_given)
    return _mig(gpus, gpu_users, gpu_model, mig_profiles)


DEFAULT_TIME_SLICING_REPLICAS = 4
"""Shares per GPU when --time-slicing-replicas is not given (fewer when fewer GPU users).

NVIDIA's device plugin takes any ``replicas`` of 2 or more (api/config/v1/replicas.go) and
hands the shares out "indiscriminately": every share sees the whole GPU memory and runs in
the same fault domain (k8s-device-plugin README, "With CUDA Time-Slicing"). The GPU
Operator's time-slicing guide configures 4 replicas per GPU. labcap takes that as the
default ceiling instead of one share per expected user (36 per GPU for 120 users on four
GPUs would give each user a 36th of the compute and no memory of their own)."""


def _gb(model: str | None) -> int | None:
    """The memory of a GPU model named like 'H100-80GB' (None when the name does not say)."""
    found = re.search(r"([0-9]+)\s*GB$", model or "", re.IGNORECASE)
    return int(found.group(1)) if found else None


def _time_slicing(
    gpus: int, gpu_users: int, replicas: int | None, model: str | None, users_given: bool
) -> GpuPlan:
    derived = replicas is None
    per_gpu = math.ceil(gpu_users / gpus)
    if replicas is None:
        replicas = min(DEFAULT_TIME_SLICING_REPLICAS, max(2, per_gpu))
    if replicas < 2:
        raise LabcapError(
            f"--time-slicing-replicas {replicas}: one replica per GPU is no sharing; "
            "use --gpu-sharing none, or 2 or more replicas"
        )
    if replicas * gpus < gpu_users and not derived and users_given:
        raise LabcapError(
            f"GPU sharing is inconsistent: time-slicing replicas {replicas} × {gpus} GPU(s) = "
            f"{replicas * gpus} GPU shares, fewer than the {gpu_users} planned concurrent GPU "
            f"users; raise --time-slicing-replicas to {per_gpu} or more, "
            "add --gpus, or lower --gpu-users"
        )
    size = _gb(model)
    memory = (
        f" (each share sees all {size} GB of the {model}, not {size / replicas:g} GB)"
        if size
        else ""
    )
    warnings = [
        f"time-slicing gives {replicas} shares per GPU that take the GPU's compute in turns, "
        f"with no memory isolation{memory}: one user's process can take the memory of every "
        "user on that GPU, and a crash on it is a crash for all of them"
    ]
    notes = []
    if derived:
        notes.append(
            f"replicas: {replicas} per GPU (labcap's default: ceil({gpu_users} GPU users / "
            f"{gpus} GPUs), at least 2 and at most {DEFAULT_TIME_SLICING_REPLICAS}; set "
            "--time-slicing-replicas)"
        )
    if replicas * gpus < gpu_users:
        warnings.append(
            f"{gpu_users} GPU users on {gpus} GPU(s) is {per_gpu} per GPU, more than the "
            f"{replicas} time-slicing replicas: at most {replicas * gpus} GPU servers run at "
            "once and the next GPU spawn waits (pod Pending on nvidia.com/gpu, then the spawn "
            "times out) until the idle culler or a user frees a share; add GPUs, use MIG, "
            f"pass a smaller --gpu-users, or raise --time-slicing-replicas towards {per_gpu} "
            f"(each share then gets about 1/{per_gpu} of the GPU's compute and still no memory "
            "of its own)"
        )
    return GpuPlan(
        gpus,
        "time-slicing",
        gpu_users,
        replicas * gpus,
        gpu_model=model,
        replicas=replicas,
        notes=tuple(warnings + notes),
        warnings=tuple(warnings),
    )


def _mig(gpus: int, gpu_users: int, model_name: str | None, profiles: tuple[str, ...]) -> GpuPlan:
    valid_models = ", ".join(MIG_MODELS)
    if not model_name:
        raise LabcapError(f"--gpu-sharing mig needs --gpu-model; MIG models: {valid_models}")
    model = MIG_MODELS.get(model_name)
    if model is None:
        raise LabcapError(
            f"--gpu-model {model_name!r} has no MIG profile table here; MIG models: {valid_models}"
        )
    valid = ", ".join(p.name for p in model.profiles)
    if not profiles:
        raise LabcapError(f"--gpu-sharing mig needs --mig-profile; {model.name} offers: {valid}")
    counts: dict[str, int] = {}
    for text in profiles:
        name, count = parse_mig_profile(text)
        prof = model.profile(name)
        if prof is None:
            raise LabcapError(
                f"MIG profile {name!r} does not exist on {model.name}; valid profiles: {valid}"
            )
        counts[name] = counts.get(name, 0) + (count if count is not None else prof.max_instances)
    for name, n in counts.items():
        prof = model.profile(name)
        assert prof is not None
        if n > prof.max_instances:
            raise LabcapError(
                f"too many MIG slices: {n} × {name} per GPU, but a {model.name} holds at most "
                f"{prof.max_instances} of them"
            )
    compute = sum(model.profile(p).compute_slices * n for p, n in counts.items())  # type: ignore[union-attr]
    memory = sum(model.profile(p).memory_slices * n for p, n in counts.items())  # type: ignore[union-attr]
    layout = " + ".join(f"{n} × {p}" for p, n in counts.items())
    if compute > model.compute_slices or memory > model.memory_slices:
        raise LabcapError(
            f"too many MIG slices: {layout} per GPU needs {compute} compute and {memory} memory "
            f"slices, but a {model.name} has {model.compute_slices} and {model.memory_slices}"
        )
    per_gpu = sum(counts.values())
    if per_gpu * gpus < gpu_users:
        raise LabcapError(
            f"GPU sharing is inconsistent: {layout} per GPU × {gpus} GPU(s) = {per_gpu * gpus} "
            f"MIG devices, fewer than the {gpu_users} planned concurrent GPU users"
        )
    strategy = "single" if len(counts) == 1 else "mixed"
    notes = (
        "fit checked by compute and memory slices; placement geometry is the driver's: "
        "check with `nvidia-smi mig -lgipp` before applying",
    )
    return GpuPlan(
        gpus,
        "mig",
        gpu_users,
        per_gpu * gpus,
        gpu_model=model.name,
        mig_strategy=strategy,
        mig_devices=tuple(counts.items()),
        notes=notes,
    )
