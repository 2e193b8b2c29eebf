"""Benchmarks: latency, HTTP load, cold start, indexing, scale (docs/benchmarks.md).

Each is one command (``python -m bench.latency`` ...; ``python -m bench all`` runs them all),
writes its figures as JSON to ``var/bench/results/`` and prints a Markdown table. Nothing here
is imported by the service or the tests' timing: targets are measured, never asserted.
"""
