"""HDR histograms of latencies in microseconds: one shape for every window, step and worker,
and the numpy-vectorised reads and writes the load engine and the planner share.

Stdlib, numpy and hdrh only: every layer may import it.
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

# 1 µs .. 1 h at 3 significant digits: a spawn that takes minutes still fits.
HDR_MIN_US, HDR_MAX_US, HDR_DIGITS = 1, 3_600_000_000, 3
SMALL_BATCH = 4096  # record_values: fewer values than this are scatter-added


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HDR_MIN_US, HDR_MAX_US, HDR_DIGITS)


def _bucket_lowest(h: HdrHistogram, indexes: Any) -> tuple[Any, Any]:
    """hdrh's get_value_from_index, vectorised: (lowest value, bucket) of each index."""
    import numpy as np

    bucket = (indexes >> h.sub_bucket_half_count_magnitude) - 1
    sub = (indexes & (h.sub_bucket_half_count - 1)) + h.sub_bucket_half_count
    first = bucket < 0
    sub = np.where(first, sub - h.sub_bucket_half_count, sub)
    bucket = np.where(first, 0, bucket)
    return sub.astype(np.float64) * np.exp2(bucket + h.unit_magnitude), bucket


def histogram_summary(h: HdrHistogram) -> dict[str, float | None]:
    """Mean and percentiles in µs (None when the histogram is empty).

    Same values as hdrh's ``get_value_at_percentile`` / ``get_mean_value``, but
    over the non-empty buckets with numpy: hdrh walks every one of the ~22k
    buckets in Python per call, which stalled the load engine's event loop for
    tens of milliseconds per endpoint and window.
    """
    import numpy as np

    if h.get_total_count() == 0:
        return {k: None for k in ("mean_us", "p50_us", "p90_us", "p95_us", "p99_us", "max_us")}
    counts = np.ctypeslib.as_array(h.counts)
    nonzero = np.flatnonzero(counts)
    bucket_counts = counts[nonzero].astype(np.float64)
    cumulative = np.cumsum(bucket_counts)
    lowest, bucket = _bucket_lowest(h, nonzero)  # the lowest value of each bucket...
    # ...and its median-equivalent value, which hdrh's mean weights by
    medians = lowest + np.floor(np.exp2(bucket + h.unit_magnitude) / 2)

    def at(percentile: float) -> float:
        target = h.get_target_count_at_percentile(percentile)
        pos = min(int(np.searchsorted(cumulative, target)), len(nonzero) - 1)
        return float(h.get_highest_equivalent_value(int(lowest[pos])))

    return {
        "mean_us": float((medians * bucket_counts).sum() / h.get_total_count()),
        "p50_us": at(50),
        "p90_us": at(90),
        "p95_us": at(95),
        "p99_us": at(99),
        "max_us": float(h.get_max_value()),
    }


def count_above(h: HdrHistogram, value_us: float) -> int:
    """How many recorded values lie surely above ``value_us``: those in buckets whose
    lowest value is higher (the bucket holding ``value_us`` itself is not counted)."""
    import numpy as np

    if h.get_total_count() == 0:
        return 0
    counts = np.ctypeslib.as_array(h.counts)
    nonzero = np.flatnonzero(counts)
    lowest, _ = _bucket_lowest(h, nonzero)
    return int(counts[nonzero][lowest > value_us].sum())


def record_values(h: HdrHistogram, values: Any) -> None:
    """``h.record_value(v)`` for every v (ints within the histogram's range), vectorised.

    The same bucket arithmetic as hdrh's ``_counts_index_for``; per request, hdrh's pure
    Python version cost the load generator about 5 µs twice (window and step).
    """
    import numpy as np

    v = np.asarray(values, dtype=np.int64)
    if not len(v):
        return
    _mantissa, bits = np.frexp((v | h.sub_bucket_mask).astype(np.float64))
    bucket = bits.astype(np.int64) - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
    sub = v >> (bucket + h.unit_magnitude)
    index = ((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub - h.sub_bucket_half_count
    counts = np.ctypeslib.as_array(h.counts)
    if len(index) < SMALL_BATCH:
        # a window's few hundred values: scatter-add them; a bincount over all ~23k
        # buckets (allocated, converted, added) cost the event loop ~0.3 ms per window
        np.add.at(counts, index, 1)
    else:
        counts += np.bincount(index, minlength=h.counts_len)[: h.counts_len].astype(counts.dtype)
    h.total_count += len(v)
    h.min_value = min(h.min_value, int(v.min()))
    h.max_value = max(h.max_value, int(v.max()))
