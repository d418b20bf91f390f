"""Every ``--json`` output a test sees is checked against its JSON Schema (src/labcap/schemas):
``tests.support.cli.labcap`` and ``invoke`` call ``check_json_output`` on each command they run."""

from __future__ import annotations

import json
from collections.abc import Sequence

import jsonschema

from labcap.schemas import SCHEMA_OF_COMMAND, load_schema

GROUPS = ("probe", "lab")


def schema_name(args: Sequence[object]) -> str | None:
    """The schema a command's --json output follows (None: the command prints no JSON)."""
    argv = [str(a) for a in args]
    if "--json" not in argv or not argv:
        return None
    path = tuple(argv[:2]) if argv[0] in GROUPS else (argv[0],)
    if path == ("run",) and "--dry-run" in argv:
        return "dry-run"
    return SCHEMA_OF_COMMAND.get(path)


def check_json_output(args: Sequence[object], stdout: str) -> None:
    """Validate a command's --json stdout (when it printed any) against its schema."""
    name = schema_name(args)
    if name is None or not stdout.strip():
        return
    jsonschema.validate(json.loads(stdout), load_schema(name))
