"""Every error a user can cause, in one leaf module (it imports nothing of the library).

Each one's message says what was wrong and what to do; the command line (``common/cli.py``)
prints it as one line, without a traceback, and exits with status 1. Raise them before any
data is read or any file is written wherever the mistake can be seen that early.
"""


class ConfigError(ValueError):
  """The config asks for something that does not exist or cannot work."""


class DataNotFoundError(FileNotFoundError):
  """A data source is missing or not prepared; the message says what is expected and where."""


class DataError(ValueError):
  """A data source is there but cannot be used (damaged, wrong format or shape, an empty class);
  the message names the file and the reason."""


class ConfigMismatchError(ValueError):
  """The workdir holds a run made with another config."""


class WorkdirBusyError(RuntimeError):
  """Another live process is running in the same workdir (common/lock.py)."""


class CheckpointError(RuntimeError):
  """Checkpoints exist but none can be read; the message says what to delete."""


class NonFiniteError(FloatingPointError):
  """A metric became NaN or Inf; the message says where and which checkpoint is kept."""


class Interrupted(Exception):
  """Not a failure: the run stopped at ``max_steps_per_invocation`` with its checkpoint saved;
  re-running the same command continues it."""


class Stopped(Exception):
  """Not a failure either: SIGTERM or Ctrl-C stopped the run at a step boundary, with its
  checkpoint saved; re-running the same command continues it. ``exit_code``: 128 + the
  signal's number, as a shell reports a process stopped by it."""

  def __init__(self, message, exit_code):
    super().__init__(message)
    self.exit_code = exit_code


# Printed as one line by the command line; anything else is a bug and keeps its traceback.
USER_ERRORS = (ConfigError, DataNotFoundError, DataError, ConfigMismatchError, NonFiniteError,
               WorkdirBusyError, CheckpointError)
