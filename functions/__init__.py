"""Thin per-platform entry modules wrapping the core in ``shared``."""
