"""Encoders map (B, *shape) to features (B, out_dim); decoders map a latent (B, d) back to (B, *shape)."""
