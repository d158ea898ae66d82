"""The benchmark suite: `make bench` (python -m bench). It measures; it asserts nothing."""
