"""Users paced by ``constant_throughput``: one GET per second each (lock-step prone).

Started in one fast batch without labcap's jitter, they stay in step: every
second all of them send within a few milliseconds.
"""

import os

from locust import HttpUser, constant_throughput, task


class PacedUser(HttpUser):
    wait_time = constant_throughput(1)

    @task
    def get(self):
        self.client.get(os.environ.get("LABCAP_TEST_PATH", "/fast"), name="paced.get")
