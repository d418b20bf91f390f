"""Start one of the loopback test targets in tests/support as a subprocess."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

SUPPORT = Path(__file__).parent


@contextlib.contextmanager
def loopback_server(script: str, *args: str) -> Iterator[str]:
    """Run ``script`` (it prints its port, then serves on 127.0.0.1); yield its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(SUPPORT / script), *args], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()
