"""The calibration's two processes: a trivial loopback target and the Locust generator.

``python -m labcap.loadtests.floor serve`` answers every HTTP/1.1 request
on 127.0.0.1 with a fixed 200 at once (asyncio, no parsing beyond the blank line
that ends a request); it prints its port and serves until killed.

``python -m labcap.loadtests.floor measure URL FLOOR_S CEILING_S USERS RATE``
imports Locust (so it runs in its own process, like the load engine) and drives
the target with the same HTTP client the labcap scenarios use (``HttpUser``):

1. *floor*: USERS users, each at RATE/USERS requests per second (jittered, so no
   lock-step), for FLOOR_S; every response time goes into an HDR histogram in
   microseconds. The target answers in a few microseconds, so this is what the
   generator (and loopback) add to every measurement.
2. *wire floor*: the same for labcap's own client (``WireHttpUser``, timed to the
   kernel's receipt of each response), for locustfiles written on it.
3. *ceiling*: as many requests as the process can send for CEILING_S (USERS
   users, no wait), with the process's CPU time, so req/s per core follows.

Prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import sys
from typing import Any

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n"
    b"Connection: keep-alive\r\n\r\nok\n"
)


def serve() -> int:
    import asyncio

    class Answer(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.pending = b""

        def data_received(self, data: bytes) -> None:
            self.pending += data
            n = self.pending.count(b"\r\n\r\n")
            if n:
                self.pending = self.pending[self.pending.rfind(b"\r\n\r\n") + 4 :]
                self.transport.write(RESPONSE * n)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Answer, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())
    return 0


def measure(url: str, floor_s: float, ceiling_s: float, users: int, rate: float) -> int:
    import resource
    import time

    import gevent
    from locust import HttpUser, constant, constant_throughput, task
    from locust.env import Environment

    from labcap.histograms import HDR_MAX_US, histogram_summary, new_histogram
    from labcap.loadtests.engine import desynchronised
    from labcap.loadtests.users import WireHttpUser

    hists = {"floor": new_histogram(), "wire_floor": new_histogram()}
    count = [0, 0]  # ok, failed

    class Paced(HttpUser):
        host = url
        wait_time = constant_throughput(rate / users)

        @task
        def get(self) -> None:
            self.client.get("/", name="calibrate")

    class Flat(Paced):
        wait_time = constant(0)

    class WirePaced(WireHttpUser):
        host = url
        wait_time = constant_throughput(rate / users)

        @task
        def get(self) -> None:
            self.client.get("/", name="calibrate")

    def on_request(response_time: float, exception: Any = None, **_: Any) -> None:
        if exception is not None:
            count[1] += 1
            return
        count[0] += 1
        if phase[0] in hists:
            value = min(max(int(round(response_time * 1000)), 1), HDR_MAX_US)
            hists[phase[0]].record_value(value)

    phase = ["warmup"]
    for name, cls in (("floor", Paced), ("wire_floor", WirePaced)):
        env = Environment(user_classes=[type(cls.__name__, (cls,), desynchronised(cls))])
        env.events.request.add_listener(on_request)
        runner = env.create_local_runner()
        runner.start(users, spawn_rate=10_000)
        gevent.sleep(min(0.5, floor_s / 4))  # connections open, users de-synchronised
        phase[0] = name
        gevent.sleep(floor_s)
        phase[0] = "done"
        runner.quit()

    env = Environment(user_classes=[Flat])
    env.events.request.add_listener(on_request)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=10_000)
    gevent.sleep(0.2)
    phase[0] = "ceiling"
    ok0 = count[0]
    cpu0 = _cpu_s(resource)
    t0 = time.perf_counter()
    gevent.sleep(ceiling_s)
    elapsed = time.perf_counter() - t0
    cpu = _cpu_s(resource) - cpu0
    done = count[0] - ok0
    runner.quit()
    rps = done / elapsed
    floor, wire = histogram_summary(hists["floor"]), histogram_summary(hists["wire_floor"])
    cpu_frac = cpu / elapsed
    out = {
        "client": "HttpUser (python-requests), one process",
        "floor_users": users,
        "floor_rate_rps": rate,
        "floor_requests": hists["floor"].get_total_count(),
        **{f"floor_{k.removesuffix('_us')}_ms": _ms(v) for k, v in floor.items()},
        "wire_floor_requests": hists["wire_floor"].get_total_count(),
        **{f"wire_floor_{k.removesuffix('_us')}_ms": _ms(v) for k, v in wire.items()},
        "ceiling_rps": round(rps, 1),
        "ceiling_cpu_pct": round(100 * cpu_frac, 1),
        "ceiling_rps_per_core": round(rps / cpu_frac, 1) if cpu_frac > 0 else None,
        "failed_requests": count[1],
    }
    print(json.dumps(out), flush=True)
    return 0


def _cpu_s(resource: Any) -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000, 4)


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        return serve()
    if argv[:1] == ["measure"] and len(argv) == 6:
        return measure(argv[1], float(argv[2]), float(argv[3]), int(argv[4]), float(argv[5]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
