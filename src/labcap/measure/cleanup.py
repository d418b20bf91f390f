"""Resource hygiene: what labcap starts dies with it, and ``labcap cleanup`` removes
what a crashed run left behind.

Every resource labcap creates carries its mark:

- processes: the load engine is started with ``die_with_parent`` (Linux
  PR_SET_PDEATHSIG), so a SIGKILLed ``labcap run`` does not leave it running;
- containers: the label ``app.kubernetes.io/managed-by=labcap`` and
  ``labcap.run-id=<run id>`` (and a ``labcap-`` name prefix);
- Kubernetes namespaces and pods: the same two labels;
- temporary directories: the prefix ``labcap-`` in the system temp dir;
- JupyterHub users of the API journey: the name prefix ``labcap-<run id>-``
  (``clients.hub``; found with ``--hub URL`` and the admin token);
- run directories: a ``.lock`` file, held (flock) while a run writes.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "labcap"
RUN_ID_LABEL = "labcap.run-id"
TEMP_PREFIX = "labcap-"

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for a child that must not outlive labcap (SIGTERM when it dies).

    SIGTERM, not SIGKILL: the load engine then journals its open window and ends
    itself, so the orphaned run still reads as partial with every window kept.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except OSError:
        pass  # not Linux: the engine's own schedule deadline still ends it


# ---------------------------------------------------------------- labcap cleanup


# earlier labels that still mark labcap's containers and namespaces
RUN_ID_KEYS = (RUN_ID_LABEL, "labcap.probe")
ENGINE_MODULE = "labcap.loadtests.engine"
STALE_TEMP_S = 60.0  # younger temp dirs may belong to a run that is starting


@dataclass(frozen=True)
class Leftover:
    kind: str  # container | process | lock | temp-dir | namespace | hub-user | docker | kubernetes
    name: str
    action: str  # removed | would remove | kept | skipped | failed
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def lock_is_held(run_dir: Path) -> bool:
    """Whether a live labcap run holds ``run_dir``'s lock (probing releases it at once)."""
    try:
        fd = os.open(run_dir / ".lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _engine_run_dir(cmdline: list[str]) -> Path | None:
    if ENGINE_MODULE not in cmdline:
        return None
    for arg in cmdline:
        if arg.endswith(".engine.json"):
            return Path(arg).parent
    return None


def _orphan_engines(run: str | None, dry_run: bool) -> list[Leftover]:
    """Load engines (and their Locust workers) whose labcap run is gone."""
    import psutil

    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            run_dir = _engine_run_dir(p.info["cmdline"] or [])
            if run_dir is None or lock_is_held(run_dir):
                continue
            if run and run not in (run_dir.name, str(run_dir)):
                continue
            name = f"pid {p.pid} ({run_dir})"
            if dry_run:
                out.append(Leftover("process", name, "would remove", "its run is gone"))
                continue
            p.terminate()  # SIGTERM: an engine journals its open window first
            try:
                p.wait(timeout=15)
            except psutil.TimeoutExpired:
                p.kill()
            out.append(Leftover("process", name, "removed", "its run is gone"))
    return out


def _stale_locks(runs_dir: Path, run: str | None, dry_run: bool) -> list[Leftover]:
    out = []
    if not runs_dir.is_dir():
        return out
    for lock in sorted(runs_dir.glob("*/.lock")):
        run_dir = lock.parent
        if run and run not in (run_dir.name, str(run_dir)):
            continue
        if lock_is_held(run_dir):
            out.append(Leftover("lock", str(lock), "kept", "a live run holds it"))
            continue
        if not dry_run:
            lock.unlink(missing_ok=True)
        out.append(
            Leftover("lock", str(lock), "would remove" if dry_run else "removed", "not held")
        )
    return out


def _in_use(path: Path) -> bool:
    import psutil

    prefix = str(path)
    for p in psutil.process_iter(["cmdline", "cwd"]):
        with contextlib.suppress(psutil.Error):
            if (p.info["cwd"] or "").startswith(prefix) or any(
                prefix in a for a in p.info["cmdline"] or []
            ):
                return True
    return False


def _temp_dirs(dry_run: bool, now: float) -> list[Leftover]:
    out = []
    for d in sorted(Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*")):
        if not d.is_dir() or d.is_symlink():
            continue
        if now - d.stat().st_mtime < STALE_TEMP_S or _in_use(d):
            out.append(Leftover("temp-dir", str(d), "kept", "in use or just made"))
            continue
        if not dry_run:
            shutil.rmtree(d, ignore_errors=True)
        out.append(
            Leftover("temp-dir", str(d), "would remove" if dry_run else "removed", "not in use")
        )
    return out


def _containers(run: str | None, dry_run: bool, client: Any = None) -> list[Leftover]:
    try:
        import docker
    except ImportError:
        return [
            Leftover(
                "docker", "-", "skipped", "docker is not installed: pip install 'labcap[docker]'"
            )
        ]
    try:
        client = client or docker.from_env(timeout=10)
        client.ping()
    except Exception as e:
        return [Leftover("docker", os.environ.get("DOCKER_HOST", "default"), "skipped", str(e))]
    seen: dict[str, dict[str, Any]] = {}
    filters = [f"{MANAGED_BY_LABEL}={MANAGED_BY}", *RUN_ID_KEYS]
    for flt in filters:
        for c in client.api.containers(all=True, filters={"label": flt}):
            seen[c["Id"]] = c
    out = []
    for cid, c in sorted(seen.items()):
        labels = c.get("Labels") or {}
        ids = {labels.get(k) for k in RUN_ID_KEYS} - {None}
        if run and run not in ids:
            continue
        name = (c.get("Names") or [cid[:12]])[0].lstrip("/")
        keys = (MANAGED_BY_LABEL, *RUN_ID_KEYS)
        marks = sorted(f"{k}={v}" for k, v in labels.items() if k in keys)
        why = f"labelled {', '.join(marks)}"
        if dry_run:
            out.append(Leftover("container", name, "would remove", why))
            continue
        try:
            client.api.remove_container(cid, force=True)
            out.append(Leftover("container", name, "removed", why))
        except Exception as e:
            out.append(Leftover("container", name, "failed", str(e)))
    return out


def _namespaces(kubeconfig: Path, run: str | None, dry_run: bool) -> list[Leftover]:
    try:
        from kubernetes import client, config
    except ImportError:
        return [
            Leftover(
                "kubernetes",
                "-",
                "skipped",
                "kubernetes is not installed: pip install 'labcap[k8s]'",
            )
        ]
    if not Path(kubeconfig).is_file():
        raise LabcapError(f"--kubeconfig {kubeconfig}: no such file")
    try:
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        items = api.list_namespace(
            label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}", _request_timeout=15
        ).items
    except Exception as e:
        return [Leftover("kubernetes", str(kubeconfig), "skipped", type(e).__name__)]
    out = []
    for ns in items:
        labels = ns.metadata.labels or {}
        if run and run not in {labels.get(k) for k in RUN_ID_KEYS}:
            continue
        name, why = ns.metadata.name, f"labelled {MANAGED_BY_LABEL}={MANAGED_BY}"
        if dry_run:
            out.append(Leftover("namespace", name, "would remove", why))
            continue
        try:
            api.delete_namespace(name, _request_timeout=15)
            out.append(Leftover("namespace", name, "removed", why))
        except Exception as e:
            out.append(Leftover("namespace", name, "failed", type(e).__name__))
    return out


def _hub_users(hub_url: str, token_env: str, run: str | None, dry_run: bool) -> list[Leftover]:
    """Users named labcap-* (or labcap-<run>-*) on the hub, deleted with the admin token."""
    from labcap.clients.hub import ACCOUNT_PREFIX, HubAdmin, run_prefix
    from labcap.measure.preflight import check_url

    check_url(hub_url, what="--hub")
    token = os.environ.get(token_env, "")
    if not token:
        raise LabcapError(f"--hub needs the hub's admin or service token in ${token_env}")
    admin = HubAdmin(hub_url, token, token_env=token_env)
    try:
        swept = admin.sweep(run_prefix(run) + "-" if run else ACCOUNT_PREFIX, dry_run=dry_run)
    finally:
        admin.close()
    why = "made by labcap run --login api"
    return [
        Leftover(
            "hub-user",
            a.name,
            "would remove" if dry_run else ("removed" if a.removed else "failed"),
            why if a.removed or dry_run else a.reason,
        )
        for a in swept
    ]


def cleanup(
    *,
    run: str | None = None,
    runs_dir: Path = Path("runs"),
    kubeconfig: Path | None = None,
    dry_run: bool = False,
    docker_client: Any = None,
    progress: Callable[[str], None] | None = None,
    hub: str | None = None,
    hub_token_env: str = "LABCAP_HUB_TOKEN",
) -> list[Leftover]:
    """Find (and unless ``dry_run``, remove) what crashed labcap runs left behind."""
    found: list[Leftover] = []
    if hub is not None:
        found += _hub_users(hub, hub_token_env, run, dry_run)
    found += _orphan_engines(run, dry_run)
    found += _containers(run, dry_run, docker_client)
    if kubeconfig is not None:
        found += _namespaces(kubeconfig, run, dry_run)
    found += _stale_locks(Path(runs_dir), run, dry_run)
    if run is None:  # temp dirs carry no run id: only a full clean-up takes them
        found += _temp_dirs(dry_run, time.time())
    for f in found:
        if progress:
            progress(f"{f.action}: {f.kind} {f.name} ({f.reason})")
    return found
