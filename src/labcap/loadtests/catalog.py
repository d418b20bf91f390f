"""The built-in scenarios, described without importing Locust.

Locust monkey-patches the whole process with gevent on import, so the rest of
labcap (CLI, planner, reports) looks scenarios up here and only the load
engine subprocess imports the user classes named by ``classes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labcap.errors import LabcapError


@dataclass(frozen=True)
class ScenarioInfo:
    name: str
    description: str
    module: str
    # (class name, weight) pairs inside ``module``
    classes: tuple[tuple[str, int], ...]
    # which lab services the users talk to: "jupyterhub", "mlflow"
    needs: tuple[str, ...]
    # SLOs applied when the user gives none, as CLI expressions
    default_slos: tuple[str, ...] = field(default=())


# Interactive API calls should answer within a second; the server lifecycle calls
# (the spawn POST waits up to the hub's slow_spawn_timeout, the stop waits for the
# server to be gone) get their own bounds, and spawn-to-ready gets the guide's
# "container startup 10-30 s".
_HUB_SLOS = (
    "p95_ms=1000",
    "hub.spawn:p95_ms=15000",
    "hub.spawn_ready:p95_ms=30000",
    "hub.stop:p95_ms=15000",
    # the first cell on a fresh kernel waits for the kernel to finish booting
    "kernel.execute:p95_ms=5000",
    "error_pct=1",
)

SCENARIOS: dict[str, ScenarioInfo] = {
    s.name: s
    for s in (
        ScenarioInfo(
            name="jupyterhub",
            description="log in, spawn a server and wait until ready, start a kernel, "
            "execute a cell, stop the kernel and the server",
            module="labcap.loadtests.scenarios.jupyterhub",
            classes=(("JupyterHubUser", 1),),
            needs=("jupyterhub",),
            default_slos=_HUB_SLOS,
        ),
        ScenarioInfo(
            name="mlflow",
            description="create an experiment and a run, log a batch of metrics, "
            "search runs, read a metric's history",
            module="labcap.loadtests.scenarios.mlflow",
            classes=(("MLflowUser", 1),),
            needs=("mlflow",),
            default_slos=("p95_ms=500", "error_pct=1"),
        ),
        ScenarioInfo(
            name="lab",
            description="both journeys at once: one JupyterHub user for every two MLflow users",
            module="labcap.loadtests.scenarios.lab",
            classes=(("JupyterHubUser", 1), ("MLflowUser", 2)),
            needs=("jupyterhub", "mlflow"),
            default_slos=_HUB_SLOS,
        ),
    )
}


def get_scenario(name: str) -> ScenarioInfo:
    """Look up a built-in scenario; unknown names fail with the list of valid ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        valid = ", ".join(sorted(SCENARIOS))
        raise LabcapError(
            f"unknown scenario {name!r}: valid scenarios are {valid}, or a path to a locustfile.py"
        ) from None
