"""The fixed run directories behind the golden CLI outputs, built from fixed numbers.

Every run is written by the real recorder (``record_run``: exact latencies through
``WindowRecorder`` and a fake clock) or as the recorder writes its tables
(``synthetic_run`` with ``stable=True``: seeded draws that are the same on every
numpy and Python version). Nothing here reads a clock or the machine.

    python -m tests.golden.runs DIR    # write them to DIR, to look at them
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import record_run
from tests.support.runs import synthetic_run

HERE = Path(__file__).parent
CALIBRATION = json.loads((HERE / "calibration.json").read_text(encoding="utf-8"))

# The capacity run: the SLOs hold up to 20 users (hub.login's p95 is over 100 ms there,
# but by less than the calibrated generator floor: within noise) and break at 40.
LIMIT_SLOS = ["p95_ms=100", "error_pct=1"]


def _latencies(base_ms: float, spread_ms: float, n: int = 60) -> list[float]:
    """``n`` latencies from ``base_ms`` to ``base_ms + spread_ms``, in a fixed shuffled order."""
    return [base_ms + spread_ms * ((i * 37) % n) / (n - 1) for i in range(n)]


LIMIT_STEPS = {
    5: {"hub.login": _latencies(20, 15), "mlflow.search": _latencies(30, 10)},
    10: {"hub.login": _latencies(24, 20), "mlflow.search": _latencies(32, 12)},
    20: {"hub.login": _latencies(60, 43), "mlflow.search": _latencies(40, 20)},
    40: {"hub.login": _latencies(150, 90), "mlflow.search": _latencies(70, 40)},
}
LIMIT_FAILURES = {40: 3}


def build(root: Path) -> dict[str, Path]:
    """Write the golden runs under ``root``; their names to their directories."""
    limit = record_run(
        root / "limit", LIMIT_STEPS, slos=LIMIT_SLOS, failures=LIMIT_FAILURES, step_s=10
    )
    manifest = json.loads((limit / "manifest.json").read_text())
    manifest["scenario"] = {"name": "lab"}
    manifest["calibration"] = CALIBRATION
    (limit / "manifest.json").write_text(json.dumps(manifest))
    slower_login = {"hub.login": 1.3, "mlflow.search": 1.0}
    return {
        "limit": limit,
        "base": synthetic_run(root / "base", 1, stable=True),
        "same": synthetic_run(root / "same", 2, stable=True),
        "slow": synthetic_run(root / "slow", 3, scale=slower_login, stable=True),
        "partial": synthetic_run(
            root / "partial", 4, requests=200, status="partial", stop_at_s=10, stable=True
        ),
    }


if __name__ == "__main__":
    for name, path in build(Path(sys.argv[1])).items():
        print(f"{name}: {path}")
