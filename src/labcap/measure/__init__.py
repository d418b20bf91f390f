"""Measurement: runs, adaptive searches, calibration and startup probes (it drives the
load tests and the collectors)."""
