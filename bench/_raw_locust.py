"""Raw Locust (the library, no labcap hooks): FastHttpUser against URL; prints one JSON line.

    python bench/_raw_locust.py URL USERS SECONDS RATE_PER_USER [jitter]   (RATE 0: no wait)

With ``jitter``, the users are de-synchronised as labcap does it (each starts after a random
part of its wait; every wait x uniform(0.9, 1.1)), so what is left between this and labcap is
labcap's own per-request work.

Counts requests and this process's CPU over the steady interval (after a 1 s
ramp); with a rate, also response-time percentiles (HDR, µs) from the request event.
"""

import json
import os
import random
import sys
import time

import gevent
from hdrh.histogram import HdrHistogram
from locust import FastHttpUser, constant, constant_throughput, task
from locust.env import Environment

url, users, seconds, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
JITTER = sys.argv[5:] == ["jitter"] and rate > 0


class U(FastHttpUser):
    host = url
    wait_time = constant_throughput(rate) if rate > 0 else constant(0)

    if JITTER:

        def on_start(self):
            gevent.sleep(random.uniform(0, 1 / rate))

        def wait_time(self):
            return random.uniform(0.9, 1.1) / rate

    @task
    def get(self):
        self.client.get("/", name="raw")


hist = HdrHistogram(1, 3_600_000_000, 3)
state = {"on": False, "n": 0}


def on_request(response_time, exception=None, **_):
    if state["on"] and exception is None:
        state["n"] += 1
        hist.record_value(max(1, int(round(response_time * 1000))))


env = Environment(user_classes=[U])
env.events.request.add_listener(on_request)
runner = env.create_local_runner()
runner.start(users, spawn_rate=users if rate > 0 else 10_000)  # paced: 1 s spread
gevent.sleep(2.0)
state["on"] = True
c0, t0 = os.times(), time.perf_counter()
gevent.sleep(seconds)
c1, t1 = os.times(), time.perf_counter()
state["on"] = False
runner.quit()
cpu = (c1.user + c1.system) - (c0.user + c0.system)
wall = t1 - t0
out = {"rps": state["n"] / wall, "cpu_frac": cpu / wall}
for q in (50, 95, 99):
    out[f"p{q}_ms"] = hist.get_value_at_percentile(q) / 1000
print(json.dumps(out))
