"""A typed settings record's fields as click options (``labcap.options`` says how each reads).

Beside click's own keywords a field's ``metadata["cli"]`` may name a ``unit`` (checked with
``labcap.units`` as it is read), ``deprecated`` spellings (hidden, one warning line per use)
and a ``config`` key (flag > ``LABCAP_<KEY>`` > labcap.toml > default; ``labcap.config``).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from labcap.config import ConfigFile, env_var, load_config
from labcap.errors import LabcapError
from labcap.units import UNITS, Unit

_DEPRECATED = "_deprecated_"


class UnitType(click.ParamType):
    """A value read with one of labcap.units' parsers: its text kept, or the parsed value."""

    def __init__(self, unit: Unit, flag: str) -> None:
        self.unit, self.flag, self.name = unit, flag, unit.name

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None or (not self.unit.keep_text and not isinstance(value, str)):
            return value
        try:
            parsed = self.unit.parse(value, what=self.flag)
        except LabcapError as e:  # the parser's line names the option: no click prefix
            raise click.UsageError(str(e), ctx) from None
        return str(value).strip() if self.unit.keep_text else parsed


@functools.lru_cache(maxsize=4)
def _config_in(cwd: str) -> ConfigFile:
    return load_config(Path(cwd))


def config_file() -> ConfigFile:
    """This directory's labcap.toml / [tool.labcap] (read once per process and directory)."""
    return _config_in(str(Path.cwd()))


class ConfiguredOption(click.Option):
    """An option whose default may come from the environment or the config file; which one
    it came from is the context's parameter source (DEFAULT_MAP stands for the file)."""

    def __init__(self, *args: Any, config_key: str, **kwargs: Any) -> None:
        super().__init__(*args, envvar=env_var(config_key), show_envvar=True, **kwargs)
        self.config_key = config_key

    def consume_value(self, ctx: click.Context, opts: Any) -> tuple[Any, ParameterSource]:
        value, source = super().consume_value(ctx, opts)
        if source in (ParameterSource.DEFAULT, None):
            try:
                cfg = config_file()
            except LabcapError as e:
                raise click.UsageError(str(e), ctx) from None
            if self.config_key in cfg.values:
                value = cfg.values[self.config_key]
                if self.multiple and not isinstance(value, list):
                    value = [value]
                return value, ParameterSource.DEFAULT_MAP
        return value, source


def _deprecation(new: str, old: str) -> None:
    click.echo(f"labcap: warning: {old} is deprecated; use {new}", err=True)


def resolve_deprecated(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """A command's parameters with each deprecated spelling's value moved to its option (one
    warning line each; the new spelling wins when both are given)."""
    aliases = getattr(ctx.command.callback, "labcap_deprecated", {})
    values = dict(params)
    for param, (name, new, old, fmt) in aliases.items():
        value = values.pop(param, None)
        if value is None or value == ():
            continue
        _deprecation(new, old)
        if ctx.get_parameter_source(name) != ParameterSource.COMMANDLINE:
            values[name] = fmt.format(value) if fmt else value
    return values


def options_of(record: type) -> Any:
    """The click arguments and options of a typed record's fields (``metadata["cli"]``, see
    labcap.options), in field order."""

    def decorate(f: Any) -> Any:
        aliases: dict[str, tuple[str, str, str, str | None]] = {}  # param -> field, new, old, fmt

        @functools.wraps(f)
        def command(**kwargs: Any) -> Any:
            return f(**resolve_deprecated(click.get_current_context(), kwargs))

        command.labcap_deprecated = aliases

        for fld in reversed(dataclasses.fields(record)):
            how = dict(fld.metadata.get("cli", {}))
            if not how:
                continue
            unit = UNITS[how.pop("unit")] if "unit" in how else None
            deprecated = how.pop("deprecated", ())
            fmt = how.pop("deprecated_value", None)
            config_key = how.pop("config", None)
            if "choices" in how:
                how["type"] = click.Choice(list(how.pop("choices")))
            elif how.get("type") is Path:
                how["type"] = click.Path(path_type=Path)
            if unit is not None:
                how.setdefault("metavar", unit.metavar)
                how["type"] = UnitType(unit, how.get("flags", (fld.name,))[0])
            if fld.default is dataclasses.MISSING:
                how["required"] = True
            else:
                how["default"] = fld.default
            if how.pop("argument", False):
                command = click.argument(fld.name, **how)(command)
                continue
            flags = how.pop("flags")
            for i, old in enumerate(deprecated):
                param = f"{_DEPRECATED}{fld.name}_{i}"
                aliases[param] = (fld.name, flags[0], old, fmt)
                alias_how = {k: v for k, v in how.items() if k in ("multiple", "type")}
                if fmt:
                    alias_how.pop("type", None)
                command = click.option(old, param, hidden=True, default=None, **alias_how)(command)
            if config_key:
                command = click.option(
                    *flags, fld.name, cls=ConfiguredOption, config_key=config_key, **how
                )(command)
            else:
                command = click.option(*flags, fld.name, **how)(command)
        return command

    return decorate


def option_sources(ctx: click.Context) -> dict[str, str]:
    """Where each of a command's options got its value: ``flag``, ``env LABCAP_X``, ``file
    PATH`` or ``default`` (labcap run --dry-run shows them)."""
    sources = {}
    for param in ctx.command.params:
        if param.name is None or param.name.startswith(_DEPRECATED):
            continue
        source = ctx.get_parameter_source(param.name)
        if source == ParameterSource.ENVIRONMENT:
            sources[param.name] = f"env {getattr(param, 'envvar', '')}"
        elif source == ParameterSource.DEFAULT_MAP:
            sources[param.name] = f"file {config_file().path}"
        elif source == ParameterSource.COMMANDLINE:
            sources[param.name] = "flag"
        else:
            sources[param.name] = "default"
    return sources


def progress_options(f: Any) -> Any:
    """``--quiet`` and ``-v``: how much of a long command's live progress stderr shows."""
    f = click.option(
        "-v",
        "--verbose",
        is_flag=True,
        help="Also a progress line per endpoint and window.",
    )(f)
    return click.option(
        "-q",
        "--quiet",
        is_flag=True,
        help="No live status line: only the run's own progress lines (plain, as when stderr "
        "is not a terminal, where the status comes as a plain line every 10 s).",
    )(f)
