"""Benchmarks: not tests, never run in CI. See BENCHMARKS.md for the commands and the numbers."""
