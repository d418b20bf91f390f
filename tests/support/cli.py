"""The labcap command as the tests run it: a real subprocess, or click's CliRunner in-process.

``labcap(...)`` runs ``python -m labcap.cli`` with this interpreter, so the
worktree's ``PYTHONPATH`` (and with it the source under test) reaches the child;
use it where exit codes, stdout/stderr separation or process behaviour are under
test. ``invoke(...)`` is the in-process variant for quick usage-error checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from click.testing import CliRunner, Result

from tests.support.schemas import check_json_output

TIMEOUT_S = 180.0  # a bound for a hung command, not an expected duration


def labcap_argv(*args: object) -> list[str]:
    """The argv of ``labcap ARGS`` (for ``subprocess.Popen`` where a test drives the process)."""
    return [sys.executable, "-m", "labcap.cli", *map(str, args)]


def labcap(
    *args: object,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT_S,
    cwd: str | Path | None = None,
    text: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``labcap ARGS`` to completion; ``env`` adds variables to this process's environment.

    Arguments are passed through ``str`` (paths welcome); stdout and stderr are
    captured apart; a non-zero exit is returned, never raised.
    """
    proc = subprocess.run(
        labcap_argv(*args),
        capture_output=True,
        text=text,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if text:  # every --json output a test sees follows its schema (src/labcap/schemas)
        check_json_output(args, proc.stdout)
    return proc


def invoke(*args: object, env: Mapping[str, str] | None = None) -> Result:
    """Run ``labcap ARGS`` in this process through click's ``CliRunner``."""
    from labcap.cli import cli  # the CLI module, imported only by tests that call it

    result = CliRunner().invoke(cli, [str(a) for a in args], env=dict(env or {}))
    check_json_output(args, result.stdout)
    return result
