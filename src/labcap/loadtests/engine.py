"""The load engine: runs Locust in its own process and journals latency windows.

Run as ``python -m labcap.loadtests.engine CONFIG.json``. Locust (and with it
gevent's monkey-patching) is imported only here, inside ``main``, so the rest
of labcap stays clean. Secrets come through the environment, never the
config file or argv.

Exit codes: 0 the plan ran to its end, 130 interrupted (SIGINT/SIGTERM), 2 the
configuration or locustfile is unusable (the journal holds an ``error`` line).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labcap.model import BASELINE_SIDE, CANDIDATE_SIDE, SIDE_SEP, plan_from_dict

PASSWORD_ENV = "LABCAP_HUB_PASSWORD"
# the API journey's admin/service token (labcap run copies it here from --hub-token-env)
HUB_TOKEN_ENV = "LABCAP_ENGINE_HUB_TOKEN"
# A file of pre-created hub user names, one a line (hubs without sign-up at first login);
# ``labcap run --users-file`` puts it in the config's ``hub.users_file``, this env is the
# older way and still read
ACCOUNTS_ENV = "LABCAP_HUB_USERS_FILE"
# remote workers (labcap.measure.remote): the session keys of the handshake, never on disk
SESSIONS_ENV = "LABCAP_WORKER_SESSIONS"  # the master's: {worker name: key hex}
SESSION_ENV = "LABCAP_WORKER_SESSION"  # a worker's own key, hex


def _progress(msg: str) -> None:
    print(f"labcap: {msg}", file=sys.stderr, flush=True)


def _search_controller(cfg: dict[str, Any]) -> Any:
    """The adaptive search's controller when the run is one (``--users auto``)."""
    if not cfg.get("search"):
        return None
    from labcap.planner.search_controller import SearchController, SearchSettings
    from labcap.slo import slos_from_records

    return SearchController(SearchSettings(**cfg["search"]), slos_from_records(cfg.get("slos", [])))


def _step_done_hook(n_steps: int, search: Any) -> Callable[[int, dict[str, Any]], None]:
    """A step's summary line; with the search, the probe's verdict."""

    def step_done(i: int, s: dict[str, Any]) -> None:
        p95 = "n/a" if s["p95_ms"] is None else f"{s['p95_ms']:.0f} ms"
        what = f"step {i + 1}/{n_steps}" if search is None else f"probe {len(search.probes)}"
        _progress(
            f"{what} done: {s['requests']} requests, "
            f"{s['failures']} failed, p95 {p95} (steady windows)"
        )
        if search is not None and search.probes:
            search.step_result(s["series"])
            probe = search.probes[-1]
            probe["wall_s"] = round(time.monotonic() - probe["started_s"], 2)
            _progress(f"search probe {probe['order']}: {probe['users']} users {probe['verdict']}")

    return step_done


def _search_window_hook(
    search: Any, plan: Any, step_series: Callable[[], dict[Any, list[Any]]], cut: Any
) -> Callable[[Any, list[dict[str, Any]]], None]:
    """After each window: end the probe (``cut``) once its verdict is clear.
    ``step_series``: the open probe's steady windows so far (the recorder's or merger's)."""

    def on_window(w: Any, records: list[dict[str, Any]]) -> None:
        if search is None or w.end_s >= plan.steps[w.step_index].end_s - 1e-6:
            return  # the probe's last window: it ends here anyway, judged on all its data
        why = search.clear_fail(w, records, step_series())
        if why:
            _progress(f"stopping the probe early: {why}")
            cut.set()
            return
        why = search.clear_pass(w, step_series())
        if why:
            _progress(f"probe passed by a wide margin, moving on: {why}")
            cut.set()

    return on_window


def _begin_probe(search: Any, step: Any, step_users: dict[int, int]) -> int | None:
    """The search's user count for ``step`` (None: the search is done), recorded."""
    users = search.next_users()
    if users is None:
        return None
    step_users[step.index] = users
    probe = search.probes[-1]
    probe["started_s"] = time.monotonic()
    probe["steady_s"] = step.duration_s - step.settle_s
    _progress(f"search probe {len(search.probes)}: {users} users ({probe['chosen']})")
    return users


def load_user_classes(cfg: dict[str, Any]) -> list[type]:
    """Built-in scenario classes (or a locustfile's), specialised for this run's hosts.

    A paired run (``candidate_hosts`` in the config) gets every class twice, one copy per
    side with that side's hosts and the class's own weight, so Locust puts half the users
    on each side and each user draws its own random journey (the same task weights on
    both sides). The classes' order is shuffled per run: Locust starts users in class
    order, and neither side should systematically go first.
    """
    if not cfg.get("candidate_hosts"):
        return side_user_classes(cfg, cfg.get("hosts", {}))
    import random

    classes = side_user_classes(cfg, cfg.get("hosts", {}), BASELINE_SIDE) + side_user_classes(
        cfg, cfg["candidate_hosts"], CANDIDATE_SIDE
    )
    random.SystemRandom().shuffle(classes)
    return classes


def side_request_listener(on_request: Callable[..., None]) -> Callable[..., None]:
    """A request listener that tags each endpoint name with its user's side (paired runs);
    the run's finalisation splits the tag into the ``side`` column."""

    def listener(
        request_type: str, name: str, response_time: Any, *args: Any, **kwargs: Any
    ) -> None:
        side = (kwargs.get("context") or {}).get("labcap_side")
        if side:
            name = f"{side}{SIDE_SEP}{name}"
        on_request(request_type, name, response_time, *args, **kwargs)

    return listener


def side_user_classes(cfg: dict[str, Any], hosts: dict[str, str], side: str = "") -> list[type]:
    """The scenario's classes for ``hosts``; with ``side``, renamed and tagged for it."""
    import importlib

    from locust import between

    scenario = cfg["scenario"]
    suffix = f"_{side}" if side else ""
    if scenario.get("path"):
        from locust.util.load_locustfile import load_locustfile

        user_classes, shapes = load_locustfile(scenario["path"])
        if not user_classes:
            raise ValueError(f"{scenario['path']} defines no Locust User class")
        if shapes:  # preflight refuses it first; a shape is never silently dropped
            names = ", ".join(type(s).__name__ for s in shapes)
            raise ValueError(f"{scenario['path']} defines a LoadTestShape ({names}): not run")
        out = []
        jitter = cfg.get("jitter", True)
        for name, cls in user_classes.items():
            attrs: dict[str, Any] = {}
            if side or not getattr(cls, "host", None):  # a paired run sets each side's host
                attrs["host"] = hosts.get("default", "")
            attrs.update(identified(cls, side))
            # a class that de-synchronises its users itself says so: labcap_jitter = False
            if jitter and getattr(cls, "labcap_jitter", True):
                attrs.update(desynchronised(cls))
            out.append(type(name + suffix, (cls,), attrs))
        return out
    module = importlib.import_module(scenario["module"])
    password = os.environ.get(PASSWORD_ENV, "")
    hub = cfg.get("hub") or {}
    login = hub.get("login", "form")
    accounts_file = hub.get("users_file") or os.environ.get(ACCOUNTS_ENV, "")
    pool = None
    if accounts_file and login == "form":  # one pool for every hub class: one user an account
        from labcap.loadtests.scenarios.common import AccountPool, read_accounts

        pool = AccountPool(read_accounts(accounts_file))
    out = []
    for class_name, weight in scenario["classes"]:
        base = getattr(module, class_name)
        target = getattr(base, "target", "default")
        host = hosts.get(target) or hosts.get("default", "")
        attrs = {"host": host, "weight": weight, "lab_password": password}
        if pool is not None and hasattr(base, "account_pool"):
            attrs["account_pool"] = pool
        if cfg.get("kernel_workload") and hasattr(base, "kernel_workload"):
            attrs["kernel_workload"] = cfg["kernel_workload"]
        if login == "api" and hasattr(base, "admin_token"):
            attrs.update(
                login="api",
                admin_token=os.environ.get(HUB_TOKEN_ENV, ""),
                username_prefix=hub["prefix"],
                token_ttl_s=hub.get("token_ttl_s", 3600),
            )
        attrs.update(identified(base, side))
        if cfg.get("wait_s"):
            lo, hi = cfg["wait_s"]
            attrs["wait_time"] = between(lo, hi)
        out.append(type(class_name + suffix, (base,), attrs))
    return out


def clients_record(user_classes: list[type]) -> dict[str, Any]:
    """The journal record of which HTTP client the run's users use: the runner applies
    the WireHttpUser floor from the calibration when every class is built on it."""
    from labcap.loadtests.users import WireHttpUser

    wire = all(issubclass(c, WireHttpUser) for c in user_classes)
    return {"kind": "clients", "floor_client": "wire" if wire else "http"}


def identified(cls: type, side: str = "") -> dict[str, Any]:
    """A ``context`` that names the user in its request events (for the lock-step check)
    and, in a paired run, its side."""
    base_context = cls.context
    tag = {"labcap_side": side} if side else {}

    def context(self: Any) -> dict[str, Any]:
        return {**(base_context(self) or {}), "labcap_user": id(self), **tag}

    return {"context": context, "labcap_side": side}


WAIT_JITTER = 0.1  # each wait is scaled by uniform(1 - this, 1 + this): mean unchanged


def desynchronised(cls: type) -> dict[str, Any]:
    """Attributes that keep a locustfile's users out of lock-step.

    A spawn batch starts its users at one instant, and a constant wait (or
    ``constant_throughput``/``constant_pacing``) keeps them in step forever, so
    every cycle they all send at once. Each user first sleeps a random part of
    its own wait, and every wait is jittered by +/- WAIT_JITTER (the pacing
    waits compensate the jitter on the next call, so their rate holds). The
    built-in scenarios do the same themselves (random first delay, ``between``
    waits).
    """
    import random
    import time

    import gevent

    base_on_start = cls.on_start
    base_wait = cls.wait_time

    def on_start(self: Any) -> None:
        try:
            first = float(base_wait(self))
        except Exception:  # a wait_time that needs state the user has not built yet
            first = 1.0
        gevent.sleep(random.uniform(0.0, max(0.0, min(first, 60.0))))
        # constant_pacing/constant_throughput keep state; the probe above must not leave
        # them compensating the offset (which would put every user back in step)
        self._cp_last_run, self._cp_last_wait_time = time.perf_counter(), 0
        base_on_start(self)

    def wait_time(self: Any) -> float:
        return float(base_wait(self)) * random.uniform(1 - WAIT_JITTER, 1 + WAIT_JITTER)

    return {"on_start": on_start, "wait_time": wait_time}


def run(cfg: dict[str, Any], journal_path: Path) -> int:
    import gevent
    from gevent.event import Event
    from locust import events as locust_events
    from locust.env import Environment
    from locust.log import setup_logging

    from labcap.loadtests.recorder import WindowRecorder, preload

    setup_logging(cfg.get("locust_log_level", "WARNING"))
    preload()
    plan = plan_from_dict(cfg["load"])
    journal = open(journal_path, "a", encoding="utf-8")  # noqa: SIM115 (closed below)

    def fail(message: str) -> int:
        journal.write(json.dumps({"kind": "error", "message": message}) + "\n")
        journal.flush()
        journal.close()
        return 2

    try:
        user_classes = load_user_classes(cfg)
    except Exception as e:  # a user's locustfile can raise anything on import
        return fail(f"scenario failed to load: {type(e).__name__}: {e}")
    journal.write(json.dumps(clients_record(user_classes)) + "\n")

    env = Environment(user_classes=user_classes, events=locust_events)
    env.stop_timeout = cfg.get("stop_timeout_s", 10)
    runner = env.create_local_runner()
    n_steps = len(plan.steps)

    search = _search_controller(cfg)

    def sync_off_loop(fd: int) -> None:
        # A blocking fsync in the event loop would stall every user for its duration.
        gevent.get_hub().threadpool.spawn(os.fsync, fd)

    recorder = WindowRecorder(
        plan,
        journal,
        active_users=lambda: runner.user_count,
        on_step_done=_step_done_hook(n_steps, search),
        sync=sync_off_loop,
    )
    on_request = side_request_listener(recorder.on_request)
    env.events.request.add_listener(on_request)
    cut = Event()  # the search ends a probe once its verdict is clear
    recorder.on_window = _search_window_hook(search, plan, lambda: recorder._step_series, cut)

    def on_user_error(user_instance: Any, exception: BaseException, tb: Any) -> None:
        side = getattr(user_instance, "labcap_side", "")
        context = {"labcap_side": side} if side else None
        on_request("ERROR", "(user error)", None, exception=exception, context=context)

    env.events.user_error.add_listener(on_user_error)

    stop = Event()
    interrupted: list[str] = []

    def on_signal(signame: str) -> None:
        interrupted.append(signame)
        stop.set()

    gevent.signal_handler(signal.SIGINT, on_signal, "SIGINT")
    gevent.signal_handler(signal.SIGTERM, on_signal, "SIGTERM")

    def ticker() -> None:
        while not stop.is_set():
            recorder.advance()
            if recorder.finished:
                stop.set()
                return
            gevent.sleep(0.2)

    recorder.start()
    ticker_greenlet = gevent.spawn(ticker)
    for step in plan.steps:
        if stop.is_set():
            break
        recorder.advance()  # close the previous step's windows before users change
        users = step.users
        if search is not None:
            users = _begin_probe(search, step, recorder.step_users)
            if users is None:
                break
        if search is None:  # a probe's line is _begin_probe's: the plan's steps are placeholders
            _progress(f"step {step.index + 1}/{n_steps}: {users} users for {step.duration_s:g}s")
        recorder.mark_step(step.index, users)
        runner.start(users, spawn_rate=plan.spawn_rate)
        cut.clear()
        while not stop.is_set() and recorder.elapsed() < step.end_s:
            cut.wait(timeout=min(0.5, max(0.0, step.end_s - recorder.elapsed())))
            if cut.is_set():
                if search is not None and search.probes:
                    steady_start = step.start_s + step.settle_s
                    search.probes[-1]["steady_s"] = round(recorder.elapsed() - steady_start, 3)
                # jump to the step's end: its remaining windows close empty, the plan's
                # layout (and every later window's place in it) stays as it was
                recorder.t0 -= max(0.0, step.end_s - recorder.elapsed())
                break
    if search is not None and not stop.is_set():
        recorder.advance()  # the last probe's windows: judged in step_done
        (journal_path.parent / "probes.json").write_text(json.dumps(search.probes))
        recorder.drop_rest()  # the plan's unused steps: not run
        stop.set()
    stop.wait()  # the ticker sets it once the last window has closed
    ticker_greenlet.kill()
    if interrupted:
        _progress(f"{interrupted[0]} received: stopping users and saving what was measured")
    runner.quit()
    status = "interrupted" if interrupted else "complete"
    recorder.sync = os.fsync  # the last records: durable before we exit
    recorder.close(status, reason=f"{interrupted[0]} received" if interrupted else "")
    journal.flush()
    os.fsync(journal.fileno())
    journal.close()
    return 130 if interrupted else 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_master(cfg: dict[str, Any], journal_path: Path, config_path: Path) -> int:
    """Locust's master on 127.0.0.1 with ``cfg['workers']`` worker processes of this module,
    or (``cfg['remote']``) on the address given, for the ``labcap worker``s that passed the
    handshake (``labcap.measure.remote``).

    Workers record windows on the master's clock and send them as custom
    messages; the master merges them exactly (``labcap.loadtests.merge``) and
    journals them as one process would.
    """
    import subprocess
    import time

    import gevent
    from gevent.event import Event
    from locust import events as locust_events
    from locust.env import Environment
    from locust.log import setup_logging

    from labcap.loadtests.merge import WindowMerger
    from labcap.loadtests.recorder import step_record

    setup_logging(cfg.get("locust_log_level", "WARNING"))
    plan = plan_from_dict(cfg["load"])
    n_workers = int(cfg["workers"])
    journal = open(journal_path, "a", encoding="utf-8")  # noqa: SIM115 (closed below)

    def write(record: dict[str, Any]) -> None:
        journal.write(json.dumps(record, separators=(",", ":")) + "\n")
        journal.flush()

    def fail(message: str) -> int:
        write({"kind": "error", "message": message})
        journal.close()
        return 2

    try:
        user_classes = load_user_classes(cfg)
    except Exception as e:  # a user's locustfile can raise anything on import
        return fail(f"scenario failed to load: {type(e).__name__}: {e}")
    write(clients_record(user_classes))
    env = Environment(user_classes=user_classes, events=locust_events)
    env.stop_timeout = cfg.get("stop_timeout_s", 10)
    remote = cfg.get("remote")
    if remote:
        auth = RemoteAuth(json.loads(os.environ.get(SESSIONS_ENV, "{}")))
        bind_host, port = remote["bind_host"], int(remote["port"])
    else:
        auth, bind_host, port = None, "127.0.0.1", _free_port()
    try:
        runner = env.create_master_runner(bind_host, port)
    except Exception as e:  # the port taken since the handshake, an address not ours
        return fail(f"Locust's master cannot listen on {bind_host}:{port}: {e}")
    procs = (
        []
        if remote
        else [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "labcap.loadtests.engine",
                    "--worker",
                    str(config_path),
                    str(port),
                    f"w{i + 1}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
            for i in range(n_workers)
        ]
    )

    def stop_workers() -> None:
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    if auth is not None:
        runner.register_message(
            "labcap_join", lambda environment, msg, **_: auth.join(msg.node_id, msg.data)
        )

    def connected() -> int:
        ready = {c.id for c in runner.clients.ready}
        if auth is None:
            return len(ready)
        return len(ready & set(auth.clients))

    deadline = time.monotonic() + 60
    while connected() < n_workers and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        gevent.sleep(0.1)
    if connected() < n_workers:
        runner.quit()
        for p in procs:
            p.kill()
        stop_workers()
        return fail(
            f"only {connected()} of {n_workers} Locust workers connected "
            f"to the master on {bind_host}:{port}"
        )
    if auth is not None:
        auth.purge(runner)
        _progress(f"{n_workers} remote workers connected to Locust's master on {bind_host}:{port}")
    else:
        _progress(f"{n_workers} Locust worker processes connected")
    n_steps = len(plan.steps)
    search = _search_controller(cfg)

    def sync_off_loop(fd: int) -> None:
        gevent.get_hub().threadpool.spawn(os.fsync, fd)

    merger = WindowMerger(
        plan,
        journal,
        n_workers,
        active_users=lambda: runner.user_count,
        on_step_done=_step_done_hook(n_steps, search),
        sync=sync_off_loop,
    )
    cut = Event()  # the search ends a probe once its verdict is clear
    merger.on_window = _search_window_hook(search, plan, lambda: merger._step_series, cut)

    def on_window_message(environment: Any, msg: Any, **_: Any) -> None:
        if auth is not None and not auth.window_ok(msg.node_id, msg.data):
            return
        merger.add(msg.data["worker"], msg.data["records"])

    runner.register_message("labcap_window", on_window_message)
    stop = Event()
    interrupted: list[str] = []

    def on_signal(signame: str) -> None:
        interrupted.append(signame)
        stop.set()

    gevent.signal_handler(signal.SIGINT, on_signal, "SIGINT")
    gevent.signal_handler(signal.SIGTERM, on_signal, "SIGTERM")
    clock = {"t0_unix": time.time()}  # the plan's origin; the search moves it on a cut
    write({"kind": "start", "t0_unix": clock["t0_unix"], "workers": n_workers})

    def send_t0() -> None:
        if auth is None:
            runner.send_message("labcap_t0", clock)
            return
        for client_id, name in auth.clients.items():  # each with its own session's MAC
            runner.send_message("labcap_t0", auth.t0_message(name, clock["t0_unix"]), client_id)

    send_t0()

    def elapsed() -> float:
        return time.time() - clock["t0_unix"]

    def ticker() -> None:
        while not stop.is_set():
            if auth is not None:
                for name in auth.lost(runner):
                    at = merger.lose(name)
                    write({"kind": "worker_lost", "worker": name, "window_index": at})
                    _progress(f"worker {name} lost (no heartbeat): windows from {at} on lack it")
            merger.poll(elapsed())
            if merger.finished:
                stop.set()
                return
            gevent.sleep(0.2)

    ticker_greenlet = gevent.spawn(ticker)
    first_window = {w.step_index: w.index for w in reversed(plan.windows)}
    for step in plan.steps:
        if stop.is_set():
            break
        users = step.users
        if search is not None:
            # the previous probe is judged once the workers' last windows of it are merged
            while merger.pos < first_window[step.index] and not stop.is_set():
                gevent.sleep(0.05)
            if stop.is_set():
                break
            users = _begin_probe(search, step, merger.step_users)
            if users is None:
                break
        if search is None:  # a probe's line is _begin_probe's: the plan's steps are placeholders
            _progress(f"step {step.index + 1}/{n_steps}: {users} users for {step.duration_s:g}s")
        write(step_record(step.index, users))
        if auth is not None:
            auth.purge(runner)  # a Locust client that never joined gets no users
        runner.start(users, spawn_rate=plan.spawn_rate)
        cut.clear()
        while not stop.is_set() and elapsed() < step.end_s:
            cut.wait(timeout=min(0.5, max(0.0, step.end_s - elapsed())))
            if cut.is_set():
                steady_start = step.start_s + step.settle_s
                search.probes[-1]["steady_s"] = round(elapsed() - steady_start, 3)
                # jump to the step's end, on the master's clock and the workers': their
                # windows of the step close (empty) and the plan's layout stays as it was
                clock["t0_unix"] -= max(0.0, step.end_s - elapsed())
                send_t0()
                break
    if search is not None and not stop.is_set():
        last = max((s.index for s in plan.steps if s.index in merger.step_users), default=-1)
        end = first_window.get(last + 1, len(plan.windows))
        while merger.pos < end and not stop.is_set():  # the last probe: judged in step_done
            gevent.sleep(0.05)
        (journal_path.parent / "probes.json").write_text(json.dumps(search.probes))
        merger.drop_rest()  # the plan's unused steps: not run
        stop.set()
    stop.wait()
    ticker_greenlet.kill()
    if interrupted:
        _progress(f"{interrupted[0]} received: stopping users and saving what was measured")
        merger.poll(elapsed(), force=True)
    runner.quit()
    stop_workers()
    status = "interrupted" if interrupted else "complete"
    for gap in merger.gaps[:20]:
        write({"kind": "worker_gap", "message": gap})
    write(
        {
            "kind": "end",
            "status": status,
            "reason": f"{interrupted[0]} received" if interrupted else "",
            "late_requests": 0,
            "elapsed_s": round(elapsed(), 3),
        }
    )
    os.fsync(journal.fileno())
    journal.close()
    return 130 if interrupted else 0


class RemoteAuth:
    """The master's record of which Locust clients passed labcap's handshake.

    ``sessions``: worker name -> session key (hex) from ``labcap.measure.remote``. A client
    is known once its ``labcap_join`` carries the MAC of its Locust client id under its
    name's key; windows are merged only from known clients, under their own name, with a
    valid MAC.
    """

    def __init__(self, sessions: dict[str, str]) -> None:
        self.keys = {name: bytes.fromhex(k) for name, k in sessions.items()}
        self.clients: dict[str, str] = {}  # Locust client id -> worker name
        self.rejected = 0
        self.reported_lost: set[str] = set()

    def join(self, client_id: str, data: dict[str, Any]) -> None:
        from labcap.loadtests import handshake as hs

        name = str(data.get("worker", ""))
        key = self.keys.get(name)
        if key is None or not hs.mac_ok(key, data.get("mac"), "join", name, client_id):
            self.rejected += 1
            _progress("a Locust client without a valid labcap_join was ignored")
            return
        if name in self.clients.values():
            return  # one client per name: the first to join keeps it
        self.clients[client_id] = name

    def window_ok(self, client_id: str, data: dict[str, Any]) -> bool:
        from labcap.loadtests import handshake as hs

        name = self.clients.get(client_id)
        if name is None or data.get("worker") != name:
            self.rejected += 1
            return False
        key = self.keys[name]
        return hs.mac_ok(key, data.get("mac"), "window", name, hs.digest(data["records"]))

    def t0_message(self, name: str, t0_unix: float) -> dict[str, Any]:
        from labcap.loadtests import handshake as hs

        return {"t0_unix": t0_unix, "mac": hs.mac(self.keys[name], "t0", name, repr(t0_unix))}

    def purge(self, runner: Any) -> None:
        """Drop every Locust client that did not join: no users are dispatched to it."""
        from locust.rpc import Message

        for client in list(runner.clients.all):
            if client.id not in self.clients:
                del runner.clients[client.id]
                if runner._users_dispatcher is not None:  # Locust keeps no public handle
                    runner._users_dispatcher.remove_worker(client)
                runner.server.send_to_client(Message("quit", None, client.id))
                _progress("a Locust client that did not pass labcap's handshake was dropped")

    def lost(self, runner: Any) -> list[str]:
        """Workers newly gone: missing heartbeats (Locust's "missing"), or quit."""
        out = []
        for client_id, name in self.clients.items():
            node = runner.clients.get(client_id)
            if name not in self.reported_lost and (node is None or node.state == "missing"):
                self.reported_lost.add(name)
                out.append(name)
        return out


def run_worker(
    cfg: dict[str, Any],
    port: int,
    name: str,
    *,
    master_host: str = "127.0.0.1",
    bind: str | None = None,
    session_key: bytes | None = None,
    clock_offset_s: float = 0.0,
) -> int:
    """One Locust worker: records windows on the master's clock and sends each one to it.

    A remote worker (``labcap worker``) has a ``session_key`` from the handshake: it binds
    its Locust client id to its name (``labcap_join``) and MACs every window it sends;
    ``clock_offset_s`` (the master's clock minus this one's) puts its windows on the
    master's clock; ``bind`` is the source address of its connection to the master.
    """
    import time

    import gevent
    from locust import events as locust_events
    from locust.env import Environment
    from locust.log import setup_logging

    from labcap.loadtests import handshake as hs
    from labcap.loadtests.merge import MessageJournal
    from labcap.loadtests.recorder import WindowRecorder, preload

    preload()

    # the master stops us (Ctrl-C reaches the whole process group); a remote worker's
    # `labcap worker` ends it with SIGTERM when it dies itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if session_key is None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    setup_logging(cfg.get("locust_log_level", "WARNING"))
    plan = plan_from_dict(cfg["load"])
    env = Environment(user_classes=load_user_classes(cfg), events=locust_events)
    env.stop_timeout = cfg.get("stop_timeout_s", 10)
    # ZeroMQ's "source;destination" form: the connection leaves from ``bind``
    host = f"{bind}:0;{master_host}" if bind else master_host
    runner = env.create_worker_runner(host, port)

    def send(records: list[dict[str, Any]]) -> None:
        data: dict[str, Any] = {"worker": name, "records": records}
        if session_key is not None:
            data["mac"] = hs.mac(session_key, "window", name, hs.digest(records))
        runner.send_message("labcap_window", data)

    journal = MessageJournal(send)
    recorder = WindowRecorder(
        plan,
        journal,  # type: ignore[arg-type]
        active_users=lambda: runner.user_count,
        clock=lambda: time.time() + clock_offset_s,
        sync=lambda fd: None,
        worker=name,
        emit_bins=True,
    )
    env.events.request.add_listener(side_request_listener(recorder.on_request))

    def ticker() -> None:
        while not recorder.finished:
            recorder.advance()
            gevent.sleep(0.2)

    def on_t0(environment: Any, msg: Any, **_: Any) -> None:
        t0 = float(msg.data["t0_unix"])
        if session_key is not None and not hs.mac_ok(
            session_key, msg.data.get("mac"), "t0", name, repr(t0)
        ):
            _progress("ignored a clock message without the session's MAC")
            return
        first = recorder.t0 is None
        recorder.t0 = t0  # again when the search ends a probe early
        if first:
            gevent.spawn(ticker)
        else:
            recorder.advance()  # the ended probe's windows close now

    runner.register_message("labcap_t0", on_t0)
    if session_key is not None:
        runner.send_message(
            "labcap_join",
            {"worker": name, "mac": hs.mac(session_key, "join", name, runner.client_id)},
        )
    runner.greenlet.join()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 4 and argv[0] == "--worker":
        return run_worker(json.loads(Path(argv[1]).read_text()), int(argv[2]), argv[3])
    if len(argv) == 2 and argv[0] == "--remote-worker":  # started by `labcap worker`
        cfg = json.loads(Path(argv[1]).read_text())
        m = cfg["master"]
        return run_worker(
            cfg,
            int(m["port"]),
            m["name"],
            master_host=m["host"],
            bind=m.get("bind"),
            session_key=bytes.fromhex(os.environ[SESSION_ENV]),
            clock_offset_s=float(m.get("clock_offset_s") or 0.0),
        )
    if len(argv) == 2 and json.loads(Path(argv[0]).read_text()).get("workers"):
        return run_master(json.loads(Path(argv[0]).read_text()), Path(argv[1]), Path(argv[0]))
    if len(argv) != 2:
        print("usage: python -m labcap.loadtests.engine CONFIG.json JOURNAL.jsonl", file=sys.stderr)
        return 2
    cfg = json.loads(Path(argv[0]).read_text())
    return run(cfg, Path(argv[1]))


if __name__ == "__main__":
    sys.exit(main())
