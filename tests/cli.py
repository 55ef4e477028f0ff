"""Run a family's ``run.py`` through its real command line, as a user would: one at a time
(``run``), or started side by side (``start`` / ``finish``): a one-device run next to its
replicated twin, the bad inputs of one family, or MultiWorkerMirroredStrategy's worker
processes, which must run together.

Every run imports the code of the checkout these tests live in (``ROOT``), whatever the venv's
editable install or an inherited PYTHONPATH points at: ``ROOT`` comes first on the forked
child's ``sys.path`` (before the script's folder) and first on every run's PYTHONPATH, so a bug
planted in a scratch clone is what the clone's tests run (tests/README.md)."""

import atexit
import json
import os
import pathlib
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]

MIRRORED = ("--config.runner.distribute.strategy=mirrored",
            "--config.runner.distribute.cpu_devices=2")


def run_env(**extra):
  """The environment of a run: this one, quiet TensorFlow, no GPU, and ``ROOT`` first on
  PYTHONPATH (a subprocess's ``sys.path`` is then its script's folder, ``ROOT``, the rest)."""
  inherited = os.environ.get("PYTHONPATH", "")
  path = os.pathsep.join([str(ROOT)] + [p for p in inherited.split(os.pathsep)
                                        if p and p != str(ROOT)])
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", PYTHONPATH=path,
              **extra)


class _Server:
  """This test process's ``tests/cli_server.py``: started on first use, ended with the process."""
  proc = None
  pending = b""     # reply bytes read but not yet returned

  @classmethod
  def get(cls):
    if cls.proc is None or cls.proc.poll() is not None:
      cls.proc = subprocess.Popen([sys.executable, "-m", "tests.cli_server"], cwd=ROOT,
                                  env=run_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
      cls.pending = b""
      atexit.register(cls.proc.kill)
    return cls.proc


def _reply(server, timeout):
  """The server's next reply line, or None after ``timeout`` seconds (or if it died)."""
  deadline = time.monotonic() + timeout
  while b"\n" not in _Server.pending:
    left = deadline - time.monotonic()
    if left <= 0 or not select.select([server.stdout], [], [], left)[0]:
      return None
    chunk = os.read(server.stdout.fileno(), 65536)
    if not chunk:
      return None
    _Server.pending += chunk
  line, _Server.pending = _Server.pending.split(b"\n", 1)
  return json.loads(line)


def run(script, *args, timeout=300):
  """``python script args`` from the repository root: a ``CompletedProcess`` with the text of
  stdout and stderr. Forked from a process that has already imported TensorFlow
  (``tests/cli_server.py``)."""
  server = _Server.get()
  with tempfile.TemporaryDirectory() as tmp:
    out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
    server.stdin.write(json.dumps({"script": script, "args": list(args), "env": run_env(),
                                   "root": str(ROOT), "stdout": out, "stderr": err}) + "\n")
    server.stdin.flush()
    started = _reply(server, 600)   # the first waits for the import
    assert started, "tests/cli_server.py did not start the run"
    ended = _reply(server, timeout)
    if ended is None:
      os.kill(started["pid"], signal.SIGKILL)
      _reply(server, 60)
      raise subprocess.TimeoutExpired([script, *args], timeout)
    with open(out) as o, open(err) as e:
      return subprocess.CompletedProcess([script, *args], ended["returncode"], o.read(), e.read())


def ok(proc):
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


def start(script, *args, env=None):
  return subprocess.Popen([sys.executable, script, *args], cwd=ROOT, env=env or run_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_workers(script, count, *args, workdir):
  """``count`` processes of one MultiWorkerMirroredStrategy cluster on localhost (the usual
  TF_CONFIG, one CPU device each); worker i writes to ``workdir(i)``. {"worker<i>": process}."""
  ports = []
  for _ in range(count):
    with socket.socket() as s:
      s.bind(("localhost", 0))
      ports.append(s.getsockname()[1])
  cluster = {"worker": [f"localhost:{p}" for p in ports]}
  return {f"worker{i}": start(
      script, *args, f"--workdir={workdir(i)}",
      "--config.runner.distribute.strategy=multi_worker_mirrored",
      env=run_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})))
          for i in range(count)}


def communicate(proc, timeout=300):
  """A started run, finished: a ``CompletedProcess`` like ``run``'s."""
  try:
    out, err = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    out, err = proc.communicate()
  return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def finish(proc, timeout=300):
  """The stdout of a started run, which must succeed."""
  return ok(communicate(proc, timeout)).stdout


def run_together(script, *arg_lists, timeout=300):
  """``run`` for each list of arguments, the processes side by side: [CompletedProcess]."""
  procs = [start(script, *args) for args in arg_lists]
  return [communicate(p, timeout) for p in procs]
