"""What every layer uses: errors, the config builder, atomic file writes (files.py) and seeded blocks (rng.py)."""
