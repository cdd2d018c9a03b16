"""Bottlenecks: features (B, F) -> BottleneckOutput(z (B, d), per-sample loss terms, stats to log)."""
