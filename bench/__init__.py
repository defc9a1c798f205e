"""The benchmark harness: ``python -m bench.run`` (``make bench``); results in docs/benchmarks.md."""
