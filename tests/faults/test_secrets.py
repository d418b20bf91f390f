"""Secrets never leak: a real reference-lab run, every artefact scanned.

The run uses the lab's hub password (LABCAP_HUB_PASSWORD) and its users mint
JupyterHub API tokens as they go. Scanned: every file of the run directory
(Parquet bytes included), the journal while the run was live, report.html, the
stdout and stderr of run / plan / report / profile, and the generated profiles.
Each secret is looked for raw, URL-encoded and base64-encoded; any 32-hex-digit
JupyterHub token next to the word token is a leak too.
"""

from __future__ import annotations

import base64
import contextlib
import re
import threading
import time
from urllib.parse import quote

import pytest

from labcap.store import JOURNAL
from tests.support.cli import labcap

pytestmark = pytest.mark.lab

TOKEN_NEAR = re.compile(rb"(?i)token[^0-9a-f]{1,20}[0-9a-f]{32}\b")


def _forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, quote(secret, safe="").encode(), base64.b64encode(raw).rstrip(b"=")]


def _scan(name: str, data: bytes, secrets: dict[str, str]) -> list[str]:
    found = [f"{name}: {label}" for label, s in secrets.items() for f in _forms(s) if f in data]
    found += [f"{name}: a hub token ({m.group(0)[:12]!r}...)" for m in TOKEN_NEAR.finditer(data)]
    return found


def test_no_secret_in_any_artefact_of_a_real_lab_run(reference_lab, tmp_path):
    secrets = {"hub password": reference_lab.hub_password, "hub api token": reference_lab.api_token}
    assert all(len(s) >= 8 for s in secrets.values())
    out = tmp_path / "run"
    journal_seen: list[bytes] = []
    done = threading.Event()

    def watch_journal() -> None:  # the journal is folded into Parquet at the end: read it live
        while not done.is_set():
            with contextlib.suppress(OSError):
                journal_seen.append((out / JOURNAL).read_bytes())
            time.sleep(0.5)

    watcher = threading.Thread(target=watch_journal, daemon=True)
    watcher.start()
    env = {"LABCAP_HUB_PASSWORD": reference_lab.hub_password}
    run = labcap(
        "run", "--host", reference_lab.hub_url, "--mlflow-url", reference_lab.mlflow_url,
        "--scenario", "lab", "--users", "2,3", "--step-duration", "12s", "--settle", "3s",
        "--no-calibrate", "--out", out, "--json", env=env, timeout=300, text=False,
    )  # fmt: skip
    done.set()
    watcher.join(timeout=5)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    assert journal_seen and max(map(len, journal_seen)) > 0
    outputs = {"run stdout": run.stdout, "run stderr": run.stderr}
    for cmd in (
        ("plan", out, "--json", "--expected-users", "5"),
        ("report", out),
        (
            "profile",
            out,
            "--platform",
            "compose",
            "--out",
            tmp_path / "compose",
            "--expected-users",
            "10",
        ),
        ("profile", out, "--platform", "k3s", "--out", tmp_path / "k3s", "--expected-users", "10"),
        ("gate", out, out, "--json"),
    ):
        r = labcap(*cmd, timeout=300, text=False)
        assert r.returncode in (0, 3), r.stderr.decode()
        outputs[f"{cmd[0]} stdout"], outputs[f"{cmd[0]} stderr"] = r.stdout, r.stderr
    assert (out / "report.html").exists()
    leaks: list[str] = []
    files = [f for d in (out, tmp_path / "compose", tmp_path / "k3s") for f in d.rglob("*")]
    assert any(f.suffix == ".parquet" for f in files)
    for f in files:
        if f.is_file():
            leaks += _scan(str(f.relative_to(tmp_path)), f.read_bytes(), secrets)
    for i, data in enumerate(journal_seen[-1:]):
        leaks += _scan(f"journal (live, snapshot {i})", data, secrets)
    for name, data in outputs.items():
        leaks += _scan(name, data, secrets)
    assert not leaks, leaks
    # the scan itself finds a secret where one is: it is not blind
    assert _scan("probe", b"x" + base64.b64encode(secrets["hub password"].encode()), secrets)
    assert _scan("probe", b"Authorization: token " + b"ab12" * 8, {})
