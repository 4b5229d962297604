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


class RunDirInUse(UserError):
    """The run dir holds a finished run, or another process holds its lock: nothing is written."""


class RunFailed(UserError):
    """The machine failed the run (full disk, unwritable dir, out of memory): one line naming the
    cause; exit status 1, not the 2 of a refused input."""

    exit_code = 1


class RunInterrupted(Exception):
    """SIGTERM (SLURM time-out or preemption) or Ctrl-C stopped a run; it can be resumed."""

    def __init__(self, signal_name: str, epoch: int):
        super().__init__(f"interrupted by {signal_name} at epoch {epoch}")
        self.signal_name, self.epoch = signal_name, epoch

    @property
    def exit_code(self) -> int:
        return 143 if self.signal_name == "SIGTERM" else 130  # 128 + signal number, as shells report it


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, cut to 200 characters: enough to name the cause
    inside a one-line error, never a parser's multi-line dump."""
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else "no message"
