"""Shared by the docker benchmarks: a private engine with the busybox test image.

With DOCKER_HOST set, that engine is used (and must hold the test image, or
be one labcap may import it into); otherwise a private dockerd is started
under /tmp and destroyed afterwards (root, Debian's docker.io).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.docker.engine import (  # noqa: E402
    TEST_IMAGE,
    PrivateEngine,
    build_test_image,
    ensure_tools,
    free_port,
    remove_all,
)

__all__ = ["TEST_IMAGE", "engine_client", "free_port", "percentile"]


@contextlib.contextmanager
def engine_client() -> Iterator[object]:
    """A docker client for a private engine (or DOCKER_HOST's), test image imported."""
    import docker

    if os.environ.get("DOCKER_HOST"):
        client = docker.from_env(max_pool_size=64)
        build_test_image(client)
        yield client
        return
    reason = ensure_tools()
    if reason:
        sys.exit(f"docker benchmarks: {reason}")
    eng = PrivateEngine()
    eng.start()
    client = eng.client(pool=64)
    try:
        build_test_image(client)
        yield client
    finally:
        remove_all(client)
        eng.destroy()


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is a measured one)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]
