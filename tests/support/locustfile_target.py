"""A user locustfile as a lab administrator would write one (used by the tests)."""

import os

from locust import HttpUser, between, task


class TargetUser(HttpUser):
    wait_time = between(0.02, 0.08)

    @task
    def get(self):
        name = os.environ.get("LABCAP_TEST_NAME", "target.get")
        self.client.get(os.environ.get("LABCAP_TEST_PATH", "/fast"), name=name)
