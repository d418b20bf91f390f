"""The lab state file ``WORKDIR/lab.json``: what another process needs to find and stop a lab.

It holds the secrets, so it is written atomically with mode 0600.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError

SCHEMA_VERSION = 1
STATE_FILE_NAME = "lab.json"


def state_path(workdir: Path) -> Path:
    return Path(workdir) / STATE_FILE_NAME


def write_state(workdir: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus schema_version) atomically: tmp file with 0600, then rename."""
    target = state_path(workdir)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    payload = json.dumps({"schema_version": SCHEMA_VERSION, **state}, indent=2)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(payload + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_state(workdir: Path) -> dict[str, Any] | None:
    """The state written by :func:`write_state`, or None when there is none."""
    path = state_path(workdir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabcapError(f"cannot read lab state file {path}: {exc}") from exc
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise LabcapError(
            f"lab state file {path} has schema_version {version!r}; this labcap reads "
            f"{SCHEMA_VERSION}: stop that lab with the labcap that started it"
        )
    return data


def remove_state(workdir: Path) -> None:
    state_path(workdir).unlink(missing_ok=True)
