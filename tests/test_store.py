import json
import os
import subprocess
import sys

import pytest

from labcap.errors import LabcapError
from labcap.store import JOURNAL, RunDir, atomic_write_bytes, read_journal, run_lock


def _manifest(**kw):
    m = {
        "schema_version": "1.0",
        "status": "complete",
        "load": {"window_s": 1, "spawn_rate": 1, "steps": []},
        "slos": [],
        "scenario": {"name": "x"},
    }
    m.update(kw)
    return m


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "m.json"
    target.write_text("old")

    class Boom(bytes):
        pass

    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())  # not bytes: the write fails mid-way
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temp file left


def test_newer_schema_is_refused_with_clear_message(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(_manifest(schema_version="3.0")))
    with pytest.raises(LabcapError, match="newer labcap"):
        RunDir.open(tmp_path)


@pytest.mark.parametrize(
    "content,fragment",
    [
        ("{not json", "not valid JSON"),
        ("[]", "no schema_version"),
        (json.dumps({"schema_version": "1.0"}), "missing"),
    ],
)
def test_damaged_manifest_is_named(tmp_path, content, fragment):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(LabcapError, match=fragment):
        RunDir.open(tmp_path)


def test_not_a_run_dir(tmp_path):
    with pytest.raises(LabcapError, match="not a labcap run"):
        RunDir.open(tmp_path)
    with pytest.raises(LabcapError, match="no such run directory"):
        RunDir.open(tmp_path / "nope")


def test_running_manifest_of_dead_process_reads_as_partial(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (tmp_path / "manifest.json").write_text(
        json.dumps(_manifest(status="running", pid=int(dead.stdout)))
    )
    m = RunDir.open(tmp_path).manifest
    assert m["status"] == "partial"
    assert "killed" in m["status_reasons"][-1]


def test_torn_journal_line_is_skipped(tmp_path):
    p = tmp_path / JOURNAL
    p.write_text('{"kind": "window", "a": 1}\n{"kind": "window", "a": 2}\n{"kind": "win')
    assert [r["a"] for r in read_journal(p)] == [1, 2]


def test_two_writers_cannot_share_a_run_dir(tmp_path):
    with run_lock(tmp_path):
        code = (
            "import sys; from pathlib import Path; from labcap.store import run_lock\n"
            "from labcap.errors import LabcapError\n"
            "try:\n    with run_lock(Path(sys.argv[1])): sys.exit(0)\n"
            "except LabcapError as e:\n    print(e); sys.exit(3)\n"
        )
        r = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
        )
        assert r.returncode == 3 and "another labcap run" in r.stdout
    assert os.path.exists(tmp_path / ".lock")
