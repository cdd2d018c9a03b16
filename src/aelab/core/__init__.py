"""Errors and the config builder that every layer uses."""
