"""The light core install: run/plan/report/gate need none of the extras, and a command that
needs a missing one says, in one line, which pip command brings it.

A missing package is made by an import hook in the child process that refuses those module
names (the real import machinery, the real CLI); the core install itself is measured in a
fresh virtual environment (README, bench figures), which a test cannot afford on every run."""

from __future__ import annotations

import subprocess
import sys

from tests.support.runs import synthetic_run

EXTRAS = ("kubernetes", "docker", "pynvml", "prometheus_client", "kubernetes_validate")
EXTRAS += ("jsonschema", "jupyterhub", "mlflow")

_WITHOUT = """
import sys
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Missing())
sys.argv = ["labcap", *{argv!r}]
from labcap.cli import main
main()
"""


def _labcap_without(blocked, *argv):
    code = _WITHOUT.format(blocked=tuple(blocked), argv=[str(a) for a in argv])
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )


def test_plan_and_gate_run_without_any_extra(tmp_path):
    base = synthetic_run(tmp_path / "base", seed=1)
    current = synthetic_run(tmp_path / "current", seed=2)
    assert _labcap_without(EXTRAS, "--help").returncode == 0
    plan = _labcap_without(EXTRAS, "plan", base)
    assert plan.returncode == 0, plan.stderr
    gate = _labcap_without(EXTRAS, "gate", base, current)
    assert gate.returncode in (0, 1, 3), gate.stderr
    assert "Traceback" not in plan.stderr + gate.stderr


def test_a_missing_extra_is_one_line_naming_the_pip_command(tmp_path):
    run = synthetic_run(tmp_path / "run", seed=1)
    k8s = _labcap_without(
        ("kubernetes",), "run", "--target", "k8s", "--host", "http://127.0.0.1:9", "--dry-run"
    )
    assert k8s.returncode == 0  # a dry run connects nowhere: no library needed
    k8s = _labcap_without(("kubernetes",), "run", "--target", "k8s", "--host", "http://127.0.0.1:9")
    assert k8s.returncode == 2
    assert k8s.stderr.strip().splitlines() == [
        "labcap: error: kubernetes is not installed: pip install 'labcap[k8s]' brings it"
    ]
    prof = _labcap_without(
        ("kubernetes_validate",), "profile", run, "--platform", "compose", "--out", tmp_path / "p"
    )
    assert prof.returncode == 2
    assert prof.stderr.strip().splitlines() == [
        "labcap: error: kubernetes_validate is not installed: pip install 'labcap[profiles]' "
        "brings it"
    ]
