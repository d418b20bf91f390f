"""The recorder's vectorised HDR recording equals hdrh's own record_value, bucket for bucket."""

from __future__ import annotations

import random

import numpy as np

from labcap.histograms import HDR_MAX_US, HDR_MIN_US, new_histogram, record_values


def test_record_values_equals_record_value():
    rng = random.Random(9)
    values = [HDR_MIN_US, HDR_MAX_US, 2047, 2048, 2049, 4095, 4096, 1 << 20, (1 << 31) - 1]
    values += [int(rng.lognormvariate(7, 3)) % HDR_MAX_US + 1 for _ in range(50_000)]
    one, bulk = new_histogram(), new_histogram()
    for v in values:
        one.record_value(v)
    record_values(bulk, values[:1000])
    record_values(bulk, values[1000:])
    assert np.array_equal(np.ctypeslib.as_array(one.counts), np.ctypeslib.as_array(bulk.counts))
    assert (one.total_count, one.min_value, one.max_value) == (
        bulk.total_count,
        bulk.min_value,
        bulk.max_value,
    )
    assert one.encode() == bulk.encode()
    for q in (0, 50, 90, 99, 99.99, 100):
        assert one.get_value_at_percentile(q) == bulk.get_value_at_percentile(q)
