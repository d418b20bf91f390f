"""A user locustfile with a LoadTestShape, as Locust's docs show one (used by the tests)."""

from locust import HttpUser, LoadTestShape, between, task


class TargetUser(HttpUser):
    wait_time = between(0.02, 0.08)

    @task
    def get(self):
        self.client.get("/fast", name="target.get")


class RampShape(LoadTestShape):
    stages = [(10, 2, 1), (20, 4, 1)]

    def tick(self):
        run_time = self.get_run_time()
        for end_s, users, rate in self.stages:
            if run_time < end_s:
                return users, rate
        return None
