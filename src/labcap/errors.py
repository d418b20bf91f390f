"""The user-facing error types. ``cli.py`` turns each into one stderr line and an exit code."""

from __future__ import annotations


class LabcapError(Exception):
    """A problem the user can fix (bad input, unreachable target). Exit code 2."""

    exit_code = 2


class RunFailedError(LabcapError):
    """The run itself could not be carried out. Exit code 1."""

    exit_code = 1


class MissingExtraError(LabcapError):
    """An optional dependency is not installed; says which extra brings it."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"{module} is not installed: pip install 'labcap[{extra}]' brings it")
