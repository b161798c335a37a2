"""Helpers for tests, benchmarks and demos: a reference upstream and a threaded server runner."""
