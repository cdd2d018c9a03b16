"""Evaluators run on a trained model at the end of training or by `aelab-eval eval=<suite>`."""
