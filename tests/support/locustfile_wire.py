"""A locustfile on labcap's own client, as an administrator would write one."""

from locust import between, task

from labcap.loadtests.users import WireHttpUser


class WireUser(WireHttpUser):
    wait_time = between(0.02, 0.08)

    @task(3)  # mostly answered: a 50/50 mix sits on the run's first-step error bound (50 %)
    def get(self):
        self.client.get("/len", name="wire.get")

    @task
    def missing(self):
        self.client.get("/status/503", name="wire.unavailable")
