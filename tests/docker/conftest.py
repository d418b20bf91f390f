"""A real, private Docker engine for the docker tests (no mocks).

Session-scoped: installs docker.io and busybox-static when missing (as root),
starts dockerd via scripts/dockerd.sh, imports the busybox test image, and at
the end removes every container and stops the engine. After each test that
used it, no container may be left behind.
"""

from __future__ import annotations

import pytest

from tests.docker.engine import PrivateEngine, build_test_image, ensure_tools, remove_all


@pytest.fixture(scope="session")
def engine():
    reason = ensure_tools()
    if reason:
        pytest.skip(f"docker tests: {reason}")
    eng = PrivateEngine()
    eng.start()
    client = eng.client()
    build_test_image(client)
    eng.docker = client
    yield eng
    remove_all(client)
    client.close()
    eng.destroy()


@pytest.fixture
def docker_client(engine):
    return engine.docker


@pytest.fixture(autouse=True)
def no_leftover_containers(request):
    """Every test that touched the engine leaves it empty."""
    yield
    if "engine" not in request.fixturenames:
        return
    client = request.getfixturevalue("engine").docker
    left = client.api.containers(all=True)
    names = [c["Names"][0] for c in left]
    remove_all(client)
    assert not left, f"containers left behind: {names}"
