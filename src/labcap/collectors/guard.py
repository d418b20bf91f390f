"""A collector that raises never takes the run down: its error becomes a gap.

The runner wraps every collector in ``Guarded``. An exception from start,
stop, tables or status is caught, reported once on the progress channel, and
kept as a warning; the run goes on and ends ``partial`` with the collector's
name and the error as the reason (labcap.validity's collector-gap check).
"""

from __future__ import annotations

from typing import Any

from labcap.collectors.base import CollectorStatus, RunContext


class Guarded:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = str(getattr(inner, "name", type(inner).__name__))
        self.errors: list[str] = []

    def _failed(self, what: str, e: BaseException) -> None:
        msg = f"{what} raised {type(e).__name__}: {' '.join(str(e).split())}"[:300]
        if msg not in self.errors:
            self.errors.append(msg)

    def start(self, ctx: RunContext) -> None:
        try:
            self.inner.start(ctx)
        except Exception as e:
            self._failed("start", e)

    def stop(self) -> None:
        try:
            self.inner.stop()
        except Exception as e:
            self._failed("stop", e)

    def tables(self) -> dict[str, Any]:
        import pandas as pd

        try:
            tables = dict(self.inner.tables())
        except Exception as e:
            self._failed("tables", e)
            return {}
        good = {}
        for name, frame in tables.items():
            if isinstance(name, str) and name.isidentifier() and isinstance(frame, pd.DataFrame):
                good[name] = frame
            else:
                self.errors.append(f"tables returned an unusable table {name!r}; it was dropped")
        return good

    def status(self) -> CollectorStatus:
        try:
            st = self.inner.status()
            name, available, reason, warnings = st.name, st.available, st.reason, st.warnings
        except Exception as e:
            self._failed("status", e)
            name, available, reason, warnings = self.name, False, "", ()
        if self.errors:  # a collector that raised was there, and failed: a gap, not absent
            return CollectorStatus(name, True, reason, tuple(warnings) + tuple(self.errors))
        return CollectorStatus(name, available, reason, tuple(warnings))
