"""Errors a user can fix from the command line; their messages name the value and the fix."""


class ConfigError(ValueError):
    """A configuration value is not allowed."""


class DataError(RuntimeError):
    """GLUE data could not be read as asked."""


class ModelLoadError(RuntimeError):
    """A model or tokenizer could not be found locally or on the hub."""
