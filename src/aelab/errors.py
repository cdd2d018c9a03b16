"""Errors that the CLI reports as one line and a non-zero exit (no traceback)."""


class AelabError(Exception):
    """Base class: a user-facing problem with a message that says what is wrong and what would be right."""


class ConfigError(AelabError):
    """The composed configuration cannot work (bad value, unknown loss term, impossible shape)."""


class DataError(AelabError):
    """A dataset file is missing, corrupt or cannot be fetched."""


class CheckpointError(AelabError):
    """A checkpoint is missing, unreadable, unsafe or does not match the model."""
