"""Benchmarks (``make bench``): cold start, warm overhead and memory of our functions, each
measured against a hand-written minimal function in the same run. See ``bench/run.py``."""
