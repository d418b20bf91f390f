"""--kernel-workload: real work in real kernels of the reference lab (real JupyterHub,
real single-user servers and ipykernels), and the option's bad inputs.

Each lab test is a real `labcap run --scenario jupyterhub` whose users run the workload
cell after the journey's first cell; the kernel hands the cell's result back through
user_expressions. This machine has no GPU, so gpu-matmul must come back skipped with the
kernel's own reason, recorded in the run (kernel_workload.parquet and the manifest).
"""

from __future__ import annotations

import json
import mmap
import os
import subprocess
import sys

import pandas as pd
import pytest

from labcap.errors import LabcapError
from labcap.loadtests.kernel_workloads import outcome_from_reply, parse_workload
from tests.support.cli import labcap


def _run_workload(lab, out, workload: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LABCAP_HUB_PASSWORD": lab.hub_password}
    return subprocess.run(
        [
            sys.executable, "-m", "labcap.cli", "run",
            "--host", lab.hub_url,
            "--scenario", "jupyterhub",
            "--users", "2",
            "--step-duration", "45s",  # a spawn on this shared machine can take 20 s
            "--settle", "2s",
            "--gpu", "none",
            "--no-calibrate",
            "--kernel-workload", workload,
            "--out", str(out),
            "--json",
        ],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def _outcomes(out):
    return pd.read_parquet(out / "kernel_workload.parquet")


@pytest.mark.lab
def test_cpu_workload_runs_in_real_kernels_and_is_its_own_endpoint(reference_lab, tmp_path):
    out = tmp_path / "run"
    r = _run_workload(reference_lab, out, "cpu:1")
    assert r.returncode == 0, r.stderr
    cells = _outcomes(out)
    assert len(cells) and set(cells["outcome"]) == {"ran"}, cells.to_dict("records")
    # the kernel's own result: it looped (a lower bound the loop guarantees, not a timing)
    assert all(json.loads(d)["loops"] > 0 for d in cells["detail"])
    assert (cells["elapsed_ms"] >= 1000).all()
    windows = pd.read_parquet(out / "windows.parquet")
    per = windows.groupby("endpoint")[["requests", "failures"]].sum()
    # cells that finished after the last window closed are logged, not timed
    assert 1 <= per.loc["kernel.workload", "requests"] <= len(cells)
    assert per.loc["kernel.workload", "failures"] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    kw = manifest["kernel_workload"]
    assert kw["spec"] == "cpu:1" and kw["cells"]["ran"] == len(cells) and kw["skip_reasons"] == {}
    # its own SLO by default: the workload's second plus the first cell's 5 s
    slos = {(s["endpoint"], s["metric"]): s["threshold"] for s in manifest["slos"]}
    assert slos[("kernel.workload", "p95_ms")] == 6000
    assert not (out / "kernel_workload.jsonl").exists()  # folded into the table


@pytest.mark.lab
def test_memory_workload_touches_every_page_in_real_kernels(reference_lab, tmp_path):
    out = tmp_path / "run"
    r = _run_workload(reference_lab, out, "memory:32")
    assert r.returncode == 0, r.stderr
    cells = _outcomes(out)
    assert len(cells) and set(cells["outcome"]) == {"ran"}, cells.to_dict("records")
    for detail in map(json.loads, cells["detail"]):
        assert detail["bytes"] == 32 * 2**20
        assert detail["pages"] == 32 * 2**20 // mmap.PAGESIZE  # each page written once


@pytest.mark.lab
def test_gpu_matmul_without_a_gpu_is_recorded_as_skipped_with_its_reason(reference_lab, tmp_path):
    out = tmp_path / "run"
    r = _run_workload(reference_lab, out, "gpu-matmul:2")
    assert r.returncode == 0, r.stderr
    cells = _outcomes(out)
    assert len(cells) and set(cells["outcome"]) == {"skipped"}, cells.to_dict("records")
    [reason] = set(cells["reason"])
    assert reason.startswith("no GPU visible in the kernel: ")
    assert "nvidia-smi not found" in reason  # the kernel's machine has no NVIDIA driver
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kernel_workload"]["skip_reasons"] == {reason: len(cells)}
    assert manifest["kernel_workload"]["cells"]["ran"] == 0
    # a skipped cell did no work: it is not timed as kernel.workload
    windows = pd.read_parquet(out / "windows.parquet")
    assert "kernel.workload" not in set(windows["endpoint"])
    assert "kernel.execute" in set(windows["endpoint"])


@pytest.mark.parametrize(
    "args, says",
    [
        (("--kernel-workload", "cpu:0"), "cpu takes s in (0, 300]"),
        (("--kernel-workload", "memory:lots"), "memory takes MiB in (0, 65536]"),
        (("--kernel-workload", "fortran"), "not a built-in (cpu, memory, gpu-matmul"),
        (("--kernel-workload", "cpu", "--scenario", "mlflow"), "needs --scenario jupyterhub"),
    ],
)
def test_bad_kernel_workload_is_one_line(tmp_path, args, says):
    r = labcap(
        "run", "--host", "http://127.0.0.1:9", "--scenario", "jupyterhub", "--no-calibrate",
        "--out", str(tmp_path / "run"), *args,
    )  # fmt: skip
    assert r.returncode == 2
    [line] = r.stderr.strip().splitlines()
    assert says in line, line


def test_a_file_of_code_is_the_cell_and_a_broken_one_is_refused(tmp_path):
    good = tmp_path / "train.py"
    good.write_text("import math\nx = sum(math.sqrt(i) for i in range(1000))\n")
    w = parse_workload(str(good))
    assert w.name == "file" and w.code == good.read_text()
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    with pytest.raises(LabcapError, match="line 1"):
        parse_workload(str(bad))


def test_reply_outcomes():
    def reply(text):
        return {"status": "ok", "user_expressions": {"labcap": {"data": {"text/plain": text}}}}

    skipped = repr(json.dumps({"outcome": "skipped", "reason": "no GPU"}))
    assert outcome_from_reply("ok", reply(skipped))[:2] == ("skipped", "no GPU")
    ran = repr(json.dumps({"outcome": "ran", "loops": 3}))
    assert outcome_from_reply("ok", reply(ran)) == ("ran", "", '{"loops": 3}')
    failed = outcome_from_reply("error", {"ename": "MemoryError", "evalue": ""})
    assert failed[0] == "failed" and "MemoryError" in failed[1]


STANDIN_TORCH = '''
"""STAND-IN for torch (no GPU here): a CUDA device that is always there, matmuls that
count themselves. Only the workload's control flow is under test, not a GPU."""
calls = {"matmul": 0, "sync": 0}


class _T:
    def __matmul__(self, other):
        calls["matmul"] += 1
        return self


def randn(*shape, device=None):
    assert device == "cuda"
    return _T()


class cuda:
    @staticmethod
    def is_available():
        return True

    @staticmethod
    def synchronize():
        calls["sync"] += 1

    @staticmethod
    def get_device_name(i):
        return "stand-in GPU"
'''


def test_gpu_matmul_runs_where_torch_sees_a_device(tmp_path):
    """The path this machine cannot take for real (no GPU): with a stand-in torch on the
    path, the cell holds its matmuls for the given seconds and reports them as ran."""
    (tmp_path / "torch.py").write_text(STANDIN_TORCH)
    code = parse_workload("gpu-matmul:0.2").code + "\nprint(_labcap_workload)\n"
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["outcome"] == "ran" and result["library"] == "torch"
    assert result["device"] == "stand-in GPU" and result["matmuls"] > 0
