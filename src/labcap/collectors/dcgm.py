"""GPUs through NVIDIA's dcgm-exporter: scrape its Prometheus text, same schema as NVML.

Many K3s labs already run dcgm-exporter as a DaemonSet. Its ``/metrics`` text is
parsed with prometheus_client's parser (not regular expressions) and each
(GPU, MIG instance, pod) series becomes one ``GpuSample`` with
``source="dcgm"``:

==================================  ==========================================
DCGM_FI_DEV_GPU_UTIL                util_gpu_pct (absent for MIG instances)
DCGM_FI_DEV_MEM_COPY_UTIL           util_mem_pct
DCGM_FI_DEV_FB_USED / _FREE (MiB)   mem_used_bytes, mem_total_bytes (+ _RESERVED)
DCGM_FI_PROF_GR_ENGINE_ACTIVE (0-1) engine_active_pct (MIG-safe activity)
DCGM_FI_DEV_SM_CLOCK, _POWER_USAGE  sm_clock_mhz, power_w
DCGM_FI_DEV_GPU_TEMP                temperature_c
DCGM_FI_DEV_XID_ERRORS              xid_last
DCGM_FI_DEV_ECC_DBE_VOL_TOTAL       ecc_uncorrected
==================================  ==========================================

Labels: ``gpu``, ``UUID``, ``modelName``, ``GPU_I_PROFILE``, ``GPU_I_ID`` (MIG) and
``pod``/``namespace``/``container`` (the exporter's Kubernetes attribution).
The scrape runs in its own thread with a short timeout, so a slow exporter
leaves a gap in the samples, never a stalled load.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from labcap.collectors.base import CollectorStatus, RunContext
from labcap.collectors.gpu import MIG_UTIL_NOTE, GpuSample, sample_frames
from labcap.errors import LabcapError

MIB = 2**20

# exporter field -> (GpuSample field, scale)
FIELDS: dict[str, tuple[str, float]] = {
    "DCGM_FI_DEV_GPU_UTIL": ("util_gpu_pct", 1.0),
    "DCGM_FI_DEV_MEM_COPY_UTIL": ("util_mem_pct", 1.0),
    "DCGM_FI_DEV_FB_USED": ("mem_used_bytes", MIB),
    "DCGM_FI_DEV_FB_FREE": ("_fb_free", MIB),
    "DCGM_FI_DEV_FB_RESERVED": ("_fb_reserved", MIB),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": ("engine_active_pct", 100.0),
    "DCGM_FI_DEV_SM_CLOCK": ("sm_clock_mhz", 1.0),
    "DCGM_FI_DEV_POWER_USAGE": ("power_w", 1.0),
    "DCGM_FI_DEV_GPU_TEMP": ("temperature_c", 1.0),
    "DCGM_FI_DEV_XID_ERRORS": ("xid_last", 1.0),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": ("ecc_uncorrected", 1.0),
}
INT_FIELDS = {"mem_used_bytes", "xid_last", "ecc_uncorrected", "_fb_free", "_fb_reserved"}


@dataclass(frozen=True)
class DcgmSettings:
    url: str = field(default="", metadata={"help": "dcgm-exporter's /metrics URL."})
    interval_s: float = field(default=1.0, metadata={"help": "Seconds between scrapes."})
    timeout_s: float = field(default=2.0, metadata={"help": "Give up on one scrape after this."})


def check_metrics_url(url: str) -> str:
    """An http(s) URL with a host, or one clear error (a metrics path is added if missing)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LabcapError(
            f"--gpu-metrics-url {url!r} is not an http(s) URL "
            "(e.g. http://127.0.0.1:9400/metrics, dcgm-exporter's default)"
        )
    return url if parts.path not in ("", "/") else url.rstrip("/") + "/metrics"


def parse_exporter_text(text: str, t_unix: float) -> list[GpuSample]:
    """dcgm-exporter's Prometheus text as GpuSamples, one per GPU / MIG instance / pod."""
    from prometheus_client.parser import text_string_to_metric_families

    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            spec = FIELDS.get(s.name)
            if spec is None:
                continue
            labels = s.labels
            key = (
                labels.get("gpu", ""),
                labels.get("UUID", ""),
                labels.get("GPU_I_ID", ""),
                labels.get("namespace", ""),
                labels.get("pod", ""),
                labels.get("container", ""),
            )
            row = rows.setdefault(key, {"labels": labels})
            name, scale = spec
            value = s.value * scale
            row[name] = int(round(value)) if name in INT_FIELDS else round(float(value), 3)
    return [gpu_sample(row.pop("labels"), row, t_unix) for row in rows.values()]


def gpu_sample(
    labels: dict[str, str], row: dict[str, Any], t_unix: float, source: str = "dcgm"
) -> GpuSample:
    """One GpuSample from a series' labels and its ``FIELDS`` values (``row``, changed)."""
    free, reserved = row.pop("_fb_free", None), row.pop("_fb_reserved", None)
    used = row.get("mem_used_bytes")
    if used is not None and free is not None:
        row["mem_total_bytes"] = used + free + (reserved or 0)
    gi = labels.get("GPU_I_ID") or None
    try:
        gpu_index = int(labels.get("gpu", "-1"))
    except ValueError:
        gpu_index = -1
    return GpuSample(
        t_unix=t_unix,
        source=source,
        gpu_index=gpu_index,
        gpu_uuid=labels.get("UUID", ""),
        gpu_name=labels.get("modelName", "unknown"),
        mig_instance=int(gi) if gi is not None and gi.isdigit() else None,
        mig_profile=labels.get("GPU_I_PROFILE") or None,
        util_note=MIG_UTIL_NOTE if gi is not None else None,
        pod=labels.get("pod") or None,
        namespace=labels.get("namespace") or None,
        container=labels.get("container") or None,
        **row,
    )


class DcgmCollector:
    """Scrapes dcgm-exporter at a fixed interval in its own thread."""

    name = "gpu-dcgm"

    def __init__(self, settings: DcgmSettings, session: Any = None) -> None:
        self.settings = settings
        self._session = session  # a requests.Session; injected for tests
        self._samples: list[GpuSample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warnings: list[str] = []
        self._failures = 0
        self._reason = ""
        self._available = False

    def start(self, ctx: RunContext | None = None) -> None:
        import requests

        self._session = self._session or requests.Session()
        try:
            text = self._fetch()  # bounded by timeout_s: an absent exporter is found now
        except Exception as e:
            self._reason = f"dcgm-exporter at {self.settings.url} did not answer: {_short(e)}"
            return
        try:
            first = parse_exporter_text(text, time.time())
        except Exception as e:  # the parser raises ValueError on anything but exposition text
            self._reason = f"{self.settings.url} does not serve Prometheus text: {_short(e)}"
            return
        if not first:
            self._reason = (
                f"{self.settings.url} serves no DCGM_FI_* GPU metrics (is it dcgm-exporter?)"
            )
            return
        self._samples.extend(first)
        self._available = True
        self._thread = threading.Thread(target=self._loop, name="labcap-dcgm", daemon=True)
        self._thread.start()

    def _fetch(self) -> str:
        r = self._session.get(self.settings.url, timeout=self.settings.timeout_s)
        r.raise_for_status()
        return r.text

    def _scrape(self) -> list[GpuSample]:
        return parse_exporter_text(self._fetch(), time.time())

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.interval_s):
            try:
                self._samples.extend(self._scrape())
            except Exception as e:  # an exporter restart is a gap, not a crashed run
                self._failures += 1
                msg = f"scrape failed: {_short(e)}"
                if msg not in self._warnings:
                    self._warnings.append(msg)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.timeout_s + 5)
            self._thread = None

    def tables(self) -> dict[str, Any]:
        return {k: v for k, v in sample_frames(self._samples, []).items() if k == "gpu_samples"}

    def status(self) -> CollectorStatus:
        warnings = list(self._warnings[:20])
        if self._failures:
            warnings.insert(0, f"{self._failures} scrapes failed")
        return CollectorStatus(self.name, self._available, self._reason, tuple(warnings))


def _short(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text[:200]}"
