"""Errors that mean the user gave bad input (a file, a format, a config value).

Command-line entry points print them as one line and exit non-zero, with no traceback.
"""


class UserError(Exception):
    """Bad input from the user; the message says what is wrong and what was expected."""


class DataError(UserError):
    """An interaction file that cannot be read or processed."""


class ConfigError(UserError):
    """A config value that is out of range or inconsistent."""


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite: the run is failed, never reported with NaN scores."""
