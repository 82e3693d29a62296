"""Throughput benchmark: the bare model, the original's per-image classifier and the pipeline, in one run.

Run `.venv/bin/python -m bench --help`. Not part of the test suite; results go to bench/results/ (git-ignored).
"""
