"""Reconstruction likelihoods and penalties that need the networks."""
