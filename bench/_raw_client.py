"""Locust's HTTP client alone (geventhttpclient, no Locust): USERS greenlets at RATE req/s.

    python bench/_raw_client.py URL USERS SECONDS RATE_PER_USER

De-synchronised as labcap does it (a random first offset, every wait x uniform(0.9, 1.1)).
Times each GET around the client call, as FastHttpUser does; prints one JSON line. This is
the floor any FastHttpUser-based load path (raw Locust, labcap) adds over wrk here.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from geventhttpclient import HTTPClient  # noqa: E402
from geventhttpclient.url import URL  # noqa: E402
from hdrh.histogram import HdrHistogram  # noqa: E402

url, users, seconds, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
hist = HdrHistogram(1, 3_600_000_000, 3)
state = {"on": False, "n": 0}


def user() -> None:
    client = HTTPClient.from_url(URL(url), concurrency=1)
    gevent.sleep(random.uniform(0, 1 / rate))
    while True:
        t = time.perf_counter()
        response = client.get("/")
        response.read()
        dt = time.perf_counter() - t
        if state["on"]:
            state["n"] += 1
            hist.record_value(max(1, int(round(dt * 1e6))))
        gevent.sleep(random.uniform(0.9, 1.1) / rate)


greenlets = [gevent.spawn(user) for _ in range(users)]
gevent.sleep(2.0)
state["on"] = True
t0 = time.perf_counter()
gevent.sleep(seconds)
state["on"] = False
wall = time.perf_counter() - t0
gevent.killall(greenlets)
out = {"rps": state["n"] / wall, "cpu_frac": 0.0}
for q in (50, 95, 99):
    out[f"p{q}_ms"] = hist.get_value_at_percentile(q) / 1000
print(json.dumps(out))
