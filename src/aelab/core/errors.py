"""Errors that the CLI reports as one line and a non-zero exit (no traceback)."""


class AelabError(Exception):
    """Base class: a user-facing problem with a message that says what is wrong and what would be right."""


class ConfigError(AelabError):
    """The composed configuration cannot work (bad value, unknown loss term, impossible shape)."""


class DataError(AelabError):
    """A dataset file is missing, corrupt or cannot be fetched."""


class CheckpointError(AelabError):
    """A checkpoint is missing, unreadable, unsafe or does not match the model."""


def positive_int(key: str, value: object) -> int:
    """`value` if it is a positive integer, else a ConfigError naming the config key."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    return value


class DivergenceError(AelabError):
    """Training produced a non-finite loss."""
