"""labcap.toml / [tool.labcap] and LABCAP_* defaults: flag > environment > file > default,
shown by ``labcap run --dry-run``, which sends the target nothing."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.cli import labcap


@pytest.fixture
def counting_target():
    """A loopback HTTP target that counts every request it gets."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _dry_run(cwd, *args, env=None):
    r = labcap(
        "run", "--dry-run", "--json", *args, cwd=cwd, env={"LABCAP_CONFIG": "", **(env or {})}
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_flag_beats_env_beats_file_and_the_target_sees_no_request(tmp_path, counting_target):
    url, seen = counting_target
    (tmp_path / "labcap.toml").write_text(
        f'host = "{url}"\nslo = ["p95=800ms", "error_pct=1"]\nstep_duration = "2m"\n'
        'scenario = "mlflow"\n'
    )
    env = {"LABCAP_STEP_DURATION": "1m30s", "LABCAP_SCENARIO": "jupyterhub"}
    d = _dry_run(tmp_path, "--scenario", "lab", "--users", "3,6", env=env)
    assert d["options"]["host"] == url and d["sources"]["host"].startswith("file ")
    assert d["options"]["slos"] == ["p95=800ms", "error_pct=1"]
    assert d["slos"] == ["p95=800ms", "error_pct=1"]
    assert (d["options"]["step_duration"], d["sources"]["step_duration"]) == (
        "1m30s",
        "env LABCAP_STEP_DURATION",
    )
    assert (d["options"]["scenario"], d["sources"]["scenario"]) == ("lab", "flag")
    assert d["plan"]["users"] == [3, 6] and d["plan"]["step_duration_s"] == 90
    assert d["plan"]["duration_s"] == 180
    assert d["sources"]["window"] == "default"
    text = labcap("run", "--dry-run", cwd=tmp_path, env={"LABCAP_CONFIG": ""})
    assert text.returncode == 0 and "(file " in text.stdout and "nothing is sent" in text.stdout
    assert seen == []  # the dry run sent the target nothing
    assert not (tmp_path / "runs").exists()  # and wrote no run directory


def test_pyproject_tool_labcap_and_env_defaults(tmp_path, counting_target):
    url, seen = counting_target
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "mylab"\n\n[tool.labcap]\nslo = ["p99=2s"]\n'
    )
    d = _dry_run(tmp_path, env={"LABCAP_HOST": url, "LABCAP_SLO": "p95=1s error_pct=2"})
    assert d["sources"]["host"] == "env LABCAP_HOST"
    assert d["options"]["slos"] == ["p95=1s", "error_pct=2"]  # env beats the file
    d = _dry_run(tmp_path, "--host", url)
    assert d["options"]["slos"] == ["p99=2s"] and d["sources"]["slos"].endswith("pyproject.toml")
    assert seen == []


def test_expected_users_comes_from_the_environment_in_plan_and_profile(monkeypatch):
    from labcap.cli import cli

    commands = (["plan", "r"], ["profile", "r", "--platform", "k3s", "--out", "o"])
    for path in commands:
        ctx = cli.commands[path[0]].make_context(path[0], path[1:])
        assert ctx.params["expected_users"] is None
    monkeypatch.setenv("LABCAP_EXPECTED_USERS", "40")
    for path in commands:
        ctx = cli.commands[path[0]].make_context(path[0], path[1:])
        assert ctx.params["expected_users"] == 40  # one parser, an int in both


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('hots = "http://127.0.0.1:1"\n', "unknown key 'hots'; valid keys are"),
        ("host = [\n", "not a readable TOML file"),
        ("slo = [{a = 1}]\n", "slo must be a string, a number or a list of them"),
    ],
)
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, content, fragment):
    (tmp_path / "labcap.toml").write_text(content)
    r = labcap("run", "--dry-run", cwd=tmp_path, env={"LABCAP_CONFIG": ""})
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labcap: error:") and fragment in lines[0]
