"""The run directory: written atomically, read back with validation.

Layout of ``runs/<name>/``::

    manifest.json      schema_version, status, target, scenario, load plan, SLOs, environment
                       (read as a labcap.model.Manifest: RunDir.read_manifest)
    journal.jsonl      append-only window records while the run is live (removed once
                       the Parquet tables are written)
    windows.parquet    one row per (window, endpoint, method): counts, percentiles, HDR histogram
    failures.parquet   one row per (window, endpoint, method, reason): count
    report.html        written by ``labcap report`` (and the demo)

Every file is written to a temporary name in the same directory, fsynced and
renamed, so a reader sees the old file or the new one, never half of one.

A manifest of an older schema major is brought up to this one in memory, one major at a
time (``MIGRATIONS``, asv's ``update_to_N``); the file itself is never rewritten by a read.
A newer major is refused with a message that says to upgrade.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError
from labcap.model import RUN_STATUSES, SCHEMA_MAJOR, SCHEMA_VERSION, SIDE_SEP, SIDES, Manifest
from labcap.slo import SLO_RECORD_KEYS, Slo, parse_slo

MANIFEST = "manifest.json"
JOURNAL = "journal.jsonl"
WINDOWS = "windows.parquet"
FAILURES = "failures.parquet"
LOCK = ".lock"
# collector tables written beside the windows (their schemas live with their collectors)
GPU_SAMPLES = "gpu_samples"
GPU_PROCESSES = "gpu_processes"

WINDOW_COLUMNS = [
    "window_index",
    "step_index",
    "start_s",
    "end_s",
    "settling",
    "target_users",
    "active_users",
    "endpoint",
    "method",
    "requests",
    "failures",
    "mean_us",
    "p50_us",
    "p90_us",
    "p95_us",
    "p99_us",
    "max_us",
    "hdr",
]
FAILURE_COLUMNS = ["window_index", "step_index", "endpoint", "method", "reason", "count"]
# a paired run's windows and failures carry one more column: which side (labcap.model.SIDES)
SIDE_COLUMN = "side"


def split_sides(frame: Any) -> Any:
    """Endpoint names tagged by the engine of a paired run ("candidate\\x1fGET /x") split
    into a ``side`` column and the plain name; a frame of a one-sided run is returned as is."""
    if not len(frame) or SIDE_COLUMN in frame.columns:
        return frame
    names = frame["endpoint"].astype(str)
    tagged = names.str.contains(SIDE_SEP, regex=False)
    if not tagged.any():
        return frame
    parts = names.str.split(SIDE_SEP, n=1, expand=True)
    out = frame.assign(endpoint=parts[1].where(tagged, names))
    out.insert(len(out.columns), SIDE_COLUMN, parts[0].where(tagged, ""))
    return out


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None:  # name the file, not the temp
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


def atomic_write_json(path: Path, obj: Any, *, mode: int = 0o644) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), mode=mode)


def atomic_write_parquet(path: Path, frame: Any) -> None:
    """Write a pandas DataFrame as Parquet, atomically."""
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on a run directory: two runs never write the same one."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabcapError(f"{run_dir}: another labcap run is writing this directory") from None
        yield
    finally:
        os.close(fd)


def prepare_run_dir(run_dir: Path, *, overwrite: bool = False) -> None:
    """Refuse to mix two runs' results in one directory unless asked to."""
    if run_dir.exists() and (run_dir / MANIFEST).exists() and not overwrite:
        raise LabcapError(
            f"{run_dir} already holds a run: choose another --out or pass --overwrite"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        stale = [run_dir / n for n in (MANIFEST, JOURNAL, "report.html")]
        old_tables = sorted(run_dir.glob("*.parquet")) + sorted(run_dir.glob("*.jsonl"))
        for path in stale + old_tables:  # every table (and append log) of the old run
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def schema_major(version: Any, where: Path) -> int:
    """The major of a manifest's ``schema_version``; refuses one this labcap cannot read."""
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        raise LabcapError(f"{where}: schema_version {version!r} is not a version") from None
    if major > SCHEMA_MAJOR:
        raise LabcapError(
            f"{where}: written by a newer labcap (schema {version}, this one reads "
            f"{SCHEMA_MAJOR}.x): upgrade labcap to read it"
        )
    if major < 1:
        raise LabcapError(f"{where}: schema_version {version!r} is older than any labcap release")
    return major


def update_to_2(data: dict[str, Any], where: Path) -> dict[str, Any]:
    """1.x -> 2.0: the SLOs, stored as expression strings, become records."""
    slos = data.get("slos", [])
    if not isinstance(slos, list) or not all(isinstance(s, str) for s in slos):
        raise LabcapError(f"{where}: field 'slos' must be a list of SLO expressions (strings)")
    try:
        records = [parse_slo(s).to_dict() for s in slos]
    except LabcapError as e:
        raise LabcapError(f"{where}: field 'slos' holds a bad SLO: {e}") from None
    return dict(data, slos=records, schema_version="2.0")


# MIGRATIONS[n] brings a manifest of major n - 1 to major n
MIGRATIONS: dict[int, Callable[[dict[str, Any], Path], dict[str, Any]]] = {2: update_to_2}


def migrate(data: dict[str, Any], where: Path) -> dict[str, Any]:
    """A manifest of any readable major, brought up to this labcap's, one major at a time."""
    major = schema_major(data["schema_version"], where)
    while major < SCHEMA_MAJOR:
        major += 1
        data = MIGRATIONS[major](data, where)
    return data


def canonical_slos(items: Any) -> list[dict[str, Any]]:
    """SLOs in the stored form, from records, ``Slo`` objects or expressions (a writer's)."""
    out = []
    for item in items:
        if isinstance(item, str):
            item = parse_slo(item)
        elif not isinstance(item, Slo):
            item = Slo.from_dict(item)
        out.append(item.to_dict())
    return out


_STEP_FIELDS = ("index", "users", "start_s", "duration_s", "settle_s")


def check_manifest_shape(data: dict[str, Any], where: Path) -> None:
    """The fields readers rely on have the types they expect (a hand-edited manifest)."""

    def bad(field: str, why: str) -> LabcapError:
        return LabcapError(f"{where}: field {field!r} {why}")

    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and value == value

    if not isinstance(data["scenario"], dict) or not isinstance(data["scenario"].get("name"), str):
        raise bad("scenario", "must be an object with a string 'name'")
    if not isinstance(data.get("status_reasons", []), list):
        raise bad("status_reasons", "must be a list")
    if not isinstance(data["slos"], list):
        raise bad("slos", f"must be a list of SLO records {{{', '.join(SLO_RECORD_KEYS)}}}")
    for s in data["slos"]:
        try:
            Slo.from_dict(s)
        except LabcapError as e:
            raise bad("slos", f"holds a bad SLO: {e}") from None
    load = data["load"]
    if not isinstance(load, dict):
        raise bad("load", "must be an object with window_s, spawn_rate, steps")
    for key in ("window_s", "spawn_rate"):
        if not number(load.get(key)) or not 0 < load[key] < float("inf"):
            raise bad(f"load.{key}", "must be a number above zero")
    steps = load.get("steps")
    if not isinstance(steps, list):
        raise bad("load.steps", "must be a list of steps")
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or set(step) != set(_STEP_FIELDS):
            raise bad(f"load.steps[{i}]", f"must have exactly the keys {sorted(_STEP_FIELDS)}")
        if any(not number(step[k]) or abs(step[k]) == float("inf") for k in _STEP_FIELDS):
            raise bad(f"load.steps[{i}]", "holds a value that is not a finite number")
        if step["users"] != int(step["users"]) or step["users"] <= 0:
            raise bad(f"load.steps[{i}].users", "must be a positive whole number")
        if not 0 <= step["settle_s"] < step["duration_s"] or step["start_s"] < 0:
            raise bad(f"load.steps[{i}]", "needs 0 <= settle_s < duration_s and start_s >= 0")
        if step["index"] != i:
            raise bad(f"load.steps[{i}].index", f"is {step['index']!r}, expected {i}")


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunDir:
    """A run directory on disk, read lazily."""

    path: Path
    # a paired run read as one of its sides (labcap.model.SIDES): windows and failures of
    # that side only; None reads every row (a paired run's rows then carry ``side``)
    side: str | None = None
    _checked: dict[Any, dict[str, Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def sides(self) -> tuple[str, ...]:
        """The sides of a paired run (baseline, candidate), or () for a run of one target."""
        stored = self.manifest.get("sides") or {}
        return tuple(s for s in SIDES if s in stored)

    def side_view(self, side: str) -> RunDir:
        """This run read as one of its sides (LabcapError if it has no such side)."""
        if side not in self.sides():
            have = ", ".join(self.sides()) or "none: it is not a paired run"
            raise LabcapError(f"{self.path}: no side {side!r} (its sides: {have})")
        return RunDir(self.path, side=side)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        p = Path(path)
        if not p.is_dir():
            raise LabcapError(f"{p}: no such run directory")
        if not (p / MANIFEST).is_file():
            raise LabcapError(f"{p}: not a labcap run (no {MANIFEST})")
        run = cls(p)
        run.read_manifest()  # validate eagerly: one clear error up front
        return run

    def read_manifest(self) -> Manifest:
        """The manifest as a typed record (current schema; an older one migrated in memory).

        What every reader uses; LabcapError with one clear line for a damaged manifest.
        """
        return Manifest.from_dict(self._read_manifest())

    @property
    def manifest(self) -> dict[str, Any]:
        """The same manifest in its stored form (a copy): for writers that amend it."""
        return copy.deepcopy(self._read_manifest())

    def _read_manifest(self) -> dict[str, Any]:
        where = self.path / MANIFEST
        try:
            data = json.loads(where.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise LabcapError(f"{where}: not valid JSON ({e.msg} at line {e.lineno})") from None
        except UnicodeDecodeError:
            raise LabcapError(f"{where}: not text (damaged or not a manifest)") from None
        except OSError as e:
            raise LabcapError(f"{where}: unreadable ({e.strerror})") from None
        if not isinstance(data, dict) or "schema_version" not in data:
            raise LabcapError(f"{where}: no schema_version; not a labcap manifest")
        schema_major(data["schema_version"], where)
        for key in ("status", "load", "slos", "scenario"):
            if key not in data:
                raise LabcapError(f"{where}: required field {key!r} is missing")
        if data["status"] not in RUN_STATUSES:
            raise LabcapError(f"{where}: unknown status {data['status']!r}")
        data = migrate(data, where)
        check_manifest_shape(data, where)
        if data["status"] == "running" and not _pid_alive(data.get("pid")):
            # The writer died without finalising (SIGKILL, power loss): what it
            # journaled is still there, so the run reads as partial.
            data["status"] = "partial"
            data.setdefault("status_reasons", []).append(
                "the run process ended without finalising (killed?); results read from its journal"
            )
        return self._validity_on_read(data, where)

    def _validity_on_read(self, data: dict[str, Any], where: Path) -> dict[str, Any]:
        """The validity checks again (labcap.validity), once per version of the files."""
        from labcap import validity

        stats = [where.stat()] + [
            p.stat() for p in (self.path / WINDOWS, self.path / JOURNAL) if p.exists()
        ]
        key = tuple((s.st_mtime_ns, s.st_size) for s in stats)
        if key not in self._checked:
            self._checked.clear()
            self._checked[key] = validity.on_read(data, self.windows, self.failures)
        return self._checked[key]

    def write_manifest(self, manifest: Manifest | dict[str, Any]) -> None:
        """Write the manifest; its SLOs in the stored form whatever the writer handed in."""
        where = self.path / MANIFEST
        if isinstance(manifest, Manifest):
            manifest = manifest.to_dict()
        manifest = dict(manifest, schema_version=manifest.get("schema_version", SCHEMA_VERSION))
        if schema_major(manifest["schema_version"], where) < SCHEMA_MAJOR:
            manifest = migrate(manifest, where)  # an older run amended: written in today's form
        elif "slos" in manifest:
            manifest["slos"] = canonical_slos(manifest["slos"])
        atomic_write_json(where, manifest)

    def windows(self) -> Any:
        """Window rows as a DataFrame (from Parquet, or the journal of an unfinished run)."""
        import pandas as pd

        if (self.path / WINDOWS).exists():
            return self._of_side(self._read_parquet(WINDOWS))
        rows = [r for r in read_journal(self.path / JOURNAL) if r.get("kind") == "window"]
        frame = pd.DataFrame(
            [{c: r.get(c) for c in WINDOW_COLUMNS} for r in rows], columns=WINDOW_COLUMNS
        )
        return self._of_side(split_sides(_typed(frame, WINDOW_NUMERIC, self.path / JOURNAL)))

    def _of_side(self, frame: Any) -> Any:
        if self.side is None:
            return frame
        if SIDE_COLUMN not in frame.columns:
            return frame.iloc[0:0]
        return frame[frame[SIDE_COLUMN] == self.side].reset_index(drop=True)

    def failures(self) -> Any:
        import pandas as pd

        if (self.path / FAILURES).exists():
            return self._of_side(self._read_parquet(FAILURES))
        rows = [r for r in read_journal(self.path / JOURNAL) if r.get("kind") == "failure"]
        frame = pd.DataFrame(
            [{c: r.get(c) for c in FAILURE_COLUMNS} for r in rows], columns=FAILURE_COLUMNS
        )
        frame = _typed(frame, ("window_index", "step_index", "count"), self.path / JOURNAL)
        return self._of_side(split_sides(frame))

    def table(self, name: str) -> Any | None:
        """An optional collector table (``host_samples`` ...), or None if the run has none."""
        if not (self.path / f"{name}.parquet").exists():
            return None
        if self.side is not None and name == "steps":  # both sides' summary: not this side's
            return None
        return self._read_parquet(f"{name}.parquet")

    def _read_parquet(self, name: str) -> Any:
        import pandas as pd

        try:
            return pd.read_parquet(self.path / name)
        except Exception as e:  # pyarrow raises several types for damaged files
            raise LabcapError(f"{self.path / name}: unreadable Parquet ({e})") from None


WINDOW_NUMERIC = (
    "window_index",
    "step_index",
    "start_s",
    "end_s",
    "target_users",
    "requests",
    "failures",
)


def _typed(frame: Any, numeric: tuple[str, ...], where: Path) -> Any:
    """Journal rows whose numeric fields are numbers: a damaged journal is named, not a crash."""
    import pandas as pd

    for col in numeric:
        try:
            values = pd.to_numeric(frame[col], errors="raise")
        except (ValueError, TypeError):
            raise LabcapError(f"{where}: damaged record ({col!r} is not a number)") from None
        if len(frame) and values.isna().any():
            raise LabcapError(f"{where}: damaged record ({col!r} is missing)")
    for col in ("endpoint", "method", "reason"):
        if col in frame and not frame[col].map(lambda v: isinstance(v, str)).all():
            raise LabcapError(f"{where}: damaged record ({col!r} is not text)")
    return frame


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Journal lines, skipping a torn last line (the writer died mid-write)."""
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:  # damaged bytes: skipped lines
        for line in f:
            if not line.endswith("\n"):
                break  # torn write at the end: everything before it is whole
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):  # anything else is not a journal record
                out.append(record)
    return out
