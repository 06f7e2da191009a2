"""Benchmarks scored the way lm-evaluation-harness 0.4 scores them."""
