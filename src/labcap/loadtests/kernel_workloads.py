"""Real work in the kernel: ``--kernel-workload`` for the JupyterHub journey.

After the journey's trivial cell, each user runs one workload cell on its kernel; its
round trip (websocket connect, execute, reply, as for ``kernel.execute``) is the endpoint
``kernel.workload``. Built-ins, each bounded:

=====================  ==============================================================
``cpu[:SECONDS]``      a pure-Python loop until SECONDS have passed (default 1)
``memory[:MIB]``       allocate MIB MiB and write one byte in every page (default 64)
``gpu-matmul[:SECONDS]``  float32 4096x4096 matmuls on the kernel's GPU for SECONDS
                       (default 5), with torch or else cupy; where the kernel sees no GPU
                       it is *skipped* and says why (no torch/cupy, no CUDA device,
                       no nvidia-smi)
``PATH.py``            that file's code, as it is
=====================  ==============================================================

A workload cell ends by setting ``_labcap_workload`` to a JSON text; the kernel hands it
back in the execute_reply's ``user_expressions``, so a skip and its reason come back
without reading the iopub channel. Each cell's outcome (ran, skipped, failed) is one line
of ``kernel_workload.jsonl`` in the run directory; the run folds them into
``kernel_workload.parquet`` and the manifest's ``kernel_workload`` summary.

Standard library only (the session parses the option before Locust is imported).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError

ENDPOINT = "kernel.workload"
RESULT_VARIABLE = "_labcap_workload"
LOG = "kernel_workload.jsonl"
TABLE = "kernel_workload"
MAX_SECONDS = 300.0
MAX_MIB = 65536
GPU_MATRIX = 4096

# (unit, default, upper bound)
BUILT_INS: dict[str, tuple[str, float, float]] = {
    "cpu": ("s", 1.0, MAX_SECONDS),
    "memory": ("MiB", 64, MAX_MIB),
    "gpu-matmul": ("s", 5.0, MAX_SECONDS),
}


@dataclass(frozen=True)
class KernelWorkload:
    """A parsed ``--kernel-workload``: a built-in and its size, or a file's code."""

    spec: str  # as the user gave it
    name: str  # cpu | memory | gpu-matmul | file
    amount: float  # seconds (cpu, gpu-matmul) or MiB (memory); 0 for a file
    code: str
    expected_s: float  # how long the cell itself should take (its SLO and timeout add to it)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_workload(spec: str) -> KernelWorkload:
    """``cpu``, ``cpu:2``, ``memory:256``, ``gpu-matmul:5`` or a path to a file of code."""
    text = spec.strip()
    name, _, amount_text = text.partition(":")
    if name in BUILT_INS:
        unit, default, limit = BUILT_INS[name]
        try:
            amount = float(amount_text) if amount_text else default
        except ValueError:
            amount = -1.0
        if not 0 < amount <= limit:
            raise LabcapError(
                f"--kernel-workload {spec!r}: {name} takes {unit} in (0, {limit:g}], "
                f"e.g. {name}:{default:g}"
            )
        code = _BUILT_IN_CODE[name](amount)
        expected = amount if unit == "s" else 0.0
        return KernelWorkload(text, name, amount, code, expected)
    path = Path(os.path.expanduser(text))
    if path.is_file():
        try:
            code = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise LabcapError(f"--kernel-workload {spec}: cannot read it ({e})") from None
        try:
            compile(code, str(path), "exec")
        except SyntaxError as e:
            raise LabcapError(
                f"--kernel-workload {spec}: line {e.lineno}: {e.msg} (is it Python?)"
            ) from None
        return KernelWorkload(text, "file", 0.0, code, 0.0)
    raise LabcapError(
        f"--kernel-workload {spec!r}: not a built-in ({', '.join(BUILT_INS)}, e.g. cpu:2) "
        "and no such file"
    )


def _cpu(seconds: float) -> str:
    return f"""
import json as _j, time as _t
_end = _t.monotonic() + {seconds!r}
_n = 0
while _t.monotonic() < _end:
    sum(i * i for i in range(10_000))
    _n += 1
{RESULT_VARIABLE} = _j.dumps({{"outcome": "ran", "loops": _n}})
"""


def _memory(mib: float) -> str:
    return f"""
import json as _j, mmap as _m
_size = int({mib!r} * 2**20)
_buf = bytearray(_size)
for _i in range(0, _size, _m.PAGESIZE):
    _buf[_i] = 1
_touched = sum(_buf[::_m.PAGESIZE])
del _buf
{RESULT_VARIABLE} = _j.dumps({{"outcome": "ran", "bytes": _size, "pages": _touched}})
"""


def _gpu_matmul(seconds: float) -> str:
    return f"""
import json as _j, shutil as _sh, time as _t
def _labcap_gpu(seconds, n):
    why = []
    try:
        import torch
    except ImportError:
        torch = None
        why.append("torch not installed")
    if torch is not None:
        if torch.cuda.is_available():
            a = torch.randn(n, n, device="cuda")
            b = torch.randn(n, n, device="cuda")
            end, k = _t.monotonic() + seconds, 0
            while _t.monotonic() < end:
                a @ b
                k += 1
                if k % 8 == 0:
                    torch.cuda.synchronize()
            torch.cuda.synchronize()
            return {{"outcome": "ran", "library": "torch", "matmuls": k,
                    "device": torch.cuda.get_device_name(0)}}
        why.append("torch sees no CUDA device")
    try:
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
    except ImportError:
        why.append("cupy not installed")
    except Exception as e:
        why.append(f"cupy: {{type(e).__name__}}: {{e}}"[:160])
    else:
        if count:
            a = cupy.random.rand(n, n, dtype=cupy.float32)
            b = cupy.random.rand(n, n, dtype=cupy.float32)
            end, k = _t.monotonic() + seconds, 0
            while _t.monotonic() < end:
                a @ b
                k += 1
                if k % 8 == 0:
                    cupy.cuda.Device().synchronize()
            cupy.cuda.Device().synchronize()
            return {{"outcome": "ran", "library": "cupy", "matmuls": k}}
        why.append("cupy sees no CUDA device")
    if _sh.which("nvidia-smi") is None:
        why.append("nvidia-smi not found")
    return {{"outcome": "skipped", "reason": "no GPU visible in the kernel: " + "; ".join(why)}}
{RESULT_VARIABLE} = _j.dumps(_labcap_gpu({seconds!r}, {GPU_MATRIX}))
del _labcap_gpu
"""


_BUILT_IN_CODE = {"cpu": _cpu, "memory": _memory, "gpu-matmul": _gpu_matmul}


@dataclass(frozen=True)
class WorkloadOutcome:
    """One workload cell on one kernel, as the user saw it."""

    t_unix: float
    user: str
    workload: str
    outcome: str  # ran | skipped | failed
    reason: str
    elapsed_ms: float  # connect, execute, reply: as kernel.workload records it
    detail: str  # the cell's own JSON result (loops, bytes, matmuls, device), if any


def outcome_from_reply(status: str, reply: dict[str, Any]) -> tuple[str, str, str]:
    """(outcome, reason, detail) from an execute_reply's status and content."""
    if status != "ok":
        ename = reply.get("ename", "")
        evalue = str(reply.get("evalue", ""))[:200]
        return "failed", f"execute_reply status {status}: {ename} {evalue}".strip(), ""
    expr = (reply.get("user_expressions") or {}).get("labcap") or {}
    text = (expr.get("data") or {}).get("text/plain", "")
    try:
        import ast

        result = json.loads(ast.literal_eval(text)) if text else {}
    except (ValueError, SyntaxError, TypeError):
        result = {}
    if not isinstance(result, dict):
        result = {}
    detail = json.dumps({k: v for k, v in result.items() if k not in ("outcome", "reason")})
    if result.get("outcome") == "skipped":
        return "skipped", str(result.get("reason", "skipped")), detail
    return "ran", "", detail if result else ""


def append_outcome(log: str, outcome: WorkloadOutcome) -> None:
    """One JSON line, appended with one write (O_APPEND: workers' lines never interleave)."""
    line = (json.dumps(asdict(outcome)) + "\n").encode()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_outcomes(log: Path) -> list[dict[str, Any]]:
    """The lines of a run's ``kernel_workload.jsonl`` (a torn last line is left out)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def summarise_outcomes(workload: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's ``kernel_workload``: the spec, counts per outcome, reasons with counts."""
    counts: dict[str, int] = {"ran": 0, "skipped": 0, "failed": 0}
    reasons: dict[str, dict[str, int]] = {"skipped": {}, "failed": {}}
    for r in rows:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        if r["outcome"] in reasons:
            bucket = reasons[r["outcome"]]
            bucket[r["reason"]] = bucket.get(r["reason"], 0) + 1
    return {
        "spec": workload["spec"],
        "name": workload["name"],
        "amount": workload["amount"],
        "endpoint": ENDPOINT,
        "cells": counts,
        "skip_reasons": reasons["skipped"],
        "failure_reasons": reasons["failed"],
    }
