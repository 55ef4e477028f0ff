"""Named evaluators: values against direct computations, cadence, and the runner recording them."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import errors
from common import evaluators as ev
from common import metrics as metriclib
from common import problems
from common import runner as runnerlib


def _linear(num_classes=3, dim=4, seed=0):
  keras.utils.set_random_seed(seed)
  model = keras.Sequential([keras.Input((dim,)), keras.layers.Dense(num_classes)])
  return model


def _data(n=50, dim=4, num_classes=3, seed=1):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, dim)).astype(np.float32),
          rng.integers(0, num_classes, n).astype(np.int64))


def test_accuracy_and_topk_equal_a_numpy_computation():
  model = _linear()
  x, y = _data()
  logits = np.asarray(model(x))
  top1 = float(np.mean(np.argmax(logits, 1) == y))
  order = np.argsort(-logits, 1)
  top2 = float(np.mean([y[i] in order[i, :2] for i in range(len(y))]))
  (acc,) = ev.build(("accuracy",), ev.Context(model=model, test=metriclib.TestSet(x, y, 7)))
  assert acc(1) == {"test_accuracy": pytest.approx(top1)}
  both = ev.build(("accuracy",), ev.Context(
      model=model, test=metriclib.TestSet(x, y, 7, ks=(1, 2)), accuracy_key="test_success"))
  assert both[0](1) == {"test_success": pytest.approx(top1),
                        "test_top2_accuracy": pytest.approx(top2)}
  batches = [(x[:20], y[:20]), (x[20:], y[20:])]
  assert metriclib.TestSet(batches=batches, ks=(1, 2)).evaluate(model) == {
      1: pytest.approx(top1), 2: pytest.approx(top2)}
  # Eager calls give the same classes; an empty set has no accuracy.
  assert metriclib.TestSet(x, y, 16, eager_calls=True).accuracy(model) == pytest.approx(top1)
  assert np.isnan(metriclib.TestSet(x[:0], y[:0]).accuracy(model))


def test_score_evaluators_equal_their_definitions():
  scores = np.array([0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
  corrupted = np.array([True, True, False, True, False, False])
  ctx = ev.Context(scores=lambda: scores, corrupted=corrupted, threshold=0.5)
  stats, det = ev.build(("importance_stats", "detection"), ctx)
  out = stats(1)
  hist = out.pop("importances")
  assert out == {"mean_importance": pytest.approx(scores.mean()),
                 "frac_above_0.1": pytest.approx(4 / 6)}
  np.testing.assert_array_equal(hist, scores)          # written as a histogram
  # Flags: score <= 0.5 -> points 0, 1, 2, 3; three of them corrupted, all three found.
  out = det(1)
  assert out["detect_precision"] == pytest.approx(3 / 4)
  assert out["detect_recall"] == pytest.approx(1.0)
  assert out["detect_roc_auc"] == pytest.approx(metriclib.roc_auc(corrupted, -scores))


def test_build_keeps_only_what_the_context_serves_and_checks_names():
  ctx = ev.Context(scores=lambda: np.ones(3))
  assert [e.name for e in ev.build(("accuracy", "importance_stats", "detection"), ctx)] == [
      "importance_stats"]
  with pytest.raises(errors.ConfigError, match="unknown evaluator 'acuracy'"):
    ev.build(("acuracy",), ctx)
  with pytest.raises(errors.ConfigError, match="cannot run 'detection'; it offers accuracy"):
    ev.check(("detection",), ("accuracy",), "the family")
  with pytest.raises(errors.ConfigError, match="listed twice"):
    ev.check(("accuracy", "accuracy"))


def test_cadence_every_and_last():
  calls = []
  e = ev.Evaluator("x", lambda epoch: calls.append(epoch) or {"x": float(epoch)}, every=3)
  ran = [epoch for epoch in range(1, 8) if e.due(epoch, 7)]
  assert ran == [3, 6, 7]
  fixed = ev.Evaluator("x", lambda epoch: {}, every=3, last=5)
  assert [epoch for epoch in range(1, 8) if fixed.due(epoch, 7)] == [3, 5, 6]
  scalars, arrays = ev.run([e], 3, 7)
  assert scalars == {"x": 3.0} and arrays == {} and calls == [3]
  assert ev.run([e], 4, 7) == ({}, {}) and calls == [3]


def test_temperatures_statistics_histograms_and_snapshots(tmp_path):
  dp = problems.DataParameters(2, 4, learn_class_parameters=True, learn_inst_parameters=True)
  dp.inst_parameters.assign(np.log([0.5, 1.0, 2.0, 4.0]).astype(np.float32))
  dp.class_parameters.assign(np.log([1.5, 3.0]).astype(np.float32))
  corrupted = np.array([False, False, True, True])
  path = tmp_path / "snaps.jsonl"
  (t,) = ev.build(("temperatures",), ev.Context(data_params=dp, corrupted=corrupted,
                                                snapshots_path=path))
  out = t(1)
  assert out["inst_sigma_mean"] == pytest.approx(7.5 / 4, rel=1e-6)
  assert out["inst_sigma_highest"] == pytest.approx(4.0, rel=1e-6)
  assert out["class_sigma_lowest"] == pytest.approx(1.5, rel=1e-6)
  assert out["inst_sigma_corrupted_mean"] == pytest.approx(3.0, rel=1e-6)
  assert out["inst_sigma_clean_mean"] == pytest.approx(0.75, rel=1e-6)
  assert out["inst_sigma_roc_auc"] == pytest.approx(1.0)   # corrupted points have higher sigma
  np.testing.assert_allclose(out["data_parameters/inst_sigma_corrupted"], [2.0, 4.0], rtol=1e-6)
  np.testing.assert_allclose(out["data_parameters/class_sigma"], [1.5, 3.0], rtol=1e-6)
  t(2)
  t(2)                                 # an epoch evaluated again (a resume) replaces its line
  lines = [json.loads(l) for l in path.read_text().splitlines()]
  assert [l["epoch"] for l in lines] == [1, 2]
  np.testing.assert_allclose(lines[0]["class"][2], 2.25, rtol=1e-6)    # the median


def test_task_accuracy_mean_and_ci():
  accs = np.array([0.2, 0.4, 0.9, 1.0])
  (t,) = ev.build(("task_accuracy",), ev.Context(tasks=lambda: accs))
  out = t(1)
  assert out["test_accuracy"] == pytest.approx(0.625)
  assert out["test_accuracy_ci95"] == pytest.approx(1.96 * np.std(accs) / 2)
  np.testing.assert_array_equal(out["task_accuracies"], accs)


def test_the_runner_records_evaluators_at_their_cadence(tmp_path):
  cfg = runnerlib.default_config()
  cfg.update(dict(progress_bar=False, log_every=100, checkpoint_every=100))
  v = tf.Variable(0.0)
  run = runnerlib.Runner(tmp_path, cfg, {"v": v}, ["p"])
  hook = []
  evaluators = [ev.Evaluator("cheap", lambda e: {"v": float(v.numpy())}),
                ev.Evaluator("costly", lambda e: {"twice": 2 * float(v.numpy()),
                                                  "hist": np.arange(3.0)}, every=2)]
  run.run_phase("p", lambda b: {"loss": v.assign_add(1.0)}, lambda s: {}, 10, steps_per_epoch=2,
                on_epoch_end=lambda e: hook.append(e), evaluators=evaluators)
  recs = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()
          if json.loads(l)["kind"] == "epoch"]
  assert hook == [1, 2, 3, 4, 5]
  assert [(r["step"], r["v"]) for r in recs] == [(2, 2.0), (4, 4.0), (6, 6.0), (8, 8.0),
                                                 (10, 10.0)]
  # every 2 epochs (epochs 2, 4) and at the last (5); arrays go to TensorBoard, not the log.
  assert [r["step"] for r in recs if "twice" in r] == [4, 8, 10]
  assert all("hist" not in r for r in recs)
  assert list((tmp_path / "tensorboard").iterdir())


def _tags(workdir):
  tags = set()
  for path in (workdir / "tensorboard").glob("events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      tags |= {v.tag for v in event.summary.value}
  return tags


def test_tensorboard_holds_hparams_histograms_figures_and_the_results_table(tmp_path):
  import ml_collections  # pylint: disable=import-outside-toplevel
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  cfg = runnerlib.default_config()
  cfg.update(dict(progress_bar=False, log_every=1, checkpoint_every=100))
  run_config = ml_collections.ConfigDict({"lr": 0.1, "method": {"name": "x", "steps": 3},
                                          "runner": cfg})
  v = tf.Variable(0.0)
  run = runnerlib.Runner(tmp_path, cfg, {"v": v}, ["p"], run_config=run_config)
  scores = np.linspace(0.0, 1.0, 7)
  (stats,) = ev.build(("importance_stats",), ev.Context(scores=lambda: scores))
  run.run_phase("p", lambda b: {"loss": v.assign_add(1.0)}, lambda s: {}, 4, steps_per_epoch=2,
                evaluators=[stats])
  fig, ax = plt.subplots()
  ax.plot([0, 1])
  fig.savefig(tmp_path / "curve.png")
  plt.close(fig)
  run.write_results({"test_accuracy": 0.5}, "table: 0.5")
  tags = _tags(tmp_path)
  assert {"p/loss", "p/mean_importance", "importances", "figures/curve",
          "_hparams_/session_start_info"} <= tags, tags
  assert any(t.startswith("results") for t in tags), tags


def test_the_legacy_accuracy_divisor_rounds_up_to_whole_batches():
  # 250 test points, batches of 200: the original divides the correct count by 2 * 200.
  model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, use_bias=False)])
  model.layers[-1].set_weights([np.array([[-1.0, 1.0]], np.float32)])  # class 1 iff x > 0
  x = np.ones((250, 1), np.float32)
  y = np.ones(250, np.int64)
  assert metriclib.accuracy(model, x, y, 100) == 1.0
  assert metriclib.accuracy(model, x, y, 100, legacy_divisor_batch=200) == 250 / 400
  assert metriclib.TestSet(x, y, 100, legacy_divisor_batch=200).accuracy(model) == 250 / 400
