"""Run a built-in scenario against a live lab for a bounded time; print its stats as JSON.

Run as a subprocess (``python _drive_scenario.py ...``): it imports Locust,
which monkey-patches the process with gevent, so pytest must never import it.
The user classes are built exactly as the load engine builds them
(``engine.load_user_classes``); the hub password comes from
``LABCAP_HUB_PASSWORD`` like in the engine. JSON goes to stdout, logs to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scenario", required=True, help="catalog name: jupyterhub, mlflow, lab")
    p.add_argument("--host", action="append", default=[], help="TARGET=URL, repeatable")
    p.add_argument("--users", type=int, default=1)
    p.add_argument("--spawn-rate", type=float, default=10.0)
    p.add_argument("--run-s", type=float, default=10.0, help="time at full load, then stop")
    p.add_argument("--stop-timeout-s", type=float, default=30.0, help="grace for running tasks")
    p.add_argument("--wait-s", type=float, nargs=2, default=None, metavar=("LO", "HI"))
    return p.parse_args(argv)


def stats_as_dict(env: Any) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    for (name, method), s in sorted(env.stats.entries.items()):
        entries[name] = {
            "request_type": method,
            "num_requests": s.num_requests,
            "num_failures": s.num_failures,
            "median_ms": s.median_response_time if s.num_requests else None,
            "p95_ms": s.get_response_time_percentile(0.95) if s.num_requests else None,
            "max_ms": s.max_response_time if s.num_requests else None,
        }
    errors = [
        {"name": e.name, "method": e.method, "error": str(e.error), "occurrences": e.occurrences}
        for e in env.stats.errors.values()
    ]
    return {"entries": entries, "errors": errors}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    import gevent
    from locust import events
    from locust.env import Environment
    from locust.log import setup_logging

    from labcap.loadtests.catalog import get_scenario
    from labcap.loadtests.engine import load_user_classes

    setup_logging("WARNING")
    info = get_scenario(args.scenario)
    cfg: dict[str, Any] = {
        "scenario": {"module": info.module, "classes": [list(c) for c in info.classes]},
        "hosts": dict(h.split("=", 1) for h in args.host),
    }
    if args.wait_s:
        cfg["wait_s"] = args.wait_s
    user_errors: list[str] = []
    env = Environment(user_classes=load_user_classes(cfg), events=events)
    env.stop_timeout = args.stop_timeout_s
    env.events.user_error.add_listener(
        lambda user_instance, exception, tb: user_errors.append(repr(exception))
    )
    runner = env.create_local_runner()
    runner.start(args.users, spawn_rate=args.spawn_rate)
    gevent.sleep(args.users / args.spawn_rate + args.run_s)
    # quit() waits up to stop_timeout for running tasks, then kills; on_stop runs either way
    with gevent.Timeout(args.stop_timeout_s + 60):
        runner.quit()
    out = stats_as_dict(env)
    out["user_errors"] = user_errors
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
