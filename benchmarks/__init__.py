"""qkv's benchmarks, outside the package: ``python -m benchmarks.NAME`` (BENCHMARKS.md says how and what)."""
