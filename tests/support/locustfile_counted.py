"""Users that each send exactly LABCAP_COUNTED_REQUESTS GETs, then idle: a run of U users
sends U x that many requests, however the users are spread over Locust workers (the
exact-merge check compares it with the target's own count)."""

import os

import gevent
from locust import HttpUser, constant, task

REQUESTS = int(os.environ.get("LABCAP_COUNTED_REQUESTS", "15"))


class CountedUser(HttpUser):
    # 15 requests take ~4.5 s: they reach past a 1 s settling period into the steady windows
    wait_time = constant(0.3)

    def on_start(self):
        self.sent = 0

    @task
    def get(self):
        if self.sent >= REQUESTS:
            gevent.sleep(3600)  # done: idle until the run stops the user
            return
        self.sent += 1
        self.client.get("/fast", name="counted.get")
