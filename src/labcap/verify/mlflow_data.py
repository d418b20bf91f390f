"""MLflow data integrity: experiments, runs, params, metrics (latest values and every
metric's full history), tags, artifact listings (with each artifact file's sha256 when asked)
and the model registry (registered models, their versions, tags and aliases) of both
tracking servers, read through the REST API (read-only: searches, listings and downloads,
never a write), compared item by item.

Artifact listings come through the server's ``artifacts/list`` (one call per run and
directory), or, with ``artifact_source="auto"``, straight from the artifact store when a run's
``artifact_uri`` is a local path that exists here (a local or mounted store: the same listing,
without two HTTP calls per run); ``"api"`` and ``"store"`` force one or the other.

Artifact checksums read each file from the store when it is here, else download it through
the server's ``get-artifact`` endpoint (the UI's download; it serves proxied
``mlflow-artifacts:/`` stores too).

Runs are matched by run id when the two servers share ids (a database copy keeps them);
otherwise by experiment name, run name and start time (a copy through the API makes new ids).
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from labcap.loadtests.scenarios.common import describe
from labcap.verify.files import sha256_file
from labcap.verify.hub import direct_session
from labcap.verify.records import Difference

Progress = Callable[[str], None]
_PAGE = 1000
_MAX_PAGES = 10_000  # bounds every pagination loop
_MAX_ARTIFACTS_PER_RUN = 100_000
RUN_FIELDS = ("status", "start_time", "end_time", "lifecycle_stage", "run_name", "user_id")


class MlflowReadError(Exception):
    """A listing could not be read; the data check is then inconclusive, not passed."""


@dataclass
class RunRecord:
    run_id: str
    experiment: str
    info: dict[str, Any]
    params: dict[str, str]
    metrics: dict[str, tuple[Any, Any, Any]]  # key -> (value, step, timestamp)
    tags: dict[str, str]
    artifacts: dict[str, tuple[bool, int | None]] = field(default_factory=dict)
    artifact_uri: str = ""
    artifact_source: str = ""  # where the listing came from: api or store
    # every point of each metric: key -> ((value, step, timestamp), ...) sorted
    histories: dict[str, tuple[tuple[Any, Any, Any], ...]] = field(default_factory=dict)
    artifact_sha256: dict[str, str] = field(default_factory=dict)  # file path -> sha256

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.info.get('run_name') or '-'} ({self.run_id})"


@dataclass
class MlflowSnapshot:
    experiments: dict[str, dict[str, Any]]  # by name
    runs: list[RunRecord]
    errors: list[str]
    artifact_sources: dict[str, int] = field(default_factory=dict)
    # registered model name -> {"model": fields, "versions": {version: fields}}
    models: dict[str, dict[str, Any]] = field(default_factory=dict)


class MlflowReader:
    """Paginated, read-only REST access to one tracking server."""

    def __init__(
        self,
        url: str,
        token: str = "",
        *,
        timeout_s: float = 30.0,
        workers: int = 8,
        artifact_source: str = "auto",
        artifact_checksums: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.artifact_source = artifact_source
        self.artifact_checksums = artifact_checksums
        self._token = token
        self.timeout_s = timeout_s
        self.workers = workers
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = direct_session()
            if self._token:
                session.headers["Authorization"] = f"Bearer {self._token}"
        return session

    def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        url = f"{self.url}/api/2.0/mlflow/{path}"
        try:
            r = self._session().request(method, url, timeout=self.timeout_s, **kw)
        except requests.RequestException as e:
            raise MlflowReadError(f"{path}: {describe(e, (self._token,))}") from None
        if r.status_code != 200:
            raise MlflowReadError(f"{path}: HTTP {r.status_code} {r.text[:160]}")
        return r.json()

    def _pages(self, method: str, path: str, key: str, body: dict[str, Any]) -> list[Any]:
        items: list[Any] = []
        token = None
        for _ in range(_MAX_PAGES):
            page_body = {**body, **({"page_token": token} if token else {})}
            if method == "GET":
                data = self._call(method, path, params=page_body)
            else:
                data = self._call(method, path, json=page_body)
            items += data.get(key, [])
            token = data.get("next_page_token")
            if not token:
                return items
        raise MlflowReadError(f"{path}: more than {_MAX_PAGES} pages")

    def experiments(self) -> list[dict[str, Any]]:
        return self._pages(
            "POST",
            "experiments/search",
            "experiments",
            {"max_results": _PAGE, "view_type": "ALL"},
        )

    def runs(self, experiment_ids: list[str]) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        for i in range(0, len(experiment_ids), 100):
            runs += self._pages(
                "POST",
                "runs/search",
                "runs",
                {
                    "experiment_ids": experiment_ids[i : i + 100],
                    "max_results": _PAGE,
                    "run_view_type": "ALL",
                },
            )
        return runs

    def artifacts(self, run_id: str) -> dict[str, tuple[bool, int | None]]:
        """Every artifact of the run, recursively: path -> (is_dir, size in bytes)."""
        out: dict[str, tuple[bool, int | None]] = {}
        pending = [""]
        while pending:
            path = pending.pop()
            params = {"run_id": run_id, **({"path": path} if path else {})}
            for f in self._pages("GET", "artifacts/list", "files", params):
                is_dir = bool(f.get("is_dir"))
                size = None if is_dir else int(f.get("file_size") or 0)
                out[f["path"]] = (is_dir, size)
                if is_dir:
                    pending.append(f["path"])
                if len(out) > _MAX_ARTIFACTS_PER_RUN:
                    raise MlflowReadError(f"run {run_id}: over {_MAX_ARTIFACTS_PER_RUN} artifacts")
        return out

    def history(self, run_id: str, key: str) -> tuple[tuple[Any, Any, Any], ...]:
        """Every logged point of one metric, sorted (step, timestamp, value)."""
        points = self._pages(
            "GET",
            "metrics/get-history",
            "metrics",
            {"run_id": run_id, "metric_key": key, "max_results": 25_000},
        )
        return tuple(
            sorted(
                ((m.get("value"), m.get("step"), m.get("timestamp")) for m in points),
                key=lambda p: (p[1] or 0, p[2] or 0, str(p[0])),
            )
        )

    def artifact_sha256(self, rec: RunRecord, path: str, local: Path | None) -> str:
        """sha256 of one artifact file: from the store when it is here, else downloaded."""
        if local is not None and rec.artifact_source == "store":
            try:
                return sha256_file(local / path)
            except OSError as e:
                raise MlflowReadError(f"{local / path}: {e.strerror or e}") from None
        digest = hashlib.sha256()
        url = f"{self.url}/get-artifact"
        try:
            with self._session().get(
                url,
                params={"path": path, "run_uuid": rec.run_id},
                timeout=self.timeout_s,
                stream=True,
            ) as r:
                if r.status_code != 200:
                    raise MlflowReadError(f"get-artifact {path}: HTTP {r.status_code}")
                for chunk in r.iter_content(1 << 20):
                    digest.update(chunk)
        except requests.RequestException as e:
            raise MlflowReadError(f"get-artifact {path}: {describe(e, (self._token,))}") from None
        return digest.hexdigest()

    def models(self) -> dict[str, dict[str, Any]]:
        """The model registry: every registered model and every version of it."""
        out: dict[str, dict[str, Any]] = {}
        for m in self._pages(
            "GET", "registered-models/search", "registered_models", {"max_results": 1000}
        ):
            name = m["name"]
            versions = self._pages(
                "GET",
                "model-versions/search",
                "model_versions",
                {"filter": f"name='{_quote(name)}'", "max_results": 10_000},
            )
            out[name] = {
                "model": {
                    "description": m.get("description", ""),
                    "tags": {t["key"]: t.get("value") for t in m.get("tags", [])},
                    "aliases": {a["alias"]: a.get("version") for a in m.get("aliases", [])},
                },
                "versions": {str(v["version"]): _version_fields(v) for v in versions},
            }
        return out

    def snapshot(self, progress: Progress, label: str) -> MlflowSnapshot:
        exps = self.experiments()
        by_id = {e["experiment_id"]: e for e in exps}
        raw_runs = self.runs(sorted(by_id))
        progress(f"verify data: {label} MLflow: {len(exps)} experiments, {len(raw_runs)} runs")
        runs = [_run_record(r, by_id) for r in raw_runs]
        errors: list[str] = []

        def list_one(rec: RunRecord) -> None:
            try:
                local = _local_dir(rec.artifact_uri)
                if self.artifact_source == "store" and local is None:
                    raise MlflowReadError(f"artifact_uri {rec.artifact_uri!r} is not a local path")
                # auto: only a store that is here (MLflow makes a run's directory lazily, so
                # with "store" a missing one is a run without artifacts, as the API says)
                here = local is not None and (self.artifact_source == "store" or local.is_dir())
                if self.artifact_source != "api" and here:
                    rec.artifacts, rec.artifact_source = list_store(local), "store"
                else:
                    rec.artifacts, rec.artifact_source = self.artifacts(rec.run_id), "api"
                if self.artifact_checksums:
                    rec.artifact_sha256 = {
                        path: self.artifact_sha256(rec, path, local)
                        for path, (is_dir, _size) in sorted(rec.artifacts.items())
                        if not is_dir
                    }
            except MlflowReadError as e:
                errors.append(f"artifacts of run {rec.label}: {e}")
            try:
                rec.histories = {key: self.history(rec.run_id, key) for key in sorted(rec.metrics)}
            except MlflowReadError as e:
                errors.append(f"metric histories of run {rec.label}: {e}")

        started = time.monotonic()
        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(list_one, runs))
        sources = {k: sum(r.artifact_source == k for r in runs) for k in ("api", "store")}
        hashed = sum(len(r.artifact_sha256) for r in runs)
        progress(
            f"verify data: {label} MLflow: artifacts of {len(runs)} runs listed in "
            f"{time.monotonic() - started:.1f} s ({sources['api']} through the API, "
            f"{sources['store']} from the store; {hashed} files hashed), metric histories read"
        )
        try:
            models = self.models()
        except MlflowReadError as e:
            models = {}
            errors.append(f"model registry: {e}")
        progress(f"verify data: {label} MLflow: {len(models)} registered models")
        return MlflowSnapshot({e["name"]: e for e in exps}, runs, errors, sources, models)


def _run_record(raw: dict[str, Any], experiments: dict[str, dict[str, Any]]) -> RunRecord:
    info = raw.get("info", {})
    data = raw.get("data", {})
    exp = experiments.get(info.get("experiment_id"), {}).get("name", info.get("experiment_id"))
    return RunRecord(
        run_id=info.get("run_id") or info.get("run_uuid", ""),
        experiment=str(exp),
        info={k: info.get(k) for k in RUN_FIELDS},
        params={p["key"]: p.get("value") for p in data.get("params", [])},
        metrics={
            m["key"]: (m.get("value"), m.get("step"), m.get("timestamp"))
            for m in data.get("metrics", [])
        },
        tags={t["key"]: t.get("value") for t in data.get("tags", [])},
        artifact_uri=str(info.get("artifact_uri") or ""),
    )


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "\\'")


VERSION_FIELDS = ("source", "run_id", "status", "description", "current_stage")


def _version_fields(v: dict[str, Any]) -> dict[str, Any]:
    out = {k: v.get(k) or "" for k in VERSION_FIELDS}
    out["tags"] = {t["key"]: t.get("value") for t in v.get("tags", [])}
    return out


def _local_dir(uri: str) -> Path | None:
    """The directory of a local artifact URI (``file://`` or an absolute path), else None."""
    if uri.startswith("file://"):
        return Path(unquote(urlsplit(uri).path))
    if uri.startswith("/"):
        return Path(uri)
    return None


def list_store(root: Path) -> dict[str, tuple[bool, int | None]]:
    """The listing ``artifacts/list`` gives, read from the store: path -> (is_dir, size)."""
    out: dict[str, tuple[bool, int | None]] = {}
    if not root.exists():
        return out
    try:
        for dirpath, dirnames, filenames in os.walk(root):
            rel = Path(dirpath).relative_to(root)
            for d in dirnames:
                out[(rel / d).as_posix()] = (True, None)
            for f in filenames:
                out[(rel / f).as_posix()] = (False, (Path(dirpath) / f).stat().st_size)
            if len(out) > _MAX_ARTIFACTS_PER_RUN:
                raise MlflowReadError(f"{root}: over {_MAX_ARTIFACTS_PER_RUN} artifacts")
    except OSError as e:
        raise MlflowReadError(f"{root}: {e.strerror or e}") from None
    return out


def compare_mlflow(old: MlflowSnapshot, new: MlflowSnapshot) -> tuple[list[Difference], dict]:
    diffs: list[Difference] = []
    for name in sorted(old.experiments.keys() - new.experiments.keys()):
        diffs.append(Difference("missing-experiment", f"experiment {name}"))
    for name in sorted(new.experiments.keys() - old.experiments.keys()):
        diffs.append(Difference("extra-experiment", f"experiment {name}"))
    for name in sorted(old.experiments.keys() & new.experiments.keys()):
        eo, en = old.experiments[name], new.experiments[name]
        if eo.get("lifecycle_stage") != en.get("lifecycle_stage"):
            diffs.append(
                Difference(
                    "changed-experiment",
                    f"experiment {name} lifecycle_stage",
                    eo.get("lifecycle_stage"),
                    en.get("lifecycle_stage"),
                )
            )
        diffs += _compare_maps("experiment-tag", f"experiment {name}", _tags(eo), _tags(en))
    by_id = bool({r.run_id for r in old.runs} & {r.run_id for r in new.runs})
    runs_old, runs_new = _keyed(old.runs, by_id), _keyed(new.runs, by_id)
    for key in sorted(runs_old.keys() - runs_new.keys(), key=str):
        diffs.append(Difference("missing-run", f"run {runs_old[key].label}"))
    for key in sorted(runs_new.keys() - runs_old.keys(), key=str):
        diffs.append(Difference("extra-run", f"run {runs_new[key].label}"))
    for key in sorted(runs_old.keys() & runs_new.keys(), key=str):
        diffs += _compare_run(runs_old[key], runs_new[key])
    diffs += compare_models(old.models, new.models)
    details = {
        "matched_runs_by": "run id" if by_id else "experiment, run name and start time",
        "artifact_listings": {"old": old.artifact_sources, "new": new.artifact_sources},
        "experiments": {"old": len(old.experiments), "new": len(new.experiments)},
        "runs": {"old": len(old.runs), "new": len(new.runs)},
        "artifacts": {
            "old": sum(len(r.artifacts) for r in old.runs),
            "new": sum(len(r.artifacts) for r in new.runs),
        },
        "artifacts_hashed": {
            "old": sum(len(r.artifact_sha256) for r in old.runs),
            "new": sum(len(r.artifact_sha256) for r in new.runs),
        },
        "metric_points": {
            "old": sum(len(h) for r in old.runs for h in r.histories.values()),
            "new": sum(len(h) for r in new.runs for h in r.histories.values()),
        },
        "registered_models": {"old": len(old.models), "new": len(new.models)},
        "model_versions": {
            "old": sum(len(m["versions"]) for m in old.models.values()),
            "new": sum(len(m["versions"]) for m in new.models.values()),
        },
    }
    return diffs, details


def compare_models(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list:
    """The model registry, model by model and version by version."""
    diffs = [
        Difference("missing-model", f"registered model {n}")
        for n in sorted(old.keys() - new.keys())
    ]
    diffs += [
        Difference("extra-model", f"registered model {n}") for n in sorted(new.keys() - old.keys())
    ]
    for name in sorted(old.keys() & new.keys()):
        mo, mn = old[name], new[name]
        subject = f"registered model {name}"
        if mo["model"]["description"] != mn["model"]["description"]:
            diffs.append(
                Difference(
                    "changed-model",
                    f"{subject} description",
                    mo["model"]["description"],
                    mn["model"]["description"],
                )
            )
        diffs += _compare_maps("model-tag", subject, mo["model"]["tags"], mn["model"]["tags"])
        diffs += _compare_maps(
            "model-alias", subject, mo["model"]["aliases"], mn["model"]["aliases"]
        )
        vo, vn = mo["versions"], mn["versions"]
        diffs += [
            Difference("missing-model-version", f"{subject} version {v}")
            for v in sorted(vo.keys() - vn.keys(), key=_version_key)
        ]
        diffs += [
            Difference("extra-model-version", f"{subject} version {v}")
            for v in sorted(vn.keys() - vo.keys(), key=_version_key)
        ]
        for v in sorted(vo.keys() & vn.keys(), key=_version_key):
            diffs += _compare_maps("model-version", f"{subject} version {v}", vo[v], vn[v])
    return diffs


def _version_key(v: str) -> tuple[int, str]:
    return (int(v), v) if v.isdigit() else (1 << 62, v)


def _tags(experiment: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t.get("value") for t in experiment.get("tags", [])}


def _keyed(runs: Iterable[RunRecord], by_id: bool) -> dict[Any, RunRecord]:
    out: dict[Any, RunRecord] = {}
    for rec in sorted(runs, key=lambda r: r.run_id):
        base = (
            rec.run_id
            if by_id
            else (rec.experiment, rec.info.get("run_name"), rec.info.get("start_time"))
        )
        key, n = (base, 0), 0
        while key in out:  # same name and start: keep both, in a stable order
            n += 1
            key = (base, n)
        out[key] = rec
    return out


def _compare_run(o: RunRecord, n: RunRecord) -> list[Difference]:
    subject = f"run {o.label}"
    diffs = [
        Difference("changed-run", f"{subject} {k}", o.info.get(k), n.info.get(k))
        for k in RUN_FIELDS
        if o.info.get(k) != n.info.get(k)
    ]
    diffs += _compare_maps("param", subject, o.params, n.params)
    diffs += _compare_maps("metric", subject, o.metrics, n.metrics, same=_same_metric)
    diffs += _compare_maps("metric-history", subject, o.histories, n.histories, same=_same_history)
    diffs += _compare_maps("tag", subject, o.tags, n.tags)
    diffs += _compare_maps("artifact", subject, _artifacts(o), _artifacts(n))
    return diffs


def _artifacts(rec: RunRecord) -> dict[str, tuple[Any, ...]]:
    """path -> (is_dir, size), plus the sha256 where it was taken."""
    return {
        p: (*entry, rec.artifact_sha256[p]) if p in rec.artifact_sha256 else entry
        for p, entry in rec.artifacts.items()
    }


def _same_history(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(_same_metric(x, y) for x, y in zip(a, b, strict=True))


def _compare_maps(
    what: str,
    subject: str,
    old: dict[str, Any],
    new: dict[str, Any],
    same: Callable[[Any, Any], bool] = lambda a, b: a == b,
) -> list[Difference]:
    diffs = [
        Difference(f"missing-{what}", f"{subject} {what} {k}", old[k], None)
        for k in sorted(old.keys() - new.keys())
    ]
    diffs += [
        Difference(f"extra-{what}", f"{subject} {what} {k}", None, new[k])
        for k in sorted(new.keys() - old.keys())
    ]
    diffs += [
        Difference(f"changed-{what}", f"{subject} {what} {k}", old[k], new[k])
        for k in sorted(old.keys() & new.keys())
        if not same(old[k], new[k])
    ]
    return diffs


def _same_metric(a: tuple[Any, Any, Any], b: tuple[Any, Any, Any]) -> bool:
    return _same_number(a[0], b[0]) and a[1:] == b[1:]


def _same_number(a: Any, b: Any) -> bool:
    try:
        fa, fb = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    return fa == fb or (math.isnan(fa) and math.isnan(fb))
