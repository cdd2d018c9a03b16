"""Experiment tracking: W&B logger set-up and the run folder's result.json."""
