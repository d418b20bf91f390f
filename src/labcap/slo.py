"""Service-level objectives: the ``Slo`` record, its one parser, and how a measured latency is
judged against its limit.

Text (``--slo p95=500ms``, a scenario's defaults) is parsed once, by :func:`parse_slo`, into
frozen :class:`Slo` records; from then on labcap passes the records around. The manifest
stores them as plain records (``{"endpoint", "metric", "threshold"}``, schema 2) and reads them
back with :meth:`Slo.from_dict`, which checks a record without parsing any text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from labcap.errors import LabcapError
from labcap.units import format_duration, parse_duration

# Latency metrics an SLO can bound, per endpoint, and the run-wide ones.
LATENCY_METRICS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")
RUN_METRICS = ("error_pct",)
# the latency metrics as the CLI names them (p95=500ms): each with its unit in the value
LATENCY_NAMES = tuple(m.removesuffix("_ms") for m in LATENCY_METRICS)
_BARE_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

# the calibration key (manifest ``calibration``) holding the generator's own latency at
# each metric's percentile
FLOOR_FOR_METRIC = {
    "p50_ms": "floor_p50_ms",
    "p90_ms": "floor_p90_ms",
    "p95_ms": "floor_p95_ms",
    "p99_ms": "floor_p99_ms",
    "max_ms": "floor_max_ms",
}

# the keys of an SLO as the manifest stores it
SLO_RECORD_KEYS = ("endpoint", "metric", "threshold")


@dataclass(frozen=True)
class Slo:
    """A service-level objective: ``metric`` must stay at or below ``threshold``.

    ``endpoint`` None means "every endpoint that has no SLO of its own" for
    latency metrics, and the whole step for ``error_pct``.
    """

    metric: str
    threshold: float
    endpoint: str | None = None

    @property
    def expression(self) -> str:
        """The canonical text: ``[ENDPOINT:]METRIC=VALUE``, as the CLI takes and prints it."""
        prefix = f"{self.endpoint}:" if self.endpoint else ""
        return f"{prefix}{self.metric}={self.threshold:g}"

    @property
    def option_text(self) -> str:
        """The text in the CLI's vocabulary (``p95=800ms``, ``hub.spawn_ready:p95=15s``,
        ``error_pct=1``), as ``--slo`` and labcap.toml take it."""
        prefix = f"{self.endpoint}:" if self.endpoint else ""
        if self.metric in LATENCY_METRICS:
            limit = format_duration(self.threshold / 1000)
            return f"{prefix}{self.metric.removesuffix('_ms')}={limit}"
        return f"{prefix}{self.metric}={self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        """The record the manifest stores."""
        return {"endpoint": self.endpoint, "metric": self.metric, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, data: Any) -> Slo:
        """A stored record back as an ``Slo``; LabcapError (one line) if it is not one."""
        if not isinstance(data, dict) or set(data) != set(SLO_RECORD_KEYS):
            raise LabcapError(f"SLO record {data!r}: needs exactly the keys {SLO_RECORD_KEYS}")
        metric, endpoint, threshold = data["metric"], data["endpoint"], data["threshold"]
        if endpoint is not None and (not isinstance(endpoint, str) or not endpoint.strip()):
            raise LabcapError(f"SLO record {data!r}: endpoint must be null or a name")
        if not isinstance(threshold, int | float) or isinstance(threshold, bool):
            raise LabcapError(f"SLO record {data!r}: threshold must be a number")
        value = float(threshold) if abs(threshold) < 1e308 else math.inf  # no OverflowError
        return _checked(metric, value, endpoint, what=f"SLO record {data!r}")


_SLO_RE = re.compile(
    r"^(?:(?P<endpoint>[^:=\s][^:=]*?)\s*:\s*)?(?P<metric>[a-z0-9_]+)\s*=\s*(?P<value>\S+)$"
)


def parse_slo(text: str) -> Slo:
    """'p95=500ms', 'hub.spawn_ready:p95=15s', 'error_pct=1' (or '1%'); the older spelling
    'p95_ms=500' (a number of milliseconds) is read too."""
    m = _SLO_RE.match(str(text).strip())
    if not m:
        raise LabcapError(
            f"SLO {text!r} is malformed: use METRIC=VALUE or ENDPOINT:METRIC=VALUE, "
            "e.g. p95=500ms or hub.spawn_ready:p95=15s"
        )
    metric, raw = m.group("metric"), m.group("value")
    what = f"SLO {text!r}"
    if metric in LATENCY_NAMES:  # the one vocabulary: p95=500ms, a duration with its unit
        if _BARE_NUMBER.fullmatch(raw):
            raise LabcapError(f"{what}: give {metric}'s unit, e.g. {metric}={raw}ms")
        value: float | None = parse_duration(raw, what=f"{what}: {metric}", allow_zero=True) * 1000
        metric += "_ms"
    else:
        try:
            value = float(raw.removesuffix("%") if metric in RUN_METRICS else raw)
        except ValueError:
            value = None
    return _checked(metric, value, m.group("endpoint"), what=what, raw=raw)


def _checked(
    metric: Any, value: float | None, endpoint: str | None, *, what: str, raw: str = ""
) -> Slo:
    """The rules every SLO obeys, whether it came as text or as a stored record."""
    if metric not in LATENCY_METRICS + RUN_METRICS:
        valid = ", ".join(LATENCY_METRICS + RUN_METRICS)
        raise LabcapError(f"{what}: unknown metric {metric!r}; valid metrics are {valid}")
    if endpoint and metric in RUN_METRICS:
        raise LabcapError(f"{what}: {metric} applies to the whole step, not to one endpoint")
    if value is None:
        raise LabcapError(f"{what}: {raw!r} is not a number")
    if value < 0 or not math.isfinite(value):
        raise LabcapError(f"{what}: the threshold must be a finite number >= 0")
    return Slo(metric=metric, threshold=value, endpoint=endpoint or None)


def parse_slos(texts: Iterable[str]) -> tuple[Slo, ...]:
    """Several SLO expressions (the CLI's repeated ``--slo``, a scenario's defaults)."""
    return tuple(parse_slo(t) for t in texts)


def slos_to_records(slos: Iterable[Slo]) -> list[dict[str, Any]]:
    """SLOs in the manifest's stored form."""
    return [s.to_dict() for s in slos]


def slos_from_records(records: Iterable[Any]) -> tuple[Slo, ...]:
    """The manifest's stored SLOs back as records."""
    return tuple(Slo.from_dict(r) for r in records)


def noise_floor_ms(calibration: dict[str, Any] | None, metric: str) -> float | None:
    """The generator's own latency at ``metric``'s percentile (ms), if calibrated: the
    WireHttpUser floor where the run's users were all built on it, else the scenarios'."""
    if not calibration:
        return None
    key = FLOOR_FOR_METRIC.get(metric)
    if key and calibration.get("floor_client") == "wire":
        key = "wire_" + key
    value = calibration.get(key) if key else None
    return float(value) if value is not None else None
