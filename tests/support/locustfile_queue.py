"""Users of the queueing target: one GET, then exactly Z seconds of think time.

Z comes from LABCAP_QUEUE_THINK_S. The wait is ``constant``: the closed-network
model behind N* = k(S+Z)/S assumes a fixed think time.

Locust starts a step's new users in one batch; left so, they would all arrive at
the same instant, forever (constant think time keeps them in step). So each user
first waits for its own phase of the cycle C = S + Z (LABCAP_QUEUE_CYCLE_S) on the
wall clock: the i-th user takes phase frac(i * 0.618...) * C, the golden-ratio
sequence, which spreads any number of users evenly and slots a step's new users
into the gaps between the old ones. Below N* the users then rarely meet in the
queue; the saturation point shows as sharply as the model says.

Over W Locust workers (LABCAP_QUEUE_WORKERS, each worker process its own counter), the
master hands out users in turn, so worker w's i-th user takes the global place i*W + w:
together they take the same phases one process would.
"""

import itertools
import os
import time

import gevent
from locust import HttpUser, constant, task

THINK_S = float(os.environ.get("LABCAP_QUEUE_THINK_S", "0.9"))
CYCLE_S = float(os.environ.get("LABCAP_QUEUE_CYCLE_S", "1.0"))
WORKERS = int(os.environ.get("LABCAP_QUEUE_WORKERS", "1"))
GOLDEN = (5**0.5 - 1) / 2
_next_user = itertools.count()


class QueueUser(HttpUser):
    wait_time = constant(THINK_S)
    labcap_jitter = False  # phases itself (above); labcap's random waits would undo that

    def on_start(self):
        worker = getattr(self.environment.runner, "worker_index", 0) % WORKERS
        phase = ((next(_next_user) * WORKERS + worker) * GOLDEN) % 1.0 * CYCLE_S
        gevent.sleep((phase - time.time()) % CYCLE_S)

    @task
    def get(self):
        self.client.get("/", name="queue.get")
