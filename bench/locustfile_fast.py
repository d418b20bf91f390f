"""Bench users GETting / ; LABCAP_BENCH_RATE req/s each (0: no wait).

LABCAP_BENCH_CLIENT picks the client: ``fast`` (Locust's FastHttpUser, the default) or
``wire`` (labcap's WireHttpUser, timed to the kernel's receipt of each response).
"""

import os

from locust import FastHttpUser, constant, constant_throughput, task

RATE = float(os.environ.get("LABCAP_BENCH_RATE", "0"))
if os.environ.get("LABCAP_BENCH_CLIENT", "fast") == "wire":
    from labcap.loadtests.users import WireHttpUser as Base
else:
    Base = FastHttpUser


class BenchUser(Base):
    wait_time = constant_throughput(RATE) if RATE > 0 else constant(0)

    @task
    def get(self):
        self.client.get("/", name="bench.get")
