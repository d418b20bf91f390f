"""Bench users: labcap's WireHttpUser GETting / ; LABCAP_BENCH_RATE req/s each (0: no wait)."""

import os

from locust import constant, constant_throughput, task

from labcap.loadtests.users import WireHttpUser

RATE = float(os.environ.get("LABCAP_BENCH_RATE", "0"))


class WireUser(WireHttpUser):
    wait_time = constant_throughput(RATE) if RATE > 0 else constant(0)

    @task
    def get(self):
        self.client.get("/", name="bench.get")
