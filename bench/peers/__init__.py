"""Adapters that run each scheduler the benchmark compares, one module per system."""
