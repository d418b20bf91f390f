"""Defaults a lab repeats on every run: ``labcap.toml`` (or ``pyproject.toml``'s
``[tool.labcap]``) and ``LABCAP_<KEY>`` environment variables.

Precedence, highest first: the command-line flag, the environment, the file, the option's
own default. A file's keys are the ``config`` names the settings records give their options
(``labcap.options``); an unknown key is one error line listing the valid ones. Which file:
``$LABCAP_CONFIG``, else ``./labcap.toml``, else ``./pyproject.toml`` if it has
``[tool.labcap]``. Standard library only (read before ``--help``).

Example ``labcap.toml``::

    host = "http://127.0.0.1:8000"
    slo = ["p95=800ms", "error_pct=1"]
    expected_users = 40
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcap.errors import LabcapError

# config key -> what it sets (every option whose record names this key takes it)
KEYS = {
    "host": "--host: the deployment's base URL",
    "mlflow_url": "--mlflow-url: MLflow's URL when it differs from --host",
    "scenario": "--scenario",
    "slo": "--slo, a list: the objectives",
    "expected_users": "--expected-users: concurrent users the lab expects",
    "step_duration": "--step-duration",
    "max_regression": "--max-regression, a list: the gate's margins",
}
ENV_PREFIX = "LABCAP_"


def env_var(key: str) -> str:
    """The environment variable of a config key: ``slo`` -> ``LABCAP_SLO``."""
    return ENV_PREFIX + key.upper()


@dataclass(frozen=True)
class ConfigFile:
    path: Path | None
    values: dict[str, Any]


def config_path(cwd: Path | None = None) -> tuple[Path | None, bool]:
    """The file to read and whether it is a pyproject.toml (read its [tool.labcap])."""
    explicit = os.environ.get("LABCAP_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise LabcapError(f"LABCAP_CONFIG={explicit}: no such file")
        return path, path.name == "pyproject.toml"
    here = cwd or Path.cwd()
    if (here / "labcap.toml").is_file():
        return here / "labcap.toml", False
    if (here / "pyproject.toml").is_file():
        return here / "pyproject.toml", True
    return None, False


def load_config(cwd: Path | None = None) -> ConfigFile:
    """The config file's values (empty when there is none); one error line when bad."""
    path, is_pyproject = config_path(cwd)
    if path is None:
        return ConfigFile(None, {})
    import tomllib  # only when there is a file: `labcap --help` stays light

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise LabcapError(
            f"{path}: not a readable TOML file ({' '.join(str(e).split())})"
        ) from None
    if is_pyproject:
        data = data.get("tool", {}).get("labcap", {})
        if not isinstance(data, dict):
            raise LabcapError(f"{path}: [tool.labcap] must be a table")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise LabcapError(
            f"{path}: unknown key {unknown[0]!r}; valid keys are {', '.join(sorted(KEYS))}"
        )
    for key, value in data.items():
        ok = isinstance(value, str | int | float) and not isinstance(value, bool)
        if isinstance(value, list):
            ok = all(isinstance(v, str | int | float) for v in value)
        if not ok:
            raise LabcapError(f"{path}: {key} must be a string, a number or a list of them")
    return ConfigFile(path, dict(data))
