"""How a typed settings record says which command-line option each of its fields is.

A field's ``metadata["cli"]`` holds the option's flags and how it reads (its ``--help``
text, metavar, choices ...); its name and default are the option's. ``labcap.cli`` turns a
record's fields into the command's options, in field order. Standard library only: the
records are read before any of the code they configure is imported (``labcap --help``).

Three keywords are labcap's own, not click's:

- ``unit``: a name in ``labcap.units.UNITS`` (``duration``, ``memory_gib``, ``cpu``,
  ``users``, ``user_steps`` ...); the value is checked with that one parser as it is read,
  so every option taking a duration accepts ``1h30m`` and a bad one is one error line;
- ``deprecated``: old spellings of the option (``("--steps",)``), still accepted, hidden
  from ``--help``, each use printing one deprecation line; ``deprecated_value`` (a format
  such as ``"{}ms"``) rewrites an old spelling's value into the new option's form;
- ``config``: the key under which ``labcap.toml`` / ``[tool.labcap]`` and the
  ``LABCAP_<KEY>`` environment variable give the option a default (``labcap.config``).
"""

from __future__ import annotations

from typing import Any

# The one vocabulary (tests/test_vocabulary.py holds every command's --help to it): a
# concept's option is spelled the same in every command that takes it.
VOCABULARY = {
    "--users": "concurrent users per step (N,N,...; run and demo), or auto",
    "--step-duration": "how long each step is held (a duration)",
    "--expected-users": "concurrent users the lab expects (a positive whole number)",
    "--slo": "an objective: [ENDPOINT:]p95=500ms, error_pct=1",
    "--max-regression": "how much worse a metric may get: [ENDPOINT:]p95=10%, error_pct=0.5",
}


def option(*flags: str, **how: Any) -> dict[str, Any]:
    """A field's command-line option: its flags, and click's keywords for it (``choices``
    for a fixed list of values, ``type`` Path, int or float), and labcap's own ``unit``,
    ``deprecated``, ``deprecated_value`` and ``config`` (see the module's docstring)."""
    return {"cli": {"flags": flags, **how}}


def argument(**how: Any) -> dict[str, Any]:
    """A field's positional argument (named after the field; ``type`` Path, ``nargs``)."""
    return {"cli": {"argument": True, **how}}
