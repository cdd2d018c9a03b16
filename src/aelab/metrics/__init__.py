"""Evaluation metrics beyond the per-step reconstruction ones."""
