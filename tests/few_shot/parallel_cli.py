"""Command-line runs started side by side (``tests/cli.py`` runs one at a time): a one-device
run next to its replicated twin, and MultiWorkerMirroredStrategy's worker processes, which
must run together. Used by the families' ``test_distribute.py``."""

import json
import os
import socket
import subprocess
import sys

from tests import cli

MIRRORED = ("--config.runner.distribute.strategy=mirrored",
            "--config.runner.distribute.cpu_devices=2")


def _env(**extra):
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", **extra)


def start(script, *args, env=None):
  return subprocess.Popen([sys.executable, script, *args], cwd=cli.ROOT, env=env or _env(),
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
      env=_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})))
          for i in range(count)}


def finish(proc, timeout=300):
  """The stdout of a started run, which must succeed."""
  try:
    out, err = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    out, err = proc.communicate()
  assert proc.returncode == 0, out[-3000:] + err[-3000:]
  return out
