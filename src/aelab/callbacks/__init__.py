"""Callbacks use only the module API (encode, decode, reconstruct, sample, interpolate) and the datamodule."""
