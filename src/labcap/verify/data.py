"""The data check: MLflow (experiments, runs, params, metrics and their histories, tags,
artifact listings and checksums, the model registry) and
the home/project file trees, old against new. Read-only on both sides.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from labcap.verify.files import ChecksumPolicy, compare_trees
from labcap.verify.mlflow_data import MlflowReader, MlflowReadError, MlflowSnapshot, compare_mlflow
from labcap.verify.records import FAIL, INCONCLUSIVE, PASS, SKIPPED, CheckResult, Difference
from labcap.verify.target import Deployment

Progress = Callable[[str], None]
# labcap's own load-test experiments and users (``labcap-<tag>-<n>``, ``labcap-verify-<n>``):
# written by the load and the login check, different on each side by design
DEFAULT_IGNORE = ("labcap-*",)


@dataclass(frozen=True)
class DataSettings:
    checksums: ChecksumPolicy = ChecksumPolicy()
    # experiment names, and top-level entries of each file tree, left out of the comparison
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    workers: int = 8
    # artifact listings: "auto" (the store when the artifact_uri is a local path here, else
    # the API), "api" or "store"
    artifact_source: str = "auto"


def check_data(
    old: Deployment,
    new: Deployment,
    settings: DataSettings | None = None,
    progress: Progress = lambda _m: None,
) -> CheckResult:
    settings = settings or DataSettings()
    started = time.monotonic()
    diffs: list[Difference] = []
    errors: list[str] = []
    details: dict[str, Any] = {"ignored": list(settings.ignore)}
    parts: list[str] = []
    if old.mlflow_url and new.mlflow_url:
        mlflow_diffs, mlflow_details, mlflow_errors = _mlflow(old, new, settings, progress)
        diffs += mlflow_diffs
        errors += mlflow_errors
        details["mlflow"] = mlflow_details
        if "runs" in mlflow_details:
            parts.append(
                f"MLflow {mlflow_details['runs']['old']} runs old / "
                f"{mlflow_details['runs']['new']} new"
            )
    elif old.mlflow_url or new.mlflow_url:
        errors.append("MLflow URL given for one side only")
    if len(old.file_roots) != len(new.file_roots):
        errors.append(
            f"{len(old.file_roots)} file tree(s) given for old, "
            f"{len(new.file_roots)} for new: pair them in the same order"
        )
    trees = []
    for o, n in zip(old.file_roots, new.file_roots, strict=False):
        progress(f"verify data: walking {o} and {n}")
        tree_diffs, tree_details = compare_trees(
            o, n, settings.checksums, progress, ignore=settings.ignore
        )
        diffs += tree_diffs
        trees.append(tree_details)
        parts.append(
            f"files {tree_details['files']['old']} old / {tree_details['files']['new']}"
            f" new under {n}"
        )
    details["files"] = trees
    elapsed = round(time.monotonic() - started, 2)
    if not parts and not errors:
        return CheckResult(
            "data",
            SKIPPED,
            "no MLflow URL and no file tree given for both sides: nothing to compare",
            details=details,
            elapsed_s=elapsed,
        )
    summary = "; ".join(parts) or "nothing compared"
    details["errors"] = errors
    if diffs:
        status = FAIL
        summary = f"{len(diffs)} difference(s): {summary}"
    elif errors:
        status = INCONCLUSIVE
        summary = f"{summary}; could not check: {'; '.join(errors[:3])}"
    else:
        status, summary = PASS, f"identical: {summary}"
    critical = bool(
        "mlflow" in details
        and details["mlflow"].get("unreachable_new")
        and not details["mlflow"].get("unreachable_old")
    )
    return CheckResult("data", status, summary, tuple(diffs), details, critical, elapsed)


def _mlflow(
    old: Deployment, new: Deployment, settings: DataSettings, progress: Progress
) -> tuple[list[Difference], dict[str, Any], list[str]]:
    readers = {
        d.label: MlflowReader(
            d.mlflow_url,
            d.mlflow_token,
            workers=settings.workers,
            artifact_source=settings.artifact_source,
            # the sha256 of every artifact file unless --checksums none (a sample of N
            # applies to the file trees only)
            artifact_checksums=settings.checksums.mode != "none",
        )
        for d in (old, new)
    }

    def snap(label: str) -> MlflowSnapshot | str:
        try:
            return readers[label].snapshot(progress, label)
        except MlflowReadError as e:
            return str(e)

    with ThreadPoolExecutor(2) as pool:
        got = dict(zip(("old", "new"), pool.map(snap, ("old", "new")), strict=True))
    failed = {k: v for k, v in got.items() if isinstance(v, str)}
    if failed:
        details = {f"unreachable_{k}": True for k in failed}
        return [], details, [f"MLflow on {k}: {v}" for k, v in sorted(failed.items())]
    snaps: dict[str, MlflowSnapshot] = {k: drop_ignored(v, settings.ignore) for k, v in got.items()}  # type: ignore[arg-type]
    diffs, details = compare_mlflow(snaps["old"], snaps["new"])
    errors = snaps["old"].errors + snaps["new"].errors
    return diffs, details, errors


def drop_ignored(snap: MlflowSnapshot, patterns: Sequence[str]) -> MlflowSnapshot:
    keep = {n: e for n, e in snap.experiments.items() if not _ignored(n, patterns)}
    runs = [r for r in snap.runs if r.experiment in keep]
    return MlflowSnapshot(keep, runs, snap.errors, snap.artifact_sources)


def _ignored(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)
