"""Service-level objectives: how a measured latency is judged against its limit.

(The SLO record and its parser live in :mod:`labcap.model` until they move here.)
"""

from __future__ import annotations

from typing import Any

# the calibration key (manifest ``calibration``) holding the generator's own latency at
# each metric's percentile
FLOOR_FOR_METRIC = {
    "p50_ms": "floor_p50_ms",
    "p90_ms": "floor_p90_ms",
    "p95_ms": "floor_p95_ms",
    "p99_ms": "floor_p99_ms",
    "max_ms": "floor_max_ms",
}


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
