"""Bench users that think 5-15 s between requests (FastHttpUser, cheap per user)."""

from locust import FastHttpUser, between, task


class ThinkingUser(FastHttpUser):
    wait_time = between(5, 15)

    @task
    def get(self):
        self.client.get("/", name="think.get")
