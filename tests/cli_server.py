"""A process that has imported TensorFlow once and forks a fresh copy of itself for every
command-line run the tests ask for (``tests/cli.py``'s ``run``).

Importing TensorFlow takes about 10 s of a small CPU, more than most of the tests' runs
themselves. Here it happens once per test process; each run is then ``python script args``
in a forked child: the script executed as ``__main__`` with its own ``sys.argv``, environment,
stdout and stderr files, and exit status, the interpreter ending as it would (``atexit``
handlers included). Nothing of TensorFlow's runtime (no op, no device, no thread) exists before
the fork, so every child starts as a new process would. Settings read only when TensorFlow is
imported (``TF_CPP_MIN_LOG_LEVEL``) are this process's.

Protocol, one JSON object per line: the request ``{"script", "args", "env", "root", "stdout",
"stderr"}`` on stdin (``root``: the checkout whose code the run imports, first on ``sys.path``);
the replies ``{"pid": child}`` when the child starts, then ``{"returncode": rc}`` when it ends.
"""

import json
import os
import runpy
import sys


def _child(request):
  """Run the request in this (forked) process; never returns."""
  for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
    f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(f, fd)
    os.close(f)
  devnull = os.open(os.devnull, os.O_RDONLY)
  os.dup2(devnull, 0)
  os.environ.clear()
  os.environ.update(request["env"])
  sys.argv = [request["script"], *request["args"]]
  # The tests' checkout first, then the script's folder (which ``python script`` puts first),
  # in place of this process's own first entry: an editable install or PYTHONPATH that points at
  # another clone must not decide which ``common`` the run imports.
  first = [request["root"], os.path.dirname(os.path.abspath(request["script"]))]
  sys.path[:] = first + [p for p in sys.path[1:] if p not in first]
  runpy.run_path(request["script"], run_name="__main__")
  sys.exit(0)


def main():
  import tensorflow  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
  import keras  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
  replies = sys.stdout
  for line in sys.stdin:
    request = json.loads(line)
    replies.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
      _child(request)         # SystemExit ends the child as the interpreter would end
    replies.write(json.dumps({"pid": pid}) + "\n")
    replies.flush()
    _, status = os.waitpid(pid, 0)
    replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
    replies.flush()


if __name__ == "__main__":
  main()
