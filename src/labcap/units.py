"""The one parser for every value with a unit that labcap takes on its command line, in
its config file or from its environment.

- durations in Go's / Locust's form: ``1h30m``, ``90s``, ``1m30s``, ``250ms``, ``1.5m``; a
  plain number is seconds (``90``);
- memory in Kubernetes' quantity form: ``4Gi``, ``500Mi``, ``1.5G``, ``512M``, plain bytes;
- CPUs in Kubernetes' form: ``2``, ``0.5``, ``500m`` (millicores);
- user counts: a positive whole number; user steps: ``5,10,20``;
- percentages: ``10%`` or ``10``.

Each parser raises ``LabcapError`` with one line naming the option (``what``) and an
example of the accepted form. Standard library only (read before ``--help``).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labcap.errors import LabcapError

_DURATION_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(text: Any, *, what: str = "duration", allow_zero: bool = False) -> float:
    """``'1h30m'``, ``'1m30s'``, ``'90s'``, ``'250ms'``, ``'1.5m'`` or ``'90'`` -> seconds."""
    raw = str(text).strip().replace(" ", "")
    if _NUMBER.fullmatch(raw):
        seconds = float(raw)
    else:
        parts = _DURATION_PART.findall(raw)
        units = [u for _, u in parts]
        if (
            not parts
            or "".join(n + u for n, u in parts) != raw
            or len(set(units)) != len(units)
            or units != sorted(units, key=lambda u: -_DURATION_UNITS_S[u])
        ):
            raise LabcapError(
                f"{what} {text!r} is not a duration: use e.g. 90s, 1m30s, 1h30m or 90 (seconds)"
            )
        seconds = sum(float(n) * _DURATION_UNITS_S[u] for n, u in parts)
    if seconds < 0 or (seconds == 0 and not allow_zero) or not math.isfinite(seconds):
        raise LabcapError(f"{what} {text!r} must be greater than zero")
    return round(seconds, 6)


def parse_duration_whole_s(text: Any, *, what: str = "duration") -> int:
    """A duration in whole seconds (``'1h'`` -> 3600); at least one second."""
    seconds = parse_duration(text, what=what)
    if seconds < 1:
        raise LabcapError(f"{what} {text!r} must be at least 1s")
    return round(seconds)


def _plain(value: float) -> str:
    """A number without an exponent (which no duration parser reads): 12.5, 0.000125."""
    return format(value, ".6f").rstrip("0").rstrip(".") or "0"


def format_duration(seconds: float) -> str:
    """Seconds as the shortest Go-style text: 5400 -> '1h30m', 90 -> '1m30s', 0.25 -> '250ms'."""
    if seconds < 1:
        return f"{_plain(seconds * 1000)}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{_plain(seconds)}s"
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    text = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return text or "0s"


_MEMORY_SUFFIX = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_QUANTITY = re.compile(r"(\d+(?:\.\d+)?)([a-zA-Z]*)")
GIB = 2**30


def parse_memory_bytes(text: Any, *, what: str = "memory") -> int:
    """Kubernetes' memory quantity: ``'4Gi'``, ``'500Mi'``, ``'1.5G'``, ``'1048576'`` -> bytes."""
    m = _QUANTITY.fullmatch(str(text).strip())
    if not m or m.group(2) not in _MEMORY_SUFFIX:
        raise LabcapError(
            f"{what} {text!r} is not a memory size: use Kubernetes' form, e.g. 4Gi, 500Mi or 2G"
        )
    value = float(m.group(1)) * _MEMORY_SUFFIX[m.group(2)]
    if value <= 0:
        raise LabcapError(f"{what} {text!r} must be greater than zero")
    return int(value)


def parse_memory_gib(text: Any, *, what: str = "memory") -> float:
    """A memory quantity in GiB (``'4Gi'`` -> 4.0, ``'512Mi'`` -> 0.5). A bare number is GiB,
    as labcap's ``--mem-per-user 4`` always meant (Kubernetes would read it as bytes)."""
    raw = str(text).strip()
    if _NUMBER.fullmatch(raw):
        value = float(raw)
        if value <= 0:
            raise LabcapError(f"{what} {text!r} must be greater than zero")
        return value
    return round(parse_memory_bytes(raw, what=what) / GIB, 6)


def parse_cpu_cores(text: Any, *, what: str = "CPU") -> float:
    """Kubernetes' CPU quantity: ``'2'``, ``'0.5'``, ``'500m'`` -> cores."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(m?)", str(text).strip())
    if not m:
        raise LabcapError(f"{what} {text!r} is not a CPU amount: use e.g. 2, 0.5 or 500m")
    cores = float(m.group(1)) / (1000 if m.group(2) else 1)
    if cores <= 0:
        raise LabcapError(f"{what} {text!r} must be greater than zero")
    return cores


def parse_user_count(text: Any, *, what: str = "users") -> int:
    """A positive whole number of users (``'40'`` -> 40)."""
    s = str(text).strip()
    if not re.fullmatch(r"[0-9]+", s) or int(s) <= 0:  # isdigit() takes '²'; int() not
        raise LabcapError(f"{what} {text!r} is not a positive whole number")
    return int(s)


def parse_user_steps(text: Any, *, what: str = "user steps") -> tuple[int, ...]:
    """``'5,10,20'`` -> (5, 10, 20); counts must be positive integers."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise LabcapError(f"{what} {text!r} are empty: use e.g. 5,10,20")
    for p in parts:
        if not re.fullmatch(r"[0-9]+", p) or int(p) <= 0:
            raise LabcapError(f"user step {p!r} in {text!r} is not a positive whole number")
    return tuple(int(p) for p in parts)


def parse_percent(text: Any, *, what: str = "percentage") -> float:
    """``'10%'`` or ``'10'`` -> 10.0 (percent)."""
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*%?\s*", str(text))
    if not m:
        raise LabcapError(f"{what} {text!r} is not a percentage, e.g. 10%")
    return float(m.group(1))


@dataclass(frozen=True)
class Unit:
    """How an option's text is read: ``parse`` checks (and converts) it; ``keep_text`` says the
    settings record keeps the text (its reader parses it again with the same parser)."""

    name: str
    parse: Callable[..., Any]
    metavar: str
    keep_text: bool = True


UNITS: dict[str, Unit] = {
    u.name: u
    for u in (
        Unit("duration", parse_duration, "DURATION"),
        Unit("duration_or_zero", functools.partial(parse_duration, allow_zero=True), "DURATION"),
        Unit("duration_whole_s", parse_duration_whole_s, "DURATION", keep_text=False),
        Unit("memory_gib", parse_memory_gib, "SIZE", keep_text=False),
        Unit("cpu", parse_cpu_cores, "CPU", keep_text=False),
        Unit("users", parse_user_count, "N", keep_text=False),
        Unit("user_steps", parse_user_steps, "N,N,..."),
    )
}
