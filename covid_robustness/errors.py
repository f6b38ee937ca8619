"""The one exception a user can cause: a bad name, value or path."""


class ConfigError(ValueError):
    """Raised with one sentence that names the bad value and what would be accepted."""
