"""Benchmarks of mcp-avaya-workflows against its baselines, measured side by side in one run.

Run `python -m bench` from the project folder to rewrite docs/benchmarks.md.
"""
