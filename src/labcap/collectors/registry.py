"""The collector registry: the collectors a run gets, built from typed settings.

Every name a user can give (``--gpu MODE``) is checked here against the list of valid
ones, and an unknown one fails with that list.
"""

from __future__ import annotations

from typing import Any

from labcap.collectors.dcgm import DcgmCollector, DcgmSettings, check_metrics_url
from labcap.collectors.gpu import NvmlCollector, NvmlSettings, load_nvml, nvml_unavailable_reason
from labcap.errors import LabcapError

GPU_MODES = ("auto", "nvml", "none")


def gpu_collectors(mode: str, metrics_url: str | None, interval_s: float = 1.0) -> list[Any]:
    """The GPU collectors for ``--gpu MODE`` and ``--gpu-metrics-url URL``.

    ``auto`` samples NVML only when it finds a GPU here (else none, silently for
    the run: the reason is returned by ``nvml_unavailable_reason``); ``nvml`` always
    adds the collector, which reports itself unavailable with the reason.
    """
    if mode not in GPU_MODES:
        raise LabcapError(f"--gpu {mode!r}: choose one of {', '.join(GPU_MODES)}")
    out: list[Any] = []
    if mode == "nvml":
        out.append(NvmlCollector(NvmlSettings(interval_s=interval_s)))
    elif mode == "auto":
        try:
            nv = load_nvml()
        except ImportError:
            nv = None
        if nv is not None and not nvml_unavailable_reason(nv):
            out.append(NvmlCollector(NvmlSettings(interval_s=interval_s), nvml=nv))
    if metrics_url:
        out.append(
            DcgmCollector(DcgmSettings(url=check_metrics_url(metrics_url), interval_s=interval_s))
        )
    return out
