"""Small real parts for tests and benchmarks, shipped with the package."""
