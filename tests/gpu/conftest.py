"""GPU tests. Kept light: no locust or hdrhistogram import here, so `pytest -m gpu tests/gpu
--confcutdir=tests/gpu` runs on a bare GPU machine with nvidia-ml-py, pandas and pytest.

Tests marked ``gpu`` need a real NVIDIA GPU and driver; elsewhere they are skipped
with NVML's own reason (no driver, no device, no permission). NVML is never faked.
"""

from __future__ import annotations

import functools

import pytest


@functools.cache
def nvml_reason() -> str:
    """Why real NVML is unusable here ('' on a machine with a GPU)."""
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py is not installed"
    from labcap.collectors.gpu import nvml_unavailable_reason

    return nvml_unavailable_reason(pynvml)


def pytest_collection_modifyitems(config, items):
    reason = None
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            reason = nvml_reason() if reason is None else reason
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"no usable GPU here: {reason}"))
