"""How closely labcap's startup phases match the engine's own timestamps.

Starts ROUNDS x CONCURRENCY containers (spawn storms) while the collector runs
and, independently, a raw reader of the engine's event stream plus `inspect`.
For each container and phase it prints |labcap - engine| (acceptance: p95 under
10 ms), and, for scale, how late the events reached labcap (what timing with
labcap's own clock on receipt would have cost).

    .venv/bin/python bench/docker_phase_agreement.py [ROUNDS] [CONCURRENCY]
"""

from __future__ import annotations

import sys
import threading
import time

from docker_common import TEST_IMAGE, engine_client, free_port, percentile

from labcap.collectors.docker import DockerCollector, DockerSettings, parse_engine_time


def main(rounds: int = 5, concurrency: int = 4) -> None:
    with engine_client() as client:
        since = int(time.time()) - 1
        raw: dict[tuple[str, str], tuple[int, float]] = {}
        stream = client.events(
            decode=True, since=since, filters={"type": "container", "label": "labcap.bench=phase"}
        )

        def read() -> None:
            for ev in stream:
                key = (ev["id"], ev["Action"].split(":")[0])
                raw.setdefault(key, (ev["timeNano"], time.time()))

        threading.Thread(target=read, daemon=True).start()
        col = DockerCollector(
            DockerSettings(labels=("labcap.bench=phase",), name_patterns=()), client=client
        )
        col.start(None)
        started_at: dict[str, int] = {}
        for _ in range(rounds):
            ids = _storm(client, concurrency)
            deadline = time.monotonic() + 30
            while len(col.terminal(ids)) < len(ids) and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(1.2)  # the 500 ms health checks report too
            for cid in ids:
                state = client.api.inspect_container(cid)["State"]
                started_at[cid] = parse_engine_time(state["StartedAt"])
            col.give_up(ids, "bench")
            for cid in ids:
                client.api.remove_container(cid, force=True)
        col.stop()
        stream.close()
        _report(col, raw, started_at)


def _storm(client, n: int) -> list[str]:
    ids: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        port = free_port()
        cid = client.api.create_container(
            TEST_IMAGE,
            environment={"PORT": str(port), "START_DELAY": "0.2"},
            labels={"labcap.bench": "phase", "labcap.http-port": str(port)},
            host_config=client.api.create_host_config(network_mode="host"),
        )["Id"]
        client.api.start(cid)
        with lock:
            ids.append(cid)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids


def _report(col, raw, started_at) -> None:
    diffs: dict[str, list[float]] = {"created": [], "started": [], "running": [], "healthy": []}
    lag: list[float] = []
    for r in col.startup_records():
        cid = r.container_id
        engine = {
            "created": raw.get((cid, "create"), (None, 0))[0],
            "running": raw.get((cid, "start"), (None, 0))[0],
            "healthy": raw.get((cid, "health_status"), (None, 0))[0],
            "started": started_at.get(cid),
        }
        mine = {
            "created": r.t_unix + r.created_s,
            "started": r.t_unix + r.started_s,
            "running": r.t_unix + r.running_s,
            "healthy": r.t_unix + r.healthy_s,
        }
        for phase, ns in engine.items():
            if ns is not None and mine[phase] == mine[phase]:
                diffs[phase].append(abs(mine[phase] - ns / 1e9) * 1000)
        for action in ("create", "start", "health_status"):
            if (cid, action) in raw:
                ns, received = raw[(cid, action)]
                lag.append((received - ns / 1e9) * 1000)
    n = len(col.startup_records())
    print(f"{n} containers; |labcap - engine| per phase, ms (engine: events + inspect)")
    print(f"{'phase':<10} {'n':>4} {'p50':>9} {'p95':>9} {'max':>9}")
    for phase, d in diffs.items():
        p50, p95, top = percentile(d, 50), percentile(d, 95), max(d, default=float("nan"))
        print(f"{phase:<10} {len(d):>4} {p50:>9.4f} {p95:>9.4f} {top:>9.4f}")
    p50, p95, top = percentile(lag, 50), percentile(lag, 95), max(lag, default=float("nan"))
    print(
        f"for scale, event delivery lag (receipt on labcap's clock - engine timeNano), ms: "
        f"p50 {p50:.2f}  p95 {p95:.2f}  max {top:.2f}"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
