"""How a typed settings record says which command-line option each of its fields is.

A field's ``metadata["cli"]`` holds the option's flags and how it reads (its ``--help``
text, metavar, choices ...); its name and default are the option's. ``labcap.cli`` turns a
record's fields into the command's options, in field order. Standard library only: the
records are read before any of the code they configure is imported (``labcap --help``).
"""

from __future__ import annotations

from typing import Any


def option(*flags: str, **how: Any) -> dict[str, Any]:
    """A field's command-line option: its flags, and click's keywords for it (``choices``
    for a fixed list of values, ``type`` Path, int or float)."""
    return {"cli": {"flags": flags, **how}}


def argument(**how: Any) -> dict[str, Any]:
    """A field's positional argument (named after the field; ``type`` Path, ``nargs``)."""
    return {"cli": {"argument": True, **how}}
