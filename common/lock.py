"""One run per workdir: an OS file lock held from a run's first write until its process ends.

``claim(workdir)`` takes ``workdir/.lock`` with ``fcntl.flock`` (non-blocking) and writes the
holder's pid into it. A second process that claims the same workdir gets
:class:`errors.WorkdirBusyError` at once, naming the holder, before it writes anything. The OS
drops the lock when its process ends, however it ends (kill -9 included), so a lock file left
by a killed run is simply taken over. Within one process claims are re-entrant (a sweep and
the runs inside it, a resumed phase) and held until ``release`` or the end of the process.
"""

import fcntl
import os
import pathlib

from common.errors import WorkdirBusyError

LOCK_FILE = ".lock"

_held = {}      # resolved workdir -> open file object holding the lock


def claim(workdir):
  """Hold ``workdir``'s lock for this process (creating the folder); raises
  WorkdirBusyError if another live process holds it."""
  workdir = pathlib.Path(workdir)
  key = workdir.resolve()
  if key in _held:
    return
  workdir.mkdir(parents=True, exist_ok=True)
  path = workdir / LOCK_FILE
  f = open(path, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
  try:
    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    f.seek(0)
    holder = f.read().strip() or "unknown"
    f.close()
    raise WorkdirBusyError(
        f"{workdir} is in use by another run (pid {holder}); wait for it to finish, or give "
        "this run another --workdir.") from None
  f.seek(0)
  f.truncate()
  f.write(f"{os.getpid()}\n")
  f.flush()
  _held[key] = f


def release(workdir=None):
  """Give up ``workdir``'s lock (every lock this process holds when None)."""
  keys = list(_held) if workdir is None else [pathlib.Path(workdir).resolve()]
  for key in keys:
    f = _held.pop(key, None)
    if f is not None:
      fcntl.flock(f.fileno(), fcntl.LOCK_UN)
      f.close()


def held(workdir):
  return pathlib.Path(workdir).resolve() in _held
