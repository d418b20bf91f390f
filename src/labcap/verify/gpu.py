"""The GPU check: a user server on the new deployment looks at its GPUs through NVML, and
what it sees is compared with the profile's GPU plan (count, memory, sharing).

What a server can see: its devices, their memory, MIG mode and its MIG devices. What it
cannot see: how many time-slicing replicas the node advertises (that lives in the
Kubernetes node's allocatable ``nvidia.com/gpu``), so that part is reported as not verified
rather than passed.
"""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

# Only the model at import time: the device check loads this file with stdlib + pynvml alone.
from labcap.verify.records import FAIL, INCONCLUSIVE, PASS, SKIPPED, CheckResult, Difference

if TYPE_CHECKING:
    from labcap.verify.hub import HubSettings
    from labcap.verify.target import Deployment

Progress = Callable[[str], None]

# Runs inside the user's kernel; needs only nvidia-ml-py there. Returns one JSON string.
PROBE_CODE = r"""
def __labcap_gpu_probe():
    import json
    try:
        import pynvml as nv
    except ImportError as e:
        return json.dumps({"error": f"pynvml not importable in the server: {e}"})
    try:
        nv.nvmlInit()
    except Exception as e:
        return json.dumps({"error": f"NVML unavailable: {e}"})
    def text(v):
        return v.decode() if isinstance(v, bytes) else str(v)
    try:
        out = {"driver": text(nv.nvmlSystemGetDriverVersion()), "devices": []}
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            dev = {"index": i, "name": text(nv.nvmlDeviceGetName(h)),
                   "memory_total_bytes": int(nv.nvmlDeviceGetMemoryInfo(h).total),
                   "mig_mode": None, "mig_devices": []}
            try:
                dev["mig_mode"] = int(nv.nvmlDeviceGetMigMode(h)[0])
            except Exception:
                pass
            if dev["mig_mode"]:
                for j in range(nv.nvmlDeviceGetMaxMigDeviceCount(h)):
                    try:
                        m = nv.nvmlDeviceGetMigDeviceHandleByIndex(h, j)
                    except Exception:
                        continue
                    dev["mig_devices"].append({
                        "name": text(nv.nvmlDeviceGetName(m)),
                        "memory_total_bytes": int(nv.nvmlDeviceGetMemoryInfo(m).total)})
            out["devices"].append(dev)
        out["device_count"] = len(out["devices"])
        return json.dumps(out)
    finally:
        nv.nvmlShutdown()
"""
PROBE_EXPRESSION = "__labcap_gpu_probe()"


def _gap(*args: Any, **kw: Any) -> Difference:
    """A difference between the plan and what the server sees."""
    return Difference(*args, labels=("planned", "seen"), **kw)


def run_probe_locally() -> dict[str, Any]:
    """The same probe in this process (what the device check script runs on a GPU host)."""
    scope: dict[str, Any] = {}
    exec(PROBE_CODE, scope)  # noqa: S102 - our own constant code
    return json.loads(scope["__labcap_gpu_probe"]())


def spawn_options(plan: Mapping[str, Any]) -> dict[str, Any] | None:
    """The user_options that start a GPU server on the new deployment (the profile's
    ``gpu.spawn_options``); None spawns the hub's default profile, CPU-only in labcap's."""
    options = plan.get("spawn_options")
    return dict(options) if isinstance(options, Mapping) and options else None


def probe_server(dep: Deployment, user: str, settings: HubSettings) -> dict[str, Any]:
    """Log ``user`` in on ``dep``, spawn its GPU server, run the probe on a kernel there."""
    from labcap.verify.hub import HubStepError, HubUser

    with HubUser(dep.hub_url, user, dep.hub_password, settings) as hub_user:
        hub_user.login()
        hub_user.spawn(spawn_options(dep.gpu_plan or {}))
        text = hub_user.evaluate(PROBE_CODE, PROBE_EXPRESSION)
    try:
        return json.loads(ast.literal_eval(text))
    except (ValueError, SyntaxError) as e:
        raise HubStepError("kernel", f"probe returned no JSON: {e}") from None


def check_gpu(
    new: Deployment,
    user: str,
    settings: HubSettings | None = None,
    progress: Progress = lambda _m: None,
    probe: Callable[[], dict[str, Any]] | None = None,
) -> CheckResult:
    """``probe`` replaces the server probe (tests hand in the local probe)."""
    from labcap.verify.hub import HubSettings, HubStepError

    started = time.monotonic()
    plan = dict(new.gpu_plan or {})
    expected = int(plan.get("gpus") or 0)
    if not new.hub_url and probe is None:
        return CheckResult("gpu", SKIPPED, "no hub URL for the new deployment: nothing to probe")
    options = spawn_options(plan)
    server = f"{user}'s server (user_options {options})" if options else f"{user}'s server"
    progress(f"verify gpu: probing NVML in {server} on new")
    try:
        seen = probe() if probe else probe_server(new, user, settings or HubSettings())
    except HubStepError as e:
        status = INCONCLUSIVE if expected else SKIPPED
        return CheckResult(
            "gpu",
            status,
            f"could not run the probe in {server} ({e})",
            details={"plan": plan, "spawn_options": options},
        )
    result = judge_gpu(plan, seen)
    if expected and not options:  # the hub's default profile: CPU-only in labcap's profiles
        result = replace(
            result,
            summary=f"{result.summary} (spawned the hub's default profile: the GPU plan names "
            "no spawn_options)",
        )
    details = {**result.details, "spawn_options": options}
    return replace(result, details=details, elapsed_s=round(time.monotonic() - started, 2))


def judge_gpu(plan: Mapping[str, Any], seen: Mapping[str, Any]) -> CheckResult:
    """Compare what the server saw with the plan; pure, so every branch is testable."""
    expected = int(plan.get("gpus") or 0)
    sharing = str(plan.get("sharing") or "none")
    count = int(seen.get("device_count") or 0)
    details: dict[str, Any] = {"plan": dict(plan), "seen": dict(seen)}
    if count == 0:
        why = seen.get("error") or "NVML lists no device"
        if not expected:
            return CheckResult(
                "gpu",
                SKIPPED,
                f"no GPU expected (no GPU plan) and none visible in the user server: {why}",
                details=details,
            )
        return CheckResult(
            "gpu",
            FAIL,
            f"the plan expects {expected} GPU(s) ({sharing}); the server sees none",
            (_gap("gpu-not-visible", "user server", f"{expected} GPU(s)", 0, why),),
            details,
        )
    devices = list(seen.get("devices") or [])
    desc = ", ".join(f"{d['name']} {d['memory_total_bytes'] / 2**30:.0f} GiB" for d in devices)
    diffs = [
        _gap("gpu-no-memory", f"GPU {d['index']} {d['name']}", None, 0)
        for d in devices
        if not d.get("memory_total_bytes")
    ]
    if not expected:
        return CheckResult(
            "gpu",
            PASS if not diffs else FAIL,
            f"the server sees {count} GPU(s) ({desc}); no GPU plan given, so "
            "sharing was not checked",
            tuple(diffs),
            details,
        )
    notes: list[str] = []
    shares = [m for d in devices for m in d.get("mig_devices", [])] if sharing == "mig" else devices
    if len(shares) > 1:
        diffs.append(
            _gap(
                "gpu-sharing-mismatch",
                "GPU shares visible to one user server",
                1,
                len(shares),
                "each user server is planned to get one share (a GPU, a replica or a MIG device)",
            )
        )
    if sharing == "mig":
        diffs += _mig_differences(plan, devices)
    else:
        diffs += [
            _gap(
                "gpu-sharing-mismatch",
                f"GPU {d['index']} MIG mode",
                "disabled",
                "enabled",
                f"plan shares by {sharing}",
            )
            for d in devices
            if d.get("mig_mode")
        ]
    if sharing == "time-slicing":
        notes.append(
            f"time-slicing replicas ({plan.get('time_slicing_replicas')}) are not visible from "
            "inside a server: check the node's allocatable nvidia.com/gpu = "
            f"{expected * int(plan.get('time_slicing_replicas') or 1)}"
        )
    details["notes"] = notes
    summary = f"the server sees {count} GPU(s) ({desc}); plan: {expected} GPU(s), {sharing}"
    if diffs:
        return CheckResult("gpu", FAIL, summary, tuple(diffs), details)
    if notes:
        return CheckResult("gpu", INCONCLUSIVE, f"{summary}; {notes[0]}", (), details)
    return CheckResult("gpu", PASS, summary, (), details)


def _mig_differences(plan: Mapping[str, Any], devices: list[dict[str, Any]]) -> list[Difference]:
    wanted = dict(plan.get("mig_devices_per_gpu") or {})
    diffs = []
    mig_devices = [m for d in devices for m in d.get("mig_devices", [])]
    for d in devices:
        if not d.get("mig_mode"):
            diffs.append(
                _gap(
                    "gpu-sharing-mismatch",
                    f"GPU {d['index']} MIG mode",
                    "enabled",
                    "disabled",
                    "plan shares by MIG",
                )
            )
    if any(d.get("mig_mode") for d in devices) and not mig_devices:
        diffs.append(_gap("gpu-sharing-mismatch", "MIG devices", "at least one", 0))
    for m in mig_devices:
        if wanted and not any(profile in m["name"] for profile in wanted):
            diffs.append(
                _gap(
                    "gpu-sharing-mismatch",
                    f"MIG device {m['name']}",
                    ", ".join(wanted),
                    m["name"],
                    "profile not in the plan",
                )
            )
    return diffs
