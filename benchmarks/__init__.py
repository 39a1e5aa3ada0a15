"""Benchmarks of execdesk. Each `bench_<area>.py` module defines `run() -> list[dict]`
(keys: name, value, unit, target; optional note, ok). `make bench` runs them all
(`python -m benchmarks`) and writes docs/benchmarks.md."""
