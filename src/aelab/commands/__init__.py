"""The commands: train, evaluate, apply, check, export, and the job they share (job.py)."""
