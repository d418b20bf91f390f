"""``labcap gate``'s three modes, chosen by what it is given.

* ``labcap gate RUN`` — RUN is a paired run (``labcap run --candidate-host``): the
  candidate side against the baseline side, window by window (``gate_paired``).
* ``labcap gate HISTORY_DIR CURRENT`` — a directory of past baseline runs: the current run
  against how much the baseline itself moves between runs (``gate_history``).
* ``labcap gate BASELINE CURRENT`` — two runs (``gate``).
"""

from __future__ import annotations

from labcap.errors import LabcapError
from labcap.planner.gate import GateResult, compare_paths, thresholds_from_options
from labcap.planner.gate_history import gate_history, is_history
from labcap.planner.gate_paired import gate_paired
from labcap.planner.settings import GateOptions
from labcap.units import parse_duration


def gate_with_options(opts: GateOptions) -> GateResult:
    """The margins' text parsed (one LabcapError if bad), then the mode's comparison."""
    thresholds = thresholds_from_options(
        opts.max_regressions,
        min_effect_ms=parse_duration(opts.min_effect, what="--min-effect", allow_zero=True) * 1000,
        alpha=opts.alpha,
        min_windows=opts.min_windows,
    )
    if opts.current is None:
        if is_history(opts.baseline):
            raise LabcapError(
                f"{opts.baseline}: a baseline history needs the run to judge: "
                "labcap gate HISTORY_DIR CURRENT"
            )
        return gate_paired(opts.baseline, thresholds)
    if is_history(opts.baseline):
        return gate_history(opts.baseline, opts.current, thresholds)
    return compare_paths(opts.baseline, opts.current, thresholds)


__all__ = ["gate_with_options"]
