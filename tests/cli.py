"""Run a family's ``run.py`` through its real command line, as a user would."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(script, *args, timeout=300):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  return subprocess.run([sys.executable, script, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def ok(proc):
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc
