"""Densities fitted on a trained model's codes (what sampling and the code-density anomaly score use)."""
