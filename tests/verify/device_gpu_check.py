"""Device check for `labcap verify`'s GPU probe (not collected by pytest): on a machine with
an NVIDIA GPU, run the exact probe a user server runs (NVML through nvidia-ml-py) and judge
what it sees against several GPU plans. Needs only the standard library and pynvml, so it
runs on a bare GPU host:

    PYTHONPATH=DIR_WITH_PYNVML python3 tests/verify/device_gpu_check.py
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLANS = (
    {},
    {"gpus": 1, "sharing": "none"},
    {"gpus": 1, "sharing": "time-slicing", "time_slicing_replicas": 4},
    {"gpus": 1, "sharing": "mig", "mig_devices_per_gpu": {"1g.10gb": 7}},
)


def _load(name: str, rel: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    for package in ("labcap", "labcap.verify"):  # bare packages: no heavy __init__ imports
        stub = types.ModuleType(package)
        stub.__path__ = []
        sys.modules[package] = stub
    _load("labcap.verify.records", "src/labcap/verify/records.py")
    gpu = _load("labcap.verify.gpu", "src/labcap/verify/gpu.py")
    seen = gpu.run_probe_locally()
    print("probe:", json.dumps(seen))
    for plan in PLANS:
        result = gpu.judge_gpu(plan, seen)
        print(f"plan {json.dumps(plan)} -> {result.status}: {result.summary}")
        for d in result.differences:
            print(f"    {d.line()}")
    return 0 if seen.get("device_count") else 1


if __name__ == "__main__":
    sys.exit(main())
