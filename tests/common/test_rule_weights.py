"""The fixed-rule weight baselines and the single-logit (binary) loss they are used with."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import metrics as metriclib
from common.bilevel import RuleWeights
from common.problems import ExampleReweighting, cross_entropy

N, D = 6, 3


def _problem(num_classes=1, seed=0):
  keras.utils.set_random_seed(seed)
  model = keras.Sequential([keras.Input((D,), dtype="float64"),
                            keras.layers.Dense(num_classes, dtype="float64")])
  return ExampleReweighting(model, N, training=True, num_train=N)


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  return {"train": {"x": tf.constant(rng.normal(size=(N, D))),
                    "y": tf.constant(np.array([0, 1, 1, 0, 1, 1])),
                    "index": tf.constant(np.arange(N, dtype=np.int64))}}


def _method(problem, **kw):
  cfg = RuleWeights.default_config()
  cfg.update(kw)
  return RuleWeights(problem, cfg)


def test_single_logit_cross_entropy_is_the_binary_one():
  logits = tf.constant([[2.0], [-1.0], [0.5]], tf.float64)
  labels = tf.constant([1, 0, 0])
  p = 1.0 / (1.0 + np.exp(-np.array([2.0, -1.0, 0.5])))
  expected = -np.array([np.log(p[0]), np.log(1 - p[1]), np.log(1 - p[2])])
  np.testing.assert_allclose(cross_entropy(logits, labels).numpy(), expected, rtol=1e-12)


def test_single_logit_prediction_thresholds_at_zero():
  model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
  model.layers[0].set_weights([np.ones((1, 1), np.float32), np.zeros(1, np.float32)])
  x = np.array([[-2.0], [3.0], [0.1]], np.float32)
  np.testing.assert_array_equal(metriclib.predict(model, x), [0, 1, 1])
  assert metriclib.accuracy(model, x, np.array([0, 1, 0])) == pytest.approx(2 / 3)


def test_uniform_rule_is_plain_momentum_sgd_on_the_mean_loss():
  problem, batch = _problem(), _batch()
  method = _method(problem, rule="uniform", lr=0.1, momentum=0.9)
  v0 = [x.numpy().copy() for x in problem.inner_variables]
  for step in range(2):
    v = [tf.convert_to_tensor(x) for x in problem.inner_variables]
    with tf.GradientTape() as tape:
      tape.watch(v)
      loss = tf.reduce_mean(problem.example_losses(v, batch, update_state=False))
    g = [x.numpy() for x in tape.gradient(loss, v)]
    if step == 0:
      accum = g
      expected = [a - 0.1 * b for a, b in zip(v0, g)]
    else:
      accum = [0.9 * a + b for a, b in zip(accum, g)]
      expected = [x.numpy() - 0.1 * a for x, a in zip(problem.inner_variables, accum)]
    method.step(batch)
    for got, want in zip(problem.inner_variables, expected):
      np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
  np.testing.assert_allclose(method.weights.numpy(), np.full(N, 1 / N))


def test_class_ratio_weights_are_per_label_and_not_normalised():
  problem, batch = _problem(), _batch()
  method = _method(problem, rule="class_ratio", class_weights=(0.98, 0.02))
  w = method.example_weights(batch).numpy()
  np.testing.assert_allclose(w, [0.98, 0.02, 0.02, 0.98, 0.02, 0.02])


def test_random_weights_are_clipped_normalised_and_change_every_step():
  problem, batch = _problem(), _batch()
  method = _method(problem, rule="random", seed=3)
  draws = [method.example_weights(batch).numpy() for _ in range(20)]
  for w in draws:
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0)
  assert np.mean([np.mean(w == 0) for w in draws]) == pytest.approx(0.5, abs=0.15)
  assert not np.allclose(draws[0], draws[1])
  # The stream is a function of the seed.
  again = _method(_problem(), rule="random", seed=3)
  np.testing.assert_array_equal(again.example_weights(batch).numpy(), draws[0])


def test_bad_rules_fail_clearly():
  with pytest.raises(ValueError, match="Unknown weight rule 'focal'"):
    _method(_problem(), rule="focal")
  with pytest.raises(ValueError, match="class_ratio' needs class_weights"):
    _method(_problem(), rule="class_ratio")
