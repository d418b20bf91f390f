"""The fault → outcome matrix: each fault test adds its row; printed after the run."""

from __future__ import annotations

MATRIX: list[dict[str, str]] = []


def pytest_terminal_summary(terminalreporter):
    if not MATRIX:
        return
    cols = ["fault", "status", "reason", "windows", "plan", "gate", "left"]
    rows = [[r.get(c, "") for c in cols] for r in MATRIX]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    tr = terminalreporter
    tr.section("fault -> outcome matrix")
    tr.write_line("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        tr.write_line("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
