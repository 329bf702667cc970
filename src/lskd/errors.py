"""Expected errors: the CLI prints them as one line (no traceback) and exits with code
2.
"""


class LskdError(Exception):
    """An expected, user-fixable error whose message names the bad key or file."""


class ConfigError(LskdError):
    """A configuration key has a bad value."""


class DataError(LskdError, ValueError):
    """A data file or directory is missing, unreadable or inconsistent."""


class CheckpointError(LskdError):
    """A checkpoint is missing, corrupt, unsafe or of the wrong kind."""


class OutputError(LskdError, OSError):
    """An output file could not be written (disk full, no permission); nothing was
    left behind under its name."""
