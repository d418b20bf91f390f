"""The load engine's paired-run classes: every class once per side, with that side's hosts.

Run in a child process: importing Locust monkey-patches the process (gevent).
"""

from __future__ import annotations

import json
import subprocess
import sys

CODE = """
import json, sys
from labcap.loadtests.catalog import SCENARIOS
from labcap.loadtests.engine import load_user_classes, side_request_listener
s = SCENARIOS["lab"]
classes = load_user_classes({
    "scenario": {"module": s.module, "classes": [list(c) for c in s.classes]},
    "hosts": {"jupyterhub": "http://127.0.0.1:1", "mlflow": "http://127.0.0.1:2"},
    "candidate_hosts": {"jupyterhub": "http://127.0.0.1:3", "mlflow": "http://127.0.0.1:4"},
})
seen = []
listener = side_request_listener(lambda method, name, rt, **kw: seen.append(name))
listener("GET", "mlflow.search", 1.0, context={"labcap_side": "candidate"})
listener("GET", "mlflow.search", 1.0, context={})
json.dump({
    "classes": [[c.__name__, c.labcap_side, c.host, c.weight] for c in classes],
    "base": [list(c) for c in s.classes],
    "seen": seen,
}, sys.stdout)
"""


def test_a_paired_run_has_each_class_once_per_side_with_its_hosts():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    classes = {name: (side, host, weight) for name, side, host, weight in out["classes"]}
    assert len(classes) == 2 * len(out["base"])
    ports = {"baseline": {"1", "2"}, "candidate": {"3", "4"}}
    for base_name, weight in out["base"]:
        for side in ("baseline", "candidate"):
            got_side, host, got_weight = classes[f"{base_name}_{side}"]
            assert got_side == side and got_weight == weight
            assert host.rsplit(":", 1)[1] in ports[side]
    # the side tag reaches the recorder in the endpoint's name; untagged names pass as they are
    assert out["seen"] == ["candidate\x1fmlflow.search", "mlflow.search"]
