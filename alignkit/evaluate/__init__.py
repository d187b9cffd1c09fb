"""Evaluation: reward-model metrics, calibration, length diagnostics and ensemble scoring."""
