"""The seven parts of `make bench` (scripts/bench.py), one module each, what they share (common), and what part 6
runs in the measured processes (stamps: a callback added by a config override; plain_user: the plain loop)."""
