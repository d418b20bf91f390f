"""A private Docker engine and a busybox test image, for tests and benchmarks.

The engine is Debian's ``dockerd`` started by ``scripts/dockerd.sh`` with its
own data/exec roots and socket (no bridge, no iptables); every container uses
host networking and binds 127.0.0.1. There is no image registry here: the test
image is ``docker import``-ed from a root filesystem holding busybox-static.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERD_SH = REPO / "scripts" / "dockerd.sh"
TEST_IMAGE = "labcap-test/httpd:latest"
TEST_LABEL = "labcap.test"
BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "httpd", "sleep", "wget", "true", "false", "cat", "echo", "dd", "head")
# Serves /www on 127.0.0.1:$PORT after $START_DELAY seconds; healthy once it answers.
CMD = (
    'CMD ["sh", "-c", "sleep ${START_DELAY:-0}; exec httpd -f -p 127.0.0.1:${PORT:-8080} -h /www"]'
)
HEALTHCHECK = (
    "HEALTHCHECK --interval=500ms --timeout=2s --start-period=60s --retries=1 "
    "CMD wget -q -O /dev/null http://127.0.0.1:${PORT:-8080}/ || exit 1"
)


def missing_tools() -> list[str]:
    missing = []
    if not shutil.which("dockerd"):
        missing.append("docker.io")
    if not os.path.exists(BUSYBOX) or not _static(BUSYBOX):
        missing.append("busybox-static")
    if not shutil.which("curl"):
        missing.append("curl")
    return missing


def _static(path: str) -> bool:
    out = subprocess.run(["file", "-L", path], capture_output=True, text=True).stdout
    return "statically linked" in out or "static-pie" in out or not out


def ensure_tools() -> str:
    """Install what is missing when root; returns a skip reason, or "" when all is there."""
    missing = missing_tools()
    if not missing:
        return ""
    if os.geteuid() != 0:
        return f"needs {' '.join(missing)} (as root: apt-get install -y {' '.join(missing)})"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, capture_output=True
    )
    return ""


class PrivateEngine:
    """One private dockerd under a short temporary directory."""

    def __init__(self, directory: str | None = None) -> None:
        # Short on purpose: unix socket paths are limited to 107 bytes.
        self.dir = directory or tempfile.mkdtemp(prefix="lcd-", dir="/tmp")
        self.host = f"unix://{self.dir}/docker.sock"

    def start(self) -> str:
        r = subprocess.run(
            [str(DOCKERD_SH), "start", self.dir], capture_output=True, text=True, timeout=60
        )
        if r.returncode != 0:
            raise RuntimeError(f"dockerd did not start: {r.stderr.strip()}")
        return self.host

    def stop(self) -> None:
        subprocess.run([str(DOCKERD_SH), "stop", self.dir], capture_output=True, timeout=60)

    def is_running(self) -> bool:
        """The engine in this directory answers (started earlier, e.g. by another run)."""
        r = subprocess.run([str(DOCKERD_SH), "status", self.dir], capture_output=True, timeout=60)
        return r.returncode == 0

    def client(self, pool: int = 32):
        import docker

        return docker.DockerClient(base_url=self.host, max_pool_size=pool, timeout=30)

    def destroy(self) -> None:
        self.stop()
        subprocess.run(["rm", "-rf", "--one-file-system", self.dir], capture_output=True)


def build_test_image(client, tag: str = TEST_IMAGE) -> str:
    """``docker import`` a busybox root filesystem with an httpd CMD and a HEALTHCHECK."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = Path(BUSYBOX).read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for name in APPLETS:
            link = tarfile.TarInfo(f"bin/{name}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for d in ("tmp", "dev", "proc", "sys", "etc"):
            node = tarfile.TarInfo(d)
            node.type, node.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(node)
        page = b"ok\n"
        info = tarfile.TarInfo("www/index.html")
        info.size = len(page)
        tar.addfile(info, io.BytesIO(page))
    repo, _, label = tag.partition(":")
    client.api.import_image_from_data(
        buf.getvalue(), repository=repo, tag=label or "latest", changes=[CMD, HEALTHCHECK]
    )
    return tag


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def remove_all(client) -> int:
    """Remove every container on the engine; returns how many there were."""
    gone = 0
    for c in client.api.containers(all=True):
        try:
            client.api.remove_container(c["Id"], force=True)
            gone += 1
        except Exception:
            pass
    return gone
