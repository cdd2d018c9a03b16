"""The five parts of `make bench` (scripts/bench.py), one module each, and what they share."""
