"""How long does `labcap verify`'s data check take on a lab with 1,000 MLflow runs and
10,000 files? (A benchmark, not a test: the acceptance bound is one minute on this machine.)

Starts two real MLflow tracking servers (the reference lab, MLflow only) on loopback ports,
seeds both with the same 10 experiments x 100 runs (params, metric histories, tags, 2
artifacts each) and two trees of 20 users x 500 files (up to 8 KiB each), then times
`run_verify(checks=data)`: the faithful copy (artifact listings from the store, the default
when the store is local; then through the API), then after damaging the new side (a run
deleted, a metric logged again with another value, a file removed, a file changed).

    python bench/verify_scale.py [--runs-per-experiment 100] [--files-per-user 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.verify.seed

from tests.verify.seed import Damage, LabContent, file_paths, seed_files, seed_mlflow  # noqa: E402

from labcap.lab import ReferenceLab  # noqa: E402
from labcap.verify import DataSettings, VerifySettings, resolve_deployment, run_verify  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=int, default=10)
    ap.add_argument("--runs-per-experiment", type=int, default=100)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--files-per-user", type=int, default=500)
    ap.add_argument("--file-bytes", type=int, default=8192)
    args = ap.parse_args()
    content = LabContent(
        experiments=args.experiments,
        runs_per_experiment=args.runs_per_experiment,
        users=tuple(f"user{i:02d}" for i in range(args.users)),
        files_per_user=args.files_per_user,
        file_bytes=args.file_bytes,
    )
    damaged_file = file_paths(content)[7]
    damage = Damage(
        metric_changes={"exp-3/run-42:acc": 0.123}, skip_files=frozenset({damaged_file})
    )
    with tempfile.TemporaryDirectory(prefix="labcap-verify-bench-") as tmp:
        root = Path(tmp)
        labs = [ReferenceLab(root / name, services=("mlflow",)) for name in ("old", "new")]
        try:
            urls = [lab.start().mlflow_url for lab in labs]
            rows = []
            t = time.monotonic()
            n_runs = seed_mlflow(urls[0], content)
            seed_mlflow(urls[1], content)
            n_files = seed_files(root / "old-home", content)
            seed_files(root / "new-home", content)
            rows.append(("seed both sides (not part of verify)", time.monotonic() - t, ""))
            old = resolve_deployment(
                "old", "http://127.0.0.1:9", mlflow_url=urls[0], files=[root / "old-home"], env={}
            )
            new = resolve_deployment(
                "new", "http://127.0.0.1:9", mlflow_url=urls[1], files=[root / "new-home"], env={}
            )
            settings = VerifySettings(checks=("data",), data=DataSettings())
            rows.append(_timed("verify data, faithful copy", old, new, settings))
            # the same, with every artifact listing through the servers' artifacts/list API
            via_api = VerifySettings(checks=("data",), data=DataSettings(artifact_source="api"))
            rows.append(_timed("  same, artifact listings via the API", old, new, via_api))
            # the same content, damaged: a run deleted, a metric re-logged, files gone/changed
            damage_mlflow(urls[1], damage, delete_run="exp-5/run-7")
            (root / "new-home" / damaged_file).unlink()
            changed = root / "new-home" / file_paths(content)[8]
            changed.write_bytes(changed.read_bytes().upper())
            rows.append(_timed("verify data, damaged copy", old, new, settings))
        finally:
            for lab in labs:
                lab.stop()
    print(
        f"\n{n_runs} MLflow runs and {n_files} files per side "
        f"(artifacts {2 * n_runs}, files up to {args.file_bytes} B)\n"
    )
    print(f"| {'phase':<40} | {'seconds':>8} | result")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 60}")
    for name, seconds, outcome in rows:
        print(f"| {name:<40} | {seconds:>8.1f} | {outcome}")
    return 0


def _timed(name: str, old, new, settings) -> tuple[str, float, str]:
    t = time.monotonic()
    result = run_verify(old, new, settings, progress=lambda m: print(m, file=sys.stderr))
    seconds = time.monotonic() - t
    (data,) = result.checks
    kinds = sorted({d.kind for d in data.differences})
    print("\n".join(result.lines()[:12]), file=sys.stderr)
    return name, seconds, f"{result.verdict}; {len(data.differences)} difference(s) {kinds}"


def damage_mlflow(url: str, damage: Damage, delete_run: str) -> None:
    """Delete one run and log each damaged metric again, with a later timestamp (the latest
    value is what runs/search shows)."""
    import requests

    s = requests.Session()
    s.trust_env = False

    def run_id(run_path: str) -> str:
        exp, run_name = run_path.split("/")
        exp_id = s.get(
            f"{url}/api/2.0/mlflow/experiments/get-by-name",
            params={"experiment_name": exp},
            timeout=30,
        ).json()["experiment"]
        return s.post(
            f"{url}/api/2.0/mlflow/runs/search",
            timeout=30,
            json={
                "experiment_ids": [exp_id["experiment_id"]],
                "filter": f"attributes.run_name = '{run_name}'",
            },
        ).json()["runs"][0]["info"]["run_id"]

    s.post(
        f"{url}/api/2.0/mlflow/runs/delete", json={"run_id": run_id(delete_run)}, timeout=30
    ).raise_for_status()
    for key, value in damage.metric_changes.items():
        run_path, metric = key.split(":")
        s.post(
            f"{url}/api/2.0/mlflow/runs/log-metric",
            timeout=30,
            json={
                "run_id": run_id(run_path),
                "key": metric,
                "value": value,
                "timestamp": int(time.time() * 1000),
                "step": 0,
            },
        ).raise_for_status()


if __name__ == "__main__":
    sys.exit(main())
