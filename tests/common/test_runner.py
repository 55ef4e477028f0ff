"""The runner: resume equals an uninterrupted run, NaN guard, logs, config mismatch."""

import json

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from common import errors
from common import records
from common import runner as runnerlib
from common.bilevel import Penalty, combined_step
from tests.quadratic import Quadratic


def _runner_config(**kw):
  cfg = runnerlib.default_config()
  cfg.progress_bar = False
  cfg.log_every = 1
  cfg.checkpoint_every = 4
  cfg.update(kw)
  return cfg


def _penalty(p):
  cfg = Penalty.default_config()
  cfg.update(dict(lr_u=1e-2, lr_v=1e-2, rho0=1.0, eps0=1.0, nu0=0.0, inner_steps=3))
  return Penalty(p, cfg)


def _batch(step):
  # Data that depends on the step: the quadratic's linear term is shifted per step.
  return {"shift": tf.constant(np.sin(step), tf.float64)}


class ShiftedQuadratic(Quadratic):

  def outer_cost(self, u, v, batch):
    return super().outer_cost(u, v, batch) + batch["shift"] * tf.reduce_sum(v[0])


def _run(workdir, num_steps, interrupt_at=None, **cfg):
  p = ShiftedQuadratic(seed=0)
  method = _penalty(p)
  run = runnerlib.Runner(workdir, _runner_config(**cfg), {"problem_u": p.u, "problem_v": p.v,
                                                          "method": method}, ["opt"])
  step = combined_step(p, method)

  def batches(s):
    if s == interrupt_at:
      raise KeyboardInterrupt  # a crash before step s + 1
    return _batch(s)

  run.run_phase("opt", step, batches, num_steps)
  return p, method, run


def test_resumed_run_equals_uninterrupted(tmp_path):
  ref, ref_m, _ = _run(tmp_path / "a", 10)
  with pytest.raises(KeyboardInterrupt):
    _run(tmp_path / "b", 10, interrupt_at=6)
  # The last checkpoint is at step 4; steps 5-6 are redone after the restart.
  res, res_m, run = _run(tmp_path / "b", 10)
  assert run.resumed
  np.testing.assert_array_equal(res.u.numpy(), ref.u.numpy())
  np.testing.assert_array_equal(res.v.numpy(), ref.v.numpy())
  np.testing.assert_array_equal(res_m.rho.numpy(), ref_m.rho.numpy())
  np.testing.assert_array_equal(res_m.opt_v.m[0].numpy(), ref_m.opt_v.m[0].numpy())
  steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").open()]
  assert steps == list(range(1, 11)), "records after the checkpoint must not be duplicated"


def test_max_steps_per_invocation_stops_and_resumes(tmp_path):
  ref, _, _ = _run(tmp_path / "a", 9)
  with pytest.raises(errors.Interrupted, match="Re-run the same command"):
    _run(tmp_path / "b", 9, max_steps_per_invocation=5)
  # The stop saved its own checkpoint (step 5), not only the periodic one (step 4).
  assert (tmp_path / "b" / "checkpoints" / "ckpt-5.index").exists()
  res, _, _ = _run(tmp_path / "b", 9)
  np.testing.assert_array_equal(res.u.numpy(), ref.u.numpy())


def test_finished_phase_is_skipped(tmp_path):
  _run(tmp_path, 3)
  calls = []
  p = Quadratic(seed=0)
  run = runnerlib.Runner(tmp_path, _runner_config(), {"problem_u": p.u, "problem_v": p.v,
                                                       "method": _penalty(p)}, ["opt"])
  run.run_phase("opt", lambda b: calls.append(1) or {"x": tf.constant(0.0)}, _batch, 3)
  assert not calls


def test_nan_guard_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
  v = tf.Variable(1.0)

  def step(batch):
    v.assign_add(1.0)
    return {"loss": tf.math.log(7.5 - v)}   # log(<0) = nan once v > 7.5, i.e. at step 7

  run = runnerlib.Runner(tmp_path, _runner_config(checkpoint_every=5), {"v": v}, ["train"])
  with pytest.raises(errors.NonFiniteError) as err:
    run.run_phase("train", step, lambda s: {}, 20)
  msg = str(err.value)
  assert "at step 7" in msg and "finite up to step 6" in msg and "step 5" in msg
  assert "ckpt-5" in msg and "fresh --workdir" in msg
  v.assign(-100.0)
  run2 = runnerlib.Runner(tmp_path, _runner_config(checkpoint_every=5), {"v": v}, ["train"])
  assert run2.steps_done("train") == 5 and v.numpy() == 6.0


def test_nan_before_any_checkpoint_says_so(tmp_path):
  v = tf.Variable(1.0)
  run = runnerlib.Runner(tmp_path, _runner_config(checkpoint_every=5), {"v": v}, ["train"])
  with pytest.raises(errors.NonFiniteError, match="at step 2;.*no checkpoint was written"):
    run.run_phase("train", lambda b: {"loss": tf.math.log(2.5 - v.assign_add(1.0))},
                  lambda s: {}, 20)
  assert not list((tmp_path / "checkpoints").glob("*.index"))


def test_logs_and_tensorboard(tmp_path):
  _run(tmp_path, 4)
  recs = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()]
  assert {"f", "g", "rho", "passed"} <= set(recs[-1])
  assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_config_mismatch_in_workdir(tmp_path):
  a = ml_collections.ConfigDict({"noise": 0.5, "runner": {"progress_bar": True}})
  runnerlib.Runner(tmp_path, _runner_config(), {}, ["x"], run_config=a)
  b = ml_collections.ConfigDict({"noise": 0.5, "runner": {"progress_bar": False}})
  runnerlib.Runner(tmp_path, _runner_config(), {}, ["x"], run_config=b)  # runner may differ
  c = ml_collections.ConfigDict({"noise": 0.25, "runner": {"progress_bar": True}})
  with pytest.raises(errors.ConfigMismatchError, match="noise"):
    runnerlib.Runner(tmp_path, _runner_config(), {}, ["x"], run_config=c)


def test_summary_table():
  table = records.summary_table([{"a": "x", "b": 0.5}], [("a", "A"), ("b", "B")])
  assert table.splitlines()[2].split() == ["x", "0.5000"]


def test_summary_table_formats_small_numbers_and_missing_values():
  table = records.summary_table([{"a": 7.7e-07, "b": None}], [("a", "A"), ("b", "B")])
  assert table.splitlines()[2].split() == ["7.7e-07", "-"]


def test_timed_loop_records_at_the_given_steps_traces_once_and_guards():
  x = tf.Variable(1.0, dtype=tf.float64)
  step = lambda: {"x_before": x.assign_add(1.0) - 1.0}
  loop = runnerlib.TimedLoop(step, lambda: {"x": tf.identity(x)})
  loop.warm_up()
  assert x.numpy() == 2.0
  for _ in range(2):                   # two trials, one trace
    x.assign(0.0)
    out = loop.run([0, 1, 4, 9])
    np.testing.assert_array_equal(out["steps"], [0, 1, 4, 9])
    np.testing.assert_array_equal(out["x"], [0.0, 1.0, 4.0, 9.0])   # evaluated after the steps
    assert np.isnan(out["metric_x_before"][0])                     # no step before record 0
    np.testing.assert_array_equal(out["metric_x_before"][1:], [0.0, 3.0, 8.0])
    assert (np.diff(out["seconds"]) >= 0).all()
  assert loop.tracing_count == 1
  bad = runnerlib.TimedLoop(lambda: {"y": x.assign(x * 1e300)}, lambda: {"x": tf.identity(x)})
  x.assign(10.0)
  with pytest.raises(errors.NonFiniteError, match=r"\[t\] non-finite .*after step 3; every "
                     r"value was finite after step 1"):
    bad.run([0, 1, 3], where="[t] ")


def test_several_steps_per_call_give_the_same_run_records_and_nan_step(tmp_path):
  """steps_per_call 3 with checkpoints every 4 steps and epochs of 5: every call stops where
  the host must act, and the run (variables, optimiser state, every record, the epoch hook)
  is the one-step-per-call run."""
  def run(workdir, **cfg):
    p = ShiftedQuadratic(seed=0)
    method = _penalty(p)
    r = runnerlib.Runner(workdir, _runner_config(**cfg), {"u": p.u, "v": p.v, "m": method},
                         ["opt"])
    epochs = []
    r.run_phase("opt", combined_step(p, method), _batch, 13, steps_per_epoch=5,
                on_epoch_end=lambda e: epochs.append(e) or {"u0": float(p.u[0])})
    recs = [json.loads(l) for l in (workdir / "metrics.jsonl").open()]
    for rec in recs:
      del rec["time"]
    return p, method, recs, epochs, r

  one, m1, recs1, ep1, _ = run(tmp_path / "one")
  three, m3, recs3, ep3, r3 = run(tmp_path / "three", steps_per_call=3)
  np.testing.assert_array_equal(three.u.numpy(), one.u.numpy())
  np.testing.assert_array_equal(m3.opt_v.m[0].numpy(), m1.opt_v.m[0].numpy())
  assert recs3 == recs1 and ep3 == ep1 == [1, 2]
  # Calls of 3, cut at checkpoints (4, 8, 12) and epoch ends (5, 10): lengths 3, 1, 2, 1, ...
  assert r3._call_lengths <= {1, 2, 3} and 3 in r3._call_lengths
  assert r3.steps_done("opt") == 13

  v = tf.Variable(1.0)

  def step(batch):
    v.assign_add(1.0)
    return {"loss": tf.math.log(7.5 - v)}   # nan from step 7, inside the call of steps 7-9

  r = runnerlib.Runner(tmp_path / "nan", _runner_config(checkpoint_every=6, steps_per_call=3),
                       {"v": v}, ["train"])
  with pytest.raises(errors.NonFiniteError, match="at step 7;.*finite up to step 6"):
    r.run_phase("train", step, lambda s: {}, 20)
  with pytest.raises(errors.ConfigError, match="steps_per_call must be >= 1"):
    runnerlib.Runner(tmp_path / "bad", _runner_config(steps_per_call=0), {"v": v}, ["train"])
  assert not (tmp_path / "bad").exists()      # refused before anything was written


def test_a_full_disk_during_a_checkpoint_is_an_oserror_naming_the_workdir(tmp_path, monkeypatch):
  import errno  # pylint: disable=import-outside-toplevel
  v = tf.Variable(0.0)
  run = runnerlib.Runner(tmp_path, _runner_config(checkpoint_every=5), {"v": v}, ["train"])
  real_save = run.manager.save

  def save(checkpoint_number):
    if checkpoint_number >= 10:       # the second checkpoint finds the disk full
      (tmp_path / "checkpoints" / "ckpt-10_temp").mkdir()
      raise tf.errors.ResourceExhaustedError(
          None, None, "/x/ckpt-10_temp/part-00000-of-00001.data-00000-of-00001.tempstate; No "
          "space left on device [Op:SaveV2]")
    return real_save(checkpoint_number=checkpoint_number)
  monkeypatch.setattr(run.manager, "save", save)
  with pytest.raises(OSError) as err:
    run.run_phase("train", lambda b: {"loss": v.assign_add(1.0)}, lambda s: {}, 20)
  e = err.value
  assert e.errno == errno.ENOSPC and e.filename == str(tmp_path / "checkpoints")
  assert e.strerror == (f"No space left on device while writing a checkpoint of the run in "
                        f"{tmp_path} (the last intact one, ckpt-5, is kept)")
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
      "checkpoint", "ckpt-5.data-00000-of-00001", "ckpt-5.index"]
  v.assign(-1.0)
  again = runnerlib.Runner(tmp_path, _runner_config(checkpoint_every=5), {"v": v}, ["train"])
  assert again.steps_done("train") == 5 and v.numpy() == 5.0
