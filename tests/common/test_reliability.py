"""Faults a run must survive: a second run on the same workdir, damaged checkpoints, a kill
before the first checkpoint. Each either works, recovers as documented, or stops in one line."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from common import errors
from common import lock
from common import runner as runnerlib
from tests import cli


def _config(**kw):
  cfg = runnerlib.default_config()
  cfg.update(dict(progress_bar=False, log_every=1, checkpoint_every=4))
  cfg.update(kw)
  return cfg


class _Crash(Exception):
  """A process dying between two steps."""


def _run(workdir, steps, logs=None, fail_at=None):
  """A one-variable run: v += step + 1 at each step, the metric is v."""
  v = tf.Variable(0.0, dtype=tf.float64)
  r = runnerlib.Runner(workdir, _config(), {"v": v}, ["p"],
                       log=(logs.append if logs is not None else lambda m: None))

  def batches(s):
    if s == fail_at:
      raise _Crash                  # a crash before step s + 1
    return {"s": tf.constant(float(s + 1), tf.float64)}

  try:
    r.run_phase("p", lambda b: {"v": v.assign_add(b["s"])}, batches, steps)
  except _Crash:
    pass
  lock.release(workdir)
  return v, r


def _records(workdir):
  return [(rec["step"], rec["v"]) for rec in map(json.loads, (workdir / "metrics.jsonl").open())]


def _expected(steps):
  return [(s, float(s * (s + 1) // 2)) for s in range(1, steps + 1)]


def _holder(workdir):
  """A separate process that claims ``workdir`` and sleeps."""
  code = ("import sys, time; from common import lock; lock.claim(sys.argv[1]); "
          "print('held', flush=True); time.sleep(120)")
  p = subprocess.Popen([sys.executable, "-c", code, str(workdir)], cwd=cli.ROOT,
                       stdout=subprocess.PIPE, text=True)
  assert p.stdout.readline().strip() == "held"
  return p


def test_a_second_run_on_the_workdir_is_refused_and_a_dead_holder_is_taken_over(tmp_path):
  p = _holder(tmp_path)
  try:
    with pytest.raises(errors.WorkdirBusyError, match=rf"in use by another run \(pid {p.pid}\)"):
      lock.claim(tmp_path)
    with pytest.raises(errors.WorkdirBusyError):
      runnerlib.Runner(tmp_path, _config(), {"v": tf.Variable(0.0)}, ["p"], run_config={"a": 1})
    assert not (tmp_path / "config.json").exists()     # refused before writing anything
  finally:
    p.send_signal(signal.SIGKILL)
    p.wait()
  lock.claim(tmp_path)                                  # the killed holder's lock is gone
  assert lock.held(tmp_path)
  assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
  lock.claim(tmp_path)                                  # re-entrant within one process
  lock.release(tmp_path)
  assert not lock.held(tmp_path)


def test_the_command_line_refuses_a_busy_workdir_in_one_line(tmp_path):
  p = _holder(tmp_path)
  try:
    proc = cli.run("synthetic/run.py", "--config=synthetic/configs/default.py:tiny",
                   f"--workdir={tmp_path}")
  finally:
    p.send_signal(signal.SIGKILL)
    p.wait()
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error (WorkdirBusyError): {tmp_path} is in use by another run (pid {p.pid}); wait for "
      "it to finish, or give this run another --workdir.")
  assert "Traceback" not in proc.stderr
  assert sorted(os.listdir(tmp_path)) == [".lock"]


def _damage(workdir, number, how):
  ck = workdir / "checkpoints"
  if how == "data":
    (next(ck.glob(f"ckpt-{number}.data-*"))).write_bytes(b"x" * 10)
  elif how == "index":
    (ck / f"ckpt-{number}.index").write_bytes(b"")
  elif how == "missing":
    next(ck.glob(f"ckpt-{number}.data-*")).unlink()


@pytest.mark.parametrize("how", ["data", "index", "missing"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, how):
  _run(tmp_path, 10, fail_at=9)            # checkpoints at steps 4 and 8, records up to 9
  _damage(tmp_path, 8, how)
  logs = []
  v, r = _run(tmp_path, 12, logs)
  notice = [m for m in logs if "ckpt-8" in m]
  assert notice and "ckpt-4" in notice[0] and "unreadable" in notice[0]
  assert float(v.numpy()) == 78.0                     # 1 + ... + 12: steps 5-12 redone
  assert _records(tmp_path) == _expected(12)          # no record twice, none missing
  # The damaged files are kept aside, not deleted, and no longer in the way.
  assert list((tmp_path / "checkpoints" / "damaged").iterdir())
  v, _ = _run(tmp_path, 12)                           # and the next resume is clean
  assert float(v.numpy()) == 78.0


def test_a_garbage_checkpoint_index_does_not_restart_the_run(tmp_path):
  _run(tmp_path, 10, fail_at=9)
  (tmp_path / "checkpoints" / "checkpoint").write_text("garbage {{{")
  logs = []
  v, _ = _run(tmp_path, 12, logs)
  assert any("Resuming from" in m and "ckpt-8" in m for m in logs)
  assert float(v.numpy()) == 78.0 and _records(tmp_path) == _expected(12)


def test_no_intact_checkpoint_is_one_clear_error(tmp_path):
  _run(tmp_path, 10, fail_at=9)
  for n in (4, 8):
    _damage(tmp_path, n, "data")
  with pytest.raises(errors.CheckpointError, match=r"no intact checkpoint .*ckpt-8.*ckpt-4.*"
                     r"Delete"):
    _run(tmp_path, 12)
  lock.release()


@pytest.mark.parametrize("damage", ["garbage {{{", "[1, 2]", '{"p": "many"}'])
def test_damaged_phase_seconds_cost_a_notice_not_the_run(tmp_path, damage):
  _run(tmp_path, 10, fail_at=9)            # checkpoint at 8, its seconds beside it
  seconds = tmp_path / "phase_seconds.json"
  assert set(json.loads(seconds.read_text())) == {"p"}
  seconds.write_text(damage)
  logs = []
  v, r = _run(tmp_path, 12, logs)
  assert [m for m in logs if "phase_seconds.json" in m and "damaged" in m]
  assert float(v.numpy()) == 78.0 and _records(tmp_path) == _expected(12)
  assert r.seconds_before == {} and r.seconds_total().keys() == {"p"}


def test_intact_phase_seconds_are_carried_into_the_resumed_run(tmp_path):
  _run(tmp_path, 10, fail_at=9)
  (tmp_path / "phase_seconds.json").write_text('{"p": 1000.0, "q": 5.0}')
  logs = []
  _, r = _run(tmp_path, 12, logs)
  assert r.seconds_before == {"p": 1000.0, "q": 5.0}
  total = r.seconds_total()
  assert total["q"] == 5.0 and 1000.0 < total["p"] < 1000.0 + 60.0
  assert not [m for m in logs if "damaged" in m]


def test_a_kill_before_the_first_checkpoint_leaves_no_stale_records(tmp_path):
  _run(tmp_path, 10, fail_at=2)            # records of steps 1-2, no checkpoint yet
  assert _records(tmp_path) == _expected(2)
  assert not list((tmp_path / "checkpoints").glob("*.index"))
  _run(tmp_path, 6)
  assert _records(tmp_path) == _expected(6)


def test_kill_9_at_random_points_resumes_to_the_uninterrupted_run(tmp_path):
  """A subprocess killed by SIGKILL at a random moment (three seeds), then resumed."""
  code = ("import sys, time, tensorflow as tf; from common import runner as R\n"
          "cfg = R.default_config(); cfg.update(dict(progress_bar=False, log_every=1, "
          "checkpoint_every=3))\n"
          "v = tf.Variable(0.0, dtype=tf.float64)\n"
          "r = R.Runner(sys.argv[1], cfg, {'v': v}, ['p'], log=lambda m: None)\n"
          "def step(b):\n  return {'v': v.assign_add(b['s'])}\n"
          "def batch(s):\n  time.sleep(0.02)\n  return {'s': tf.constant(float(s + 1), "
          "tf.float64)}\n"
          "r.run_phase('p', step, batch, 40)\nprint(float(v.numpy()))\n")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  rng = np.random.default_rng(0)
  for seed in range(3):
    workdir = tmp_path / f"w{seed}"
    p = subprocess.Popen([sys.executable, "-c", code, str(workdir)], cwd=cli.ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # Wait until it has logged a few steps, then kill it at a random moment.
    deadline = time.time() + 120
    while time.time() < deadline:
      path = workdir / "metrics.jsonl"
      if path.exists() and len(path.read_text().splitlines()) >= 2:
        break
      time.sleep(0.05)
    time.sleep(float(rng.uniform(0.0, 0.5)))
    p.send_signal(signal.SIGKILL)
    p.wait()
    out = subprocess.run([sys.executable, "-c", code, str(workdir)], cwd=cli.ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) == 820.0
    assert _records(workdir) == _expected(40)
