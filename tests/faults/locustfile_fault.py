"""The fault suite's users: one GET, with a client timeout so a slow target times out."""

from locust import HttpUser, between, task


class FaultUser(HttpUser):
    wait_time = between(0.02, 0.06)

    @task
    def get(self):
        self.client.get("/", name="fault.get", timeout=1.0)
