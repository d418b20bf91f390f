"""store.py's paired-run support: the engine's side tags split into a column, side views."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from labcap.errors import LabcapError
from labcap.model import SIDE_SEP
from labcap.store import MANIFEST, RunDir, split_sides
from tests.support.runs import synthetic_run


def test_tagged_endpoint_names_split_into_a_side_column():
    frame = pd.DataFrame(
        {"endpoint": [f"baseline{SIDE_SEP}GET /a", f"candidate{SIDE_SEP}GET /a"], "n": [1, 2]}
    )
    out = split_sides(frame)
    assert list(out["endpoint"]) == ["GET /a", "GET /a"]
    assert list(out["side"]) == ["baseline", "candidate"]


def test_a_one_sided_frame_is_left_as_it_is():
    frame = pd.DataFrame({"endpoint": ["GET /a"], "n": [1]})
    assert "side" not in split_sides(frame).columns


def test_side_views_read_one_side_and_refuse_a_run_without_sides(tmp_path):
    run_dir = synthetic_run(tmp_path / "run", seed=1)
    with pytest.raises(LabcapError, match="not a paired run"):
        RunDir.open(run_dir).side_view("candidate")
    # the same run made paired: its rows split between the two sides
    windows = pd.read_parquet(run_dir / "windows.parquet")
    windows["side"] = ["baseline" if i % 2 else "candidate" for i in range(len(windows))]
    windows.to_parquet(run_dir / "windows.parquet")
    manifest = json.loads((run_dir / MANIFEST).read_text())
    manifest["sides"] = {"baseline": {"hosts": {}}, "candidate": {"hosts": {}}}
    (run_dir / MANIFEST).write_text(json.dumps(manifest))
    run = RunDir.open(run_dir)
    assert run.sides() == ("baseline", "candidate")
    assert set(run.side_view("baseline").windows()["side"]) == {"baseline"}
    assert len(run.side_view("candidate").windows()) == len(windows) // 2
    assert len(run.windows()) == len(windows)
