"""The no-GPU path, with the real nvidia-ml-py failing for real (no driver here).

Skipped on a machine that has a GPU: there the unavailable path cannot be produced
without faking NVML, and the ``gpu`` tests cover the real one.
"""

from __future__ import annotations

import threading

import pytest

from labcap.collectors.gpu import (
    GPU_PROCESSES,
    GPU_SAMPLES,
    PROCESS_COLUMNS,
    SAMPLE_COLUMNS,
    NvmlCollector,
)
from labcap.collectors.registry import gpu_collectors
from tests.gpu.conftest import nvml_reason

pytestmark = pytest.mark.skipif(not nvml_reason(), reason="this machine has a usable GPU")


def test_nvml_collector_is_unavailable_with_the_reason_and_starts_no_thread():
    c = NvmlCollector()
    c.start(None)
    st = c.status()
    assert st.available is False and st.name == "gpu"
    # pynvml raised NVMLError_LibraryNotFound (or driver/permission/no device): said in words
    assert any(w in st.reason for w in ("NVML library", "driver", "permission", "0 devices"))
    assert not any(t.name == "labcap-gpu" for t in threading.enumerate())
    c.stop()
    c.stop()  # idempotent
    tables = c.tables()
    assert list(tables[GPU_SAMPLES].columns) == SAMPLE_COLUMNS and not len(tables[GPU_SAMPLES])
    assert list(tables[GPU_PROCESSES].columns) == PROCESS_COLUMNS


def test_auto_mode_adds_no_collector_without_a_gpu_but_nvml_mode_does():
    assert gpu_collectors("auto", None) == []
    assert gpu_collectors("none", None) == []
    (c,) = gpu_collectors("nvml", None)
    assert isinstance(c, NvmlCollector)
