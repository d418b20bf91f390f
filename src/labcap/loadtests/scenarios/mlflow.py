"""The MLflow tracking journey, over MLflow's REST API (``/api/2.0/mlflow/``).

Imported only by the load engine subprocess (it imports Locust). Each user
creates one experiment, then per iteration: a run, a batch of metrics, a
search over the experiment's runs and one metric's history. Request names:

``mlflow.create_experiment``, ``mlflow.create_run``, ``mlflow.log_batch``,
``mlflow.search_runs``, ``mlflow.metric_history``.

MLflow answers 403 to Host headers other than localhost/127.0.0.1 unless its
allowed hosts are configured, so point ``host`` at ``http://127.0.0.1:PORT``.

The users are ``WireHttpUser``s (labcap's own client, ``labcap.loadtests.wire``): each
call is timed to the kernel's receipt of its answer, and one generator core carries
several times the requests python-requests would. Credentials follow MLflow's own
conventions (``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` for basic auth, else
``MLFLOW_TRACKING_TOKEN`` as a bearer token; ``labcap.clients.mlflow``); HTTP(S)_PROXY,
NO_PROXY and the CA bundle are followed (``labcap.clients.http``).
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
from locust import between, task

from labcap.loadtests.scenarios.common import StepFailed, unique_name
from labcap.loadtests.users import WireHttpUser

API = "/api/2.0/mlflow"


@dataclass(frozen=True)
class MLflowJourneySettings:
    """Knobs of the MLflow journey; override with a subclass attribute ``settings``."""

    metrics_per_batch: int = field(default=20, metadata={"help": "metric keys per log_batch"})
    steps_per_batch: int = field(default=3, metadata={"help": "steps logged for every key"})
    search_max_results: int = field(default=20, metadata={"help": "max_results of search_runs"})
    request_timeout_s: float = field(
        default=30.0, metadata={"help": "limit for any single HTTP request"}
    )
    initial_delay_max_s: float = field(
        default=1.0, metadata={"help": "users wait uniform(0, this) before their first request"}
    )


class MLflowUser(WireHttpUser):
    """One data scientist logging runs into their own experiment."""

    host = None
    target = "mlflow"
    lab_password: str = ""  # set by the engine for every class; MLflow needs none
    username_prefix = "labcap"
    wait_time = between(1, 3)
    settings = MLflowJourneySettings()

    @property
    def timeout_s(self) -> float:  # WireHttpUser's per-request limit
        return self.settings.request_timeout_s

    @property
    def auth_headers(self) -> dict[str, str]:  # WireHttpUser sends them with every request
        from labcap.clients.mlflow import auth_headers

        return auth_headers()

    @property
    def ca_file(self) -> str | None:  # type: ignore[override]
        from labcap.clients.mlflow import ca_file

        return ca_file()

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.experiment_name = unique_name(self.username_prefix)
        self._experiment_id: str | None = None

    def on_start(self) -> None:
        gevent.sleep(random.uniform(0.0, self.settings.initial_delay_max_s))
        with contextlib.suppress(StepFailed):  # reported; the task retries
            self._create_experiment()

    @task
    def track_run(self) -> None:
        try:
            if self._experiment_id is None:
                self._create_experiment()
            run_id = self._create_run()
            self._log_batch(run_id)
            self._search_runs(run_id)
            self._metric_history(run_id)
        except StepFailed:
            pass  # reported already; skip the rest of this iteration

    # -- steps --------------------------------------------------------------

    def _call(self, method: str, path: str, name: str, ok: Any, **kwargs: Any) -> dict[str, Any]:
        """One API call reported as ``name``; ``ok(body)`` is True when the body is right."""

        parsed: dict[str, Any] = {}

        def check(response: Any) -> str | None:
            try:
                body = response.json()
            except ValueError:
                body = None
            if response.status != 200 or not isinstance(body, dict) or not ok(body):
                return f"unexpected response on {name} (HTTP {response.status})"
            parsed.update(body)
            return None

        r = self.client.request(method, f"{API}/{path}", name=name, check=check, **kwargs)
        if r.error is not None:  # reported to Locust already, with its reason
            raise StepFailed(name)
        return parsed

    def _create_experiment(self) -> None:
        body = self._call(
            "POST",
            "experiments/create",
            "mlflow.create_experiment",
            lambda b: "experiment_id" in b,
            json={"name": self.experiment_name},
        )
        self._experiment_id = str(body["experiment_id"])

    def _create_run(self) -> str:
        body = self._call(
            "POST",
            "runs/create",
            "mlflow.create_run",
            lambda b: "run_id" in b.get("run", {}).get("info", {}),
            json={
                "experiment_id": self._experiment_id,
                "start_time": int(time.time() * 1000),
                "run_name": "labcap-load",
            },
        )
        return str(body["run"]["info"]["run_id"])

    def _log_batch(self, run_id: str) -> None:
        now_ms = int(time.time() * 1000)
        metrics = [
            {"key": f"metric_{k}", "value": random.random(), "timestamp": now_ms, "step": step}
            for k in range(self.settings.metrics_per_batch)
            for step in range(self.settings.steps_per_batch)
        ]
        self._call(
            "POST",
            "runs/log-batch",
            "mlflow.log_batch",
            lambda b: True,
            json={"run_id": run_id, "metrics": metrics, "params": [], "tags": []},
        )

    def _search_runs(self, run_id: str) -> None:
        self._call(
            "POST",
            "runs/search",
            "mlflow.search_runs",
            lambda b: len(b.get("runs", [])) > 0,
            json={
                "experiment_ids": [self._experiment_id],
                "max_results": self.settings.search_max_results,
                "order_by": ["attributes.start_time DESC"],
            },
        )

    def _metric_history(self, run_id: str) -> None:
        expected = self.settings.steps_per_batch if self.settings.metrics_per_batch else 0
        self._call(
            "GET",
            "metrics/get-history",
            "mlflow.metric_history",
            lambda b: len(b.get("metrics", [])) == expected,
            params={"run_id": run_id, "metric_key": "metric_0"},
        )
