"""GPUs through NVML (nvidia-ml-py): utilisation, memory, clocks, power, errors, processes.

One sampler thread reads every GPU at a fixed interval. Each interval gives
one ``GpuSample`` per physical GPU and, where MIG is enabled, one per MIG
instance (its own memory; NVML defines no per-instance utilisation, so those
fields are null with ``util_note`` saying why, and ``engine_active_pct``
carries NVML's GPM graphics activity where the GPU supports GPM, Hopper and
later). Each process on a GPU becomes a ``GpuProcess`` row with its memory and,
from ``/proc/<pid>/cgroup``, its container or Kubernetes pod where that can be
resolved.

A field the GPU does not support (``NVML_ERROR_NOT_SUPPORTED``), or may not
read, is null, never a crash. No NVML library, no driver, no device or no
permission makes the collector *unavailable* with that reason, and the run
goes on without it.

``dcgm.py`` writes the same ``gpu_samples`` schema from dcgm-exporter, with
``source`` telling the two apart.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcap.collectors.base import CollectorStatus, RunContext
from labcap.store import GPU_PROCESSES, GPU_SAMPLES

MIG_UTIL_NOTE = (
    "utilisation is not defined under MIG: NVML reports none per instance or for the "
    "partitioned GPU; engine_active_pct (GPM, or dcgm-exporter's "
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE) measures activity instead"
)


@dataclass(frozen=True)
class NvmlSettings:
    interval_s: float = field(default=1.0, metadata={"help": "Seconds between GPU samples."})
    processes: bool = field(
        default=True, metadata={"help": "Record per-process GPU memory and its container/pod."}
    )
    proc_root: str = field(default="/proc", metadata={"help": "Where /proc/<pid>/cgroup is."})


@dataclass(frozen=True)
class GpuSample:
    """One GPU or MIG instance at one instant; NVML and dcgm-exporter share this schema."""

    t_unix: float
    source: str  # nvml | dcgm
    gpu_index: int
    gpu_uuid: str
    gpu_name: str
    mig_instance: int | None = None  # GPU instance id; None for a whole GPU
    mig_profile: str | None = None  # e.g. 1g.10gb
    mig_uuid: str | None = None
    util_gpu_pct: float | None = None
    util_mem_pct: float | None = None
    engine_active_pct: float | None = None  # graphics/compute engine active (MIG-safe)
    util_note: str | None = None
    mem_used_bytes: int | None = None
    mem_total_bytes: int | None = None
    sm_clock_mhz: float | None = None
    power_w: float | None = None
    temperature_c: float | None = None
    ecc_uncorrected: int | None = None  # volatile count since the driver loaded
    xid_count: int | None = None  # critical XID events seen since sampling began
    xid_last: int | None = None
    processes: int | None = None  # processes holding memory on this GPU / instance
    pod: str | None = None  # dcgm-exporter's Kubernetes attribution
    namespace: str | None = None
    container: str | None = None


@dataclass(frozen=True)
class GpuProcess:
    t_unix: float
    source: str
    gpu_index: int
    gpu_uuid: str
    mig_instance: int | None
    pid: int
    used_mem_bytes: int | None
    process_name: str | None
    container_id: str | None
    pod_uid: str | None
    runtime: str | None  # docker | containerd | cri-o | podman | kubepods


SAMPLE_COLUMNS = list(GpuSample.__dataclass_fields__)
PROCESS_COLUMNS = list(GpuProcess.__dataclass_fields__)


def sample_frames(samples: list[GpuSample], processes: list[GpuProcess]) -> dict[str, Any]:
    """The collector tables; empty frames keep their columns."""
    import pandas as pd

    return {
        GPU_SAMPLES: pd.DataFrame([s.__dict__ for s in samples], columns=SAMPLE_COLUMNS),
        GPU_PROCESSES: pd.DataFrame([p.__dict__ for p in processes], columns=PROCESS_COLUMNS),
    }


# --- cgroup → container / pod ----------------------------------------------------------------

_HEX64 = r"[0-9a-f]{64}"
_CONTAINER_PATTERNS = (
    (re.compile(rf"docker-({_HEX64})\.scope"), "docker"),
    (re.compile(rf"/docker/({_HEX64})"), "docker"),
    (re.compile(rf"cri-containerd-({_HEX64})\.scope"), "containerd"),
    (re.compile(rf"crio-(?:conmon-)?({_HEX64})\.scope"), "cri-o"),
    (re.compile(rf"libpod-({_HEX64})\.scope"), "podman"),
    (re.compile(rf"/kubepods[^\n]*/({_HEX64})(?:$|/)"), "kubepods"),
    (re.compile(rf"/actions_job/({_HEX64})"), "docker"),
)
_POD_UID = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})"
)


@dataclass(frozen=True)
class CgroupOwner:
    container_id: str | None
    pod_uid: str | None
    runtime: str | None


def owner_from_cgroup(text: str) -> CgroupOwner:
    """The container and pod a process belongs to, from its ``/proc/<pid>/cgroup`` text.

    Handles cgroup v1 and v2 paths of Docker, containerd, CRI-O and Podman, with
    the systemd and cgroupfs drivers (``kubepods-burstable-pod<uid>.slice`` or
    ``/kubepods/burstable/pod<uid>/<id>``). A host process gives all None.
    """
    container = runtime = None
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for pattern, name in _CONTAINER_PATTERNS:
            m = pattern.search(path)
            if m:
                container, runtime = m.group(1), name
                break
        if container:
            break
    pod = _POD_UID.search(text)
    pod_uid = pod.group(1).replace("_", "-") if pod else None
    if pod_uid and runtime is None:
        runtime = "kubepods"
    return CgroupOwner(container, pod_uid, runtime)


def process_owner(pid: int, proc_root: str = "/proc") -> tuple[str | None, CgroupOwner]:
    """(process name, cgroup owner) of ``pid``; Nones where it is gone or unreadable."""
    base = Path(proc_root) / str(pid)
    try:
        name: str | None = (base / "comm").read_text().strip()
    except OSError:
        name = None
    try:
        owner = owner_from_cgroup((base / "cgroup").read_text())
    except OSError:
        owner = CgroupOwner(None, None, None)
    return name, owner


# --- NVML ------------------------------------------------------------------------------------


def nvml_unavailable_reason(nvml: Any) -> str:
    """Why NVML cannot be used here ('' when it can); leaves NVML shut down."""
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as e:
        return _init_error(nvml, e)
    try:
        if nvml.nvmlDeviceGetCount() == 0:
            return "no NVIDIA GPU found (NVML sees 0 devices)"
    except nvml.NVMLError as e:
        return f"NVML could not count devices: {e}"
    finally:
        _shutdown(nvml)
    return ""


def _init_error(nvml: Any, e: Exception) -> str:
    code = getattr(e, "value", None)
    if code == nvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        return "no NVIDIA driver: the NVML library (libnvidia-ml.so.1) was not found"
    if code == nvml.NVML_ERROR_DRIVER_NOT_LOADED:
        return "the NVIDIA driver is not loaded"
    if code == nvml.NVML_ERROR_NO_PERMISSION:
        return "no permission to use the GPU through NVML (check /dev/nvidia* access)"
    return f"NVML failed to start: {e}"


def _shutdown(nvml: Any) -> None:
    # already down, or the library vanished: nothing to release
    with contextlib.suppress(Exception):
        nvml.nvmlShutdown()


def load_nvml() -> Any:
    import pynvml

    return pynvml


class _Gpm:
    """GPU Performance Monitoring: graphics-engine activity between two samples.

    The only per-MIG-instance activity NVML offers (Hopper and later); None where
    the GPU or driver lacks it.
    """

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        self._prev: dict[tuple[int, int | None], Any] = {}
        self.broken = False

    def supported(self, handle: Any) -> bool:
        try:
            return bool(self.nvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice)
        except Exception:
            return False

    def activity(self, handle: Any, key: tuple[int, int | None]) -> float | None:
        """Percent of the last interval the graphics engine was busy; None on the first call."""
        if self.broken:
            return None
        nv = self.nvml
        try:
            sample = nv.nvmlGpmSampleAlloc()
            if key[1] is None:
                nv.nvmlGpmSampleGet(handle, sample)
            else:
                nv.nvmlGpmMigSampleGet(handle, key[1], sample)
        except Exception:
            self.broken = True
            return None
        prev = self._prev.get(key)
        self._prev[key] = sample
        if prev is None:
            return None
        try:
            mg = nv.c_nvmlGpmMetricsGet_t()
            mg.version = nv.NVML_GPM_METRICS_GET_VERSION
            mg.numMetrics = 1
            mg.sample1, mg.sample2 = prev, sample
            mg.metrics[0].metricId = nv.NVML_GPM_METRIC_GRAPHICS_UTIL
            nv.nvmlGpmMetricsGet(mg)
            ok = mg.metrics[0].nvmlReturn == nv.NVML_SUCCESS
            return round(float(mg.metrics[0].value), 2) if ok else None
        except Exception:
            return None
        finally:
            with contextlib.suppress(Exception):
                nv.nvmlGpmSampleFree(prev)

    def close(self) -> None:
        for s in self._prev.values():
            with contextlib.suppress(Exception):
                self.nvml.nvmlGpmSampleFree(s)
        self._prev.clear()


class NvmlCollector:
    """Samples every NVIDIA GPU (and MIG instance) through NVML in its own thread."""

    name = "gpu"

    def __init__(self, settings: NvmlSettings | None = None, nvml: Any = None) -> None:
        self.settings = settings or NvmlSettings()
        self._nvml = nvml  # injected for tests; pynvml by default
        self._samples: list[GpuSample] = []
        self._processes: list[GpuProcess] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warnings: list[str] = []
        self._reason = ""
        self._available = False
        self._xid_set: Any = None
        self._xid: dict[int, list[int]] = {}  # gpu index -> XIDs seen
        self._xid_supported: set[int] = set()
        self._gpm: _Gpm | None = None
        self._gpm_ok: set[int] = set()
        self.devices: list[dict[str, Any]] = []
        self.cpu_s = 0.0  # sampler thread CPU time (the overhead benchmark reads it)
        self.started_at = 0.0

    # -- lifecycle --

    def start(self, ctx: RunContext | None = None) -> None:
        try:
            nv = self._nvml or load_nvml()
        except ImportError:
            self._reason = "nvidia-ml-py is not installed: pip install 'labcap[gpu]' brings it"
            return
        self._nvml = nv
        reason = self._init(nv)
        if reason:
            self._reason = reason
            return
        self._available = True
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._loop, name="labcap-gpu", daemon=True)
        self._thread.start()

    def _init(self, nv: Any) -> str:
        try:
            nv.nvmlInit()
        except nv.NVMLError as e:
            return _init_error(nv, e)
        try:
            count = nv.nvmlDeviceGetCount()
        except nv.NVMLError as e:
            _shutdown(nv)
            return f"NVML could not count devices: {e}"
        if count == 0:
            _shutdown(nv)
            return "no NVIDIA GPU found (NVML sees 0 devices)"
        self._gpm = _Gpm(nv)
        for i in range(count):
            try:
                h = nv.nvmlDeviceGetHandleByIndex(i)
            except nv.NVMLError as e:
                self._warnings.append(f"GPU {i}: no handle ({e})")
                continue
            self.devices.append(
                {"index": i, "uuid": _text(_get(nv, nv.nvmlDeviceGetUUID, h)) or f"gpu-{i}"}
            )
            if self._gpm.supported(h):
                self._gpm_ok.add(i)
        self._register_xid(nv)
        return ""

    def _register_xid(self, nv: Any) -> None:
        try:
            self._xid_set = nv.nvmlEventSetCreate()
        except Exception:
            return
        for d in self.devices:
            try:
                h = nv.nvmlDeviceGetHandleByIndex(d["index"])
                nv.nvmlDeviceRegisterEvents(h, nv.nvmlEventTypeXidCriticalError, self._xid_set)
                self._xid_supported.add(d["index"])
                self._xid[d["index"]] = []
            except Exception:  # not supported on this GPU: XID columns stay null
                continue

    def _loop(self) -> None:
        cpu0 = time.thread_time()
        try:
            while True:
                self._sample_once()
                self.cpu_s = time.thread_time() - cpu0
                if self._stop.wait(self.settings.interval_s):
                    break
        finally:
            self.cpu_s = time.thread_time() - cpu0

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._available and self._nvml is not None:
            if self._gpm is not None:
                self._gpm.close()
            if self._xid_set is not None:
                with contextlib.suppress(Exception):
                    self._nvml.nvmlEventSetFree(self._xid_set)
                self._xid_set = None
            _shutdown(self._nvml)

    def tables(self) -> dict[str, Any]:
        return sample_frames(self._samples, self._processes)

    def status(self) -> CollectorStatus:
        return CollectorStatus(self.name, self._available, self._reason, tuple(self._warnings[:20]))

    # -- sampling --

    def _sample_once(self) -> None:
        nv = self._nvml
        t = time.time()
        self._drain_xid()
        for d in self.devices:
            try:
                h = nv.nvmlDeviceGetHandleByIndex(d["index"])
                self._sample_device(nv, t, d["index"], h)
            except Exception as e:  # a lost GPU is a gap in its samples, not a crashed run
                msg = f"GPU {d['index']}: sample failed: {type(e).__name__}: {e}"
                if msg not in self._warnings:
                    self._warnings.append(msg)

    def _drain_xid(self) -> None:
        if self._xid_set is None:
            return
        nv = self._nvml
        for _ in range(64):  # bounded: a storm of XIDs is reported over several intervals
            try:
                ev = nv.nvmlEventSetWait(self._xid_set, 0)
            except Exception:  # NVML_ERROR_TIMEOUT: no event pending
                return
            idx = _get(nv, nv.nvmlDeviceGetIndex, ev.device)
            if idx in self._xid:
                self._xid[idx].append(int(ev.eventData))

    def _sample_device(self, nv: Any, t: float, index: int, h: Any) -> None:
        uuid = _text(_get(nv, nv.nvmlDeviceGetUUID, h)) or f"gpu-{index}"
        name = _text(_get(nv, nv.nvmlDeviceGetName, h)) or "unknown"
        mig_on = _mig_enabled(nv, h)
        util = None if mig_on else _get(nv, nv.nvmlDeviceGetUtilizationRates, h)
        mem = _get(nv, nv.nvmlDeviceGetMemoryInfo, h)
        power_mw = _get(nv, nv.nvmlDeviceGetPowerUsage, h)
        xids = self._xid.get(index) if index in self._xid_supported else None
        procs = self._device_processes(nv, t, index, uuid, h) if self.settings.processes else None
        self._samples.append(
            GpuSample(
                t_unix=t,
                source="nvml",
                gpu_index=index,
                gpu_uuid=uuid,
                gpu_name=name,
                util_gpu_pct=float(util.gpu) if util is not None else None,
                util_mem_pct=float(util.memory) if util is not None else None,
                engine_active_pct=(
                    self._gpm.activity(h, (index, None))
                    if self._gpm and index in self._gpm_ok and not mig_on
                    else None
                ),
                util_note=MIG_UTIL_NOTE if mig_on else None,
                mem_used_bytes=int(mem.used) if mem is not None else None,
                mem_total_bytes=int(mem.total) if mem is not None else None,
                sm_clock_mhz=_num(_get(nv, nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM)),
                power_w=round(power_mw / 1000, 3) if power_mw is not None else None,
                temperature_c=_num(
                    _get(nv, nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
                ),
                ecc_uncorrected=_get(
                    nv,
                    nv.nvmlDeviceGetTotalEccErrors,
                    h,
                    nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                    nv.NVML_VOLATILE_ECC,
                ),
                xid_count=len(xids) if xids is not None else None,
                xid_last=xids[-1] if xids else None,
                processes=None if procs is None else len({p.pid for p in procs}),
            )
        )
        if mig_on:
            self._sample_mig(nv, t, index, uuid, name, h, procs)

    def _sample_mig(
        self,
        nv: Any,
        t: float,
        index: int,
        uuid: str,
        name: str,
        h: Any,
        procs: list[GpuProcess] | None,
    ) -> None:
        count = _get(nv, nv.nvmlDeviceGetMaxMigDeviceCount, h) or 0
        for i in range(count):
            mh = _get(nv, nv.nvmlDeviceGetMigDeviceHandleByIndex, h, i)
            if mh is None:
                continue  # an empty slot
            gi = _get(nv, nv.nvmlDeviceGetGpuInstanceId, mh)
            mem = _get(nv, nv.nvmlDeviceGetMemoryInfo, mh)
            mig_name = _text(_get(nv, nv.nvmlDeviceGetName, mh)) or ""
            on_instance = None
            if procs is not None:
                on_instance = len({p.pid for p in procs if p.mig_instance == gi})
            self._samples.append(
                GpuSample(
                    t_unix=t,
                    source="nvml",
                    gpu_index=index,
                    gpu_uuid=uuid,
                    gpu_name=name,
                    mig_instance=gi,
                    mig_profile=_mig_profile(mig_name),
                    mig_uuid=_text(_get(nv, nv.nvmlDeviceGetUUID, mh)),
                    engine_active_pct=(
                        self._gpm.activity(h, (index, gi))
                        if self._gpm and index in self._gpm_ok and gi is not None
                        else None
                    ),
                    util_note=MIG_UTIL_NOTE,
                    mem_used_bytes=int(mem.used) if mem is not None else None,
                    mem_total_bytes=int(mem.total) if mem is not None else None,
                    processes=on_instance,
                )
            )

    def _device_processes(
        self, nv: Any, t: float, index: int, uuid: str, h: Any
    ) -> list[GpuProcess] | None:
        compute = _get(nv, nv.nvmlDeviceGetComputeRunningProcesses, h)
        graphics = _get(nv, nv.nvmlDeviceGetGraphicsRunningProcesses, h)
        if compute is None and graphics is None:
            return None
        out: dict[int, GpuProcess] = {}
        for p in list(compute or []) + list(graphics or []):
            if p.pid in out:
                continue
            used = getattr(p, "usedGpuMemory", None)
            gi = getattr(p, "gpuInstanceId", None)
            # NVML marks "no instance" with 0xFFFFFFFF outside MIG
            gi = None if gi is None or gi >= 0xFFFFFFFF else int(gi)
            pname, owner = process_owner(p.pid, self.settings.proc_root)
            out[p.pid] = GpuProcess(
                t_unix=t,
                source="nvml",
                gpu_index=index,
                gpu_uuid=uuid,
                mig_instance=gi,
                pid=int(p.pid),
                used_mem_bytes=int(used) if used is not None else None,
                process_name=pname,
                container_id=owner.container_id,
                pod_uid=owner.pod_uid,
                runtime=owner.runtime,
            )
        rows = list(out.values())
        self._processes.extend(rows)
        return rows


def _get(nv: Any, fn: Any, *args: Any) -> Any:
    """``fn(*args)``, or None where NVML cannot give it (not supported, no permission...)."""
    try:
        return fn(*args)
    except nv.NVMLError:
        return None


def _mig_enabled(nv: Any, h: Any) -> bool:
    mode = _get(nv, nv.nvmlDeviceGetMigMode, h)
    return bool(mode) and mode[0] == nv.NVML_DEVICE_MIG_ENABLE


def _mig_profile(name: str) -> str | None:
    """'NVIDIA A100-SXM4-40GB MIG 1g.5gb' -> '1g.5gb'."""
    m = re.search(r"(\d+g\.\d+gb)", name)
    return m.group(1) if m else None


def _text(v: Any) -> str | None:
    if v is None:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


def _num(v: Any) -> float | None:
    return None if v is None else float(v)
