"""The collector registry: the collectors a run gets, built from typed settings.

Every name a user can give (a collector's name, ``--gpu MODE``) is checked here against
the list of valid ones, and an unknown one fails with that list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from labcap.clients.kube import KubeTarget, connect
from labcap.collectors.base import Collector
from labcap.collectors.dcgm import DcgmCollector, DcgmSettings, check_metrics_url
from labcap.collectors.docker import DockerCollector, DockerSettings
from labcap.collectors.gpu import NvmlCollector, NvmlSettings, load_nvml, nvml_unavailable_reason
from labcap.collectors.host import HostCollector
from labcap.collectors.kubernetes import KubernetesCollector, KubernetesSettings
from labcap.collectors.prometheus import PrometheusCollector, PrometheusSettings
from labcap.errors import LabcapError

GPU_MODES = ("auto", "nvml", "none")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CollectorSettings:
    """What a run samples beside its load; ``build_collectors`` turns it into collectors."""

    names: tuple[str, ...] = field(
        default=("host", "gpu"), metadata={"help": "Collectors to run, in any order."}
    )
    gpu_mode: str = field(default="auto", metadata={"help": "NVML sampling: auto, nvml, none."})
    gpu_metrics_url: str | None = field(
        default=None, metadata={"help": "dcgm-exporter's Prometheus metrics URL, if any."}
    )
    prometheus_url: str | None = field(
        default=None, metadata={"help": "The lab's Prometheus, read for the run's time range."}
    )
    docker: DockerSettings = field(default_factory=DockerSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)


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


def _host(settings: CollectorSettings, kube: KubeTarget | None, progress: Progress) -> list[Any]:
    return [HostCollector()]


def _docker(settings: CollectorSettings, kube: KubeTarget | None, progress: Progress) -> list[Any]:
    return [DockerCollector(settings.docker)]


def _kubernetes(
    settings: CollectorSettings, kube: KubeTarget | None, progress: Progress
) -> list[Any]:
    """Connected first (unless ``kube`` already is): a bad kubeconfig stops the run early."""
    k8s = settings.kubernetes
    kube = kube or connect(k8s.kubeconfig, k8s.context)
    progress(f"kubernetes: {kube.server} ({kube.version}), context {kube.context or '-'}")
    k8s = replace(k8s, kubeconfig=kube.kubeconfig, context=kube.context or None)
    return [KubernetesCollector(k8s, api_client=kube.api_client)]


def _gpu(settings: CollectorSettings, kube: KubeTarget | None, progress: Progress) -> list[Any]:
    return gpu_collectors(settings.gpu_mode, settings.gpu_metrics_url)


def _prometheus(
    settings: CollectorSettings, kube: KubeTarget | None, progress: Progress
) -> list[Any]:
    if not settings.prometheus_url:
        raise LabcapError("collector 'prometheus' needs --prometheus-url URL")
    return [PrometheusCollector(PrometheusSettings(url=settings.prometheus_url))]


# the order a run starts them in, whatever order they were named in
COLLECTORS: dict[str, Callable[[CollectorSettings, KubeTarget | None, Progress], list[Any]]] = {
    "host": _host,
    "docker": _docker,
    "kubernetes": _kubernetes,
    "gpu": _gpu,
    "prometheus": _prometheus,
}


def build_collectors(
    settings: CollectorSettings,
    *,
    kube: KubeTarget | None = None,
    progress: Progress = lambda _m: None,
) -> tuple[Collector, ...]:
    """The collectors ``settings.names`` ask for; an unknown name fails with the valid ones.

    ``kube`` is an API server connection made earlier (``clients.kube.connect``), reused by
    the Kubernetes collector.
    """
    unknown = [n for n in settings.names if n not in COLLECTORS]
    if unknown:
        raise LabcapError(
            f"unknown collector {', '.join(map(repr, unknown))}: valid collectors are "
            f"{', '.join(COLLECTORS)}"
        )
    out: list[Any] = []
    for name, build in COLLECTORS.items():
        if name in settings.names:
            out += build(settings, kube, progress)
    return tuple(out)
