"""Load generators on other machines: the master gathers ``labcap worker``s, a worker joins.

``labcap run ... --expect-workers N --master-bind ADDR:PORT`` listens for the handshake on
ADDR:PORT (``labcap.loadtests.handshake``) and waits for N workers; each is checked (the
shared secret, its labcap and Locust versions, its locustfile if it brought one), named
``w1..wN`` in order of arrival, and handed the work: the engine configuration, with the
locustfile's source. Locust's own master then listens on ADDR:PORT+1, and the workers'
engines connect to it (``labcap.loadtests.engine``), record windows on the master's clock
(their clock offset measured in the handshake) and send them to the master, which merges
them exactly as it does for local worker processes.

``labcap worker --master HOST:PORT`` is the other side: it calibrates this machine (the
floor and ceiling go to the master's manifest), joins, writes the locustfile it was given
to a private temporary directory, runs one load engine as a Locust worker, and exits when
the run ends.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcap import __version__
from labcap.errors import LabcapError
from labcap.loadtests import handshake as hs
from labcap.loadtests.engine import SESSION_ENV
from labcap.measure.cleanup import die_with_parent
from labcap.measure.settings import WorkerOptions

Progress = Callable[[str], None]


def locust_version() -> str:
    from importlib.metadata import version

    return version("locust")


@dataclass(frozen=True)
class RemoteWorkers:
    """``--expect-workers N --master-bind ADDR:PORT --worker-wait S``: who the master waits for."""

    expect: int
    bind_host: str
    bind_port: int
    wait_s: float
    secret: bytes = field(repr=False)

    @property
    def locust_port(self) -> int:
        return self.bind_port + 1


@dataclass(frozen=True)
class JoinedWorker:
    name: str
    address: str  # as the master saw it (the peer address of the handshake)
    hostname: str
    version: str
    locust_version: str
    clock_offset_s: float | None
    calibration: dict[str, Any] | None
    session_key: bytes = field(repr=False)

    def record(self) -> dict[str, Any]:
        """The manifest's entry (no key)."""
        return {
            "name": self.name,
            "address": self.address,
            "hostname": self.hostname,
            "labcap_version": self.version,
            "locust_version": self.locust_version,
            "clock_offset_s": self.clock_offset_s,
            "calibration": self.calibration,
        }


def work_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The engine configuration a remote worker gets: the locustfile's source in place of
    its path on this machine."""
    out = {k: v for k, v in cfg.items() if k not in ("workers", "remote")}
    scenario = dict(cfg["scenario"])
    if scenario.get("path"):
        source = Path(scenario.pop("path")).read_text(encoding="utf-8")
        scenario["locustfile"] = source
        scenario["sha256"] = hs.sha256_text(source)
    out["scenario"] = scenario
    return out


def gather_workers(
    spec: RemoteWorkers, cfg: dict[str, Any], progress: Progress
) -> list[JoinedWorker]:
    """Wait (up to ``spec.wait_s``) for ``spec.expect`` workers to pass the handshake."""
    work = work_config(cfg)
    try:
        server = socket.create_server((spec.bind_host, spec.bind_port), reuse_port=False)
    except OSError as e:
        raise LabcapError(
            f"--master-bind {spec.bind_host}:{spec.bind_port}: cannot listen ({e.strerror or e})"
        ) from None
    joined: list[JoinedWorker] = []
    where = f"{spec.bind_host}:{spec.bind_port}"
    progress(
        f"waiting up to {spec.wait_s:g}s for {spec.expect} workers: run "
        f"`labcap worker --master HOST:{spec.bind_port}` on each load machine"
    )
    deadline = time.monotonic() + spec.wait_s
    with server:
        while len(joined) < spec.expect:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabcapError(
                    f"only {len(joined)} of {spec.expect} workers joined the master at {where} "
                    f"within {spec.wait_s:g}s (--worker-wait): start `labcap worker --master "
                    f"HOST:{spec.bind_port}` with the same {hs.SECRET_ENV} on each load machine"
                )
            server.settimeout(min(left, 1.0))
            try:
                sock, peer = server.accept()
            except TimeoutError:
                continue
            name = f"w{len(joined) + 1}"
            try:
                worker, refusal = _admit(sock, peer[0], name, spec, work)
            except (OSError, ValueError, ConnectionError) as e:
                progress(f"a worker from {peer[0]} dropped during the handshake ({e})")
                continue
            if worker is None:
                progress(f"refused a worker from {peer[0]}: {refusal}")
                continue
            joined.append(worker)
            progress(
                f"worker {name} joined from {worker.address} ({worker.hostname}); "
                f"{len(joined)} of {spec.expect}"
            )
    return joined


def _admit(
    sock: socket.socket, address: str, name: str, spec: RemoteWorkers, work: dict[str, Any]
) -> tuple[JoinedWorker | None, str]:
    """One handshake, master's side: the worker joined, or why it was refused."""
    line = hs.Line(sock)
    try:
        nm = hs.nonce()
        line.send({"labcap": "master", "protocol": hs.PROTOCOL, "nonce": nm})
        hello = line.recv()
        t_received = time.time()
        nw = str(hello.get("nonce", ""))
        why = _refusal(spec.secret, nm, nw, hello, work)
        if why:
            line.send({"refused": why})
            return None, why
        body = {
            "name": name,
            "locust_port": spec.locust_port,
            "config": work,
            "t_received": t_received,  # the master's clock when the hello came
        }
        body["t_master"] = time.time()  # and as the work leaves
        line.send(hs.signed(spec.secret, "master", nm, nw, body))
        answer = line.recv()
        if answer.get("refused"):
            return None, f"the worker refused: {str(answer['refused'])[:300]}"
        if not hs.verify(spec.secret, "ready", nm, nw, answer):
            return None, "the worker's answer did not carry the shared secret's MAC"
        return (
            JoinedWorker(
                name=name,
                address=address,
                hostname=str(hello.get("hostname", ""))[:200],
                version=str(hello["version"]),
                locust_version=str(hello["locust"]),
                clock_offset_s=_number(answer.get("clock_offset_s")),
                calibration=hello.get("calibration")
                if isinstance(hello.get("calibration"), dict)
                else None,  # noqa: E501
                session_key=hs.session_key(spec.secret, nm, nw),
            ),
            "",
        )
    finally:
        line.close()


def _refusal(secret: bytes, nm: str, nw: str, hello: dict[str, Any], work: dict[str, Any]) -> str:
    if hello.get("protocol") != hs.PROTOCOL:
        return f"handshake protocol {hello.get('protocol')!r}, the master speaks {hs.PROTOCOL}"
    if not nw or not hs.verify(secret, "worker", nm, nw, hello):
        return f"wrong secret ({hs.SECRET_ENV} differs from the master's)"
    if hello.get("version") != __version__:
        return f"labcap {hello.get('version')} on the worker, {__version__} on the master"
    if hello.get("locust") != locust_version():
        return f"Locust {hello.get('locust')} on the worker, {locust_version()} on the master"
    mine = work["scenario"].get("sha256")
    theirs = hello.get("locustfile_sha256")
    if theirs and theirs != mine:
        what = f"sha256 {str(mine)[:12]}" if mine else f"built-in {work['scenario']['name']!r}"
        return f"locustfile differs: the worker's sha256 {str(theirs)[:12]}, the master's {what}"
    return ""


def _number(value: Any) -> float | None:
    return round(float(value), 6) if isinstance(value, (int, float)) else None


# --- the worker's side -------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerRequest:
    master_host: str
    master_port: int
    bind: str | None  # source address of this worker's connections to the master
    locustfile: Path | None  # its own copy: the master refuses it unless it is the master's
    calibrate: bool
    wait_s: float
    secret: bytes = field(repr=False)


def run_worker(req: WorkerRequest, progress: Progress) -> int:
    """Join the master, run one load engine as its Locust worker; the engine's exit code."""
    own = req.locustfile.read_text(encoding="utf-8") if req.locustfile else None
    if req.locustfile and own is None:
        raise LabcapError(f"--locustfile {req.locustfile} cannot be read")
    calibration = None
    if req.calibrate:
        from labcap.measure import calibrate

        progress("calibrating this load machine (--no-calibrate skips)")
        calibration = calibrate.calibrate()
    line = _connect(req, progress)
    try:
        joined = _join(line, req, own, calibration)
    finally:
        line.close()
    name, work, key, offset = joined
    progress(
        f"joined the master at {req.master_host}:{req.master_port} as {name} "
        f"(clock offset {offset * 1000:+.1f} ms); running its load"
    )
    return _run_engine(req, name, work, key, offset)


def _connect(req: WorkerRequest, progress: Progress) -> hs.Line:
    deadline = time.monotonic() + req.wait_s
    where = f"{req.master_host}:{req.master_port}"
    said = False
    while True:
        try:
            sock = socket.create_connection(
                (req.master_host, req.master_port),
                timeout=5,
                source_address=(req.bind, 0) if req.bind else None,
            )
            return hs.Line(sock)
        except OSError as e:
            if time.monotonic() >= deadline:
                raise LabcapError(
                    f"no master answered at {where} within {req.wait_s:g}s (--wait): "
                    f"{e.strerror or e}"
                ) from None
            if not said:
                progress(f"waiting for the master at {where} ({e.strerror or e})")
                said = True
            time.sleep(1.0)


def _join(
    line: hs.Line, req: WorkerRequest, own: str | None, calibration: dict[str, Any] | None
) -> tuple[str, dict[str, Any], bytes, float]:
    """The worker's side of the handshake: (name, engine configuration, session key, offset)."""
    where = f"{req.master_host}:{req.master_port}"
    challenge = line.recv()
    nm = str(challenge.get("nonce", ""))
    if challenge.get("labcap") != "master" or not nm:
        raise LabcapError(f"{where} is not a labcap master")
    nw = hs.nonce()
    hello = {
        "protocol": hs.PROTOCOL,
        "nonce": nw,
        "version": __version__,
        "locust": locust_version(),
        "hostname": platform.node(),
        "locustfile_sha256": hs.sha256_text(own) if own is not None else None,
        "calibration": calibration,
    }
    message = hs.signed(req.secret, "worker", nm, nw, hello)
    t_sent = time.time()
    line.send(message)
    work = line.recv()
    t_back = time.time()
    if work.get("refused"):
        raise LabcapError(f"the master at {where} refused this worker: {work['refused']}")
    if not hs.verify(req.secret, "master", nm, nw, work):
        line.send({"refused": "the master's work did not carry the shared secret's MAC"})
        raise LabcapError(
            f"the master at {where} did not prove {hs.SECRET_ENV}: its locustfile is not run"
        )
    cfg = work["config"]
    scenario = cfg["scenario"]
    source = scenario.get("locustfile")
    if source is not None and hs.sha256_text(source) != scenario.get("sha256"):
        line.send({"refused": "the locustfile's sha256 does not match its source"})
        raise LabcapError("the master's locustfile arrived damaged (sha256 differs)")
    # NTP's estimate: the processing between the master's two readings does not count
    offset = ((float(work["t_received"]) - t_sent) + (float(work["t_master"]) - t_back)) / 2
    line.send(hs.signed(req.secret, "ready", nm, nw, {"ready": True, "clock_offset_s": offset}))
    return str(work["name"]), {**cfg, "locust_port": int(work["locust_port"])}, \
        hs.session_key(req.secret, nm, nw), offset  # fmt: skip


def _run_engine(
    req: WorkerRequest, name: str, work: dict[str, Any], key: bytes, offset: float
) -> int:
    """One load engine as a Locust worker, in its own process (Locust patches the process
    it is imported in); the configuration and locustfile in a private temporary directory."""
    with tempfile.TemporaryDirectory(prefix="labcap-worker-") as tmp:
        scenario = dict(work["scenario"])
        if scenario.get("locustfile") is not None:
            path = Path(tmp) / (Path(str(scenario.get("name") or "locustfile.py")).name)
            path.write_text(scenario.pop("locustfile"), encoding="utf-8")
            scenario["path"] = str(path)
        cfg = {
            **work,
            "scenario": scenario,
            "master": {
                "host": req.master_host,
                "port": int(work["locust_port"]),
                "bind": req.bind,
                "name": name,
                "clock_offset_s": offset,
            },
        }
        config = Path(tmp) / "engine.json"
        config.write_text(json.dumps(cfg), encoding="utf-8")
        env = {**os.environ, SESSION_ENV: key.hex()}
        env.pop(hs.SECRET_ENV, None)  # the engine needs the session key only
        proc = subprocess.Popen(
            [sys.executable, "-m", "labcap.loadtests.engine", "--remote-worker", str(config)],
            env=env,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # a killed `labcap worker` leaves no engine behind
        )
        try:
            return proc.wait()
        except KeyboardInterrupt:  # the engine ignores signals (the master stops it)
            proc.kill()
            proc.wait()
            raise


def serve(opts: WorkerOptions, progress: Progress) -> int:
    """``labcap worker``: its options checked (one line each), then one run as a worker."""
    from labcap.units import parse_duration

    host, port = hs.parse_address(opts.master, what="--master")
    if opts.locustfile is not None and not opts.locustfile.is_file():
        raise LabcapError(f"--locustfile {opts.locustfile} does not exist")
    req = WorkerRequest(
        master_host=host,
        master_port=port,
        bind=opts.bind,
        locustfile=opts.locustfile,
        calibrate=opts.calibrate,
        wait_s=parse_duration(opts.wait, what="--wait"),
        secret=hs.read_secret(),
    )
    rc = run_worker(req, progress)
    if rc != 0:
        raise LabcapError(f"the load engine stopped with exit code {rc}")
    progress("the master ended the run")
    return 0
