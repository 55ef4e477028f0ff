"""Proximal mini-batch reweighting against its formula, computed directly."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from common.bilevel import ProximalReweighting
from common.problems import ExampleReweighting

S, K_ROWS, D, C = 4, 3, 4, 3
N = S * K_ROWS


def _model(seed):
  keras.utils.set_random_seed(seed)
  return keras.Sequential([
      keras.Input((D,), dtype="float64"),
      keras.layers.Dense(5, dtype="float64"),
      keras.layers.BatchNormalization(dtype="float64"),
      keras.layers.Activation("tanh", dtype="float64"),
      keras.layers.Dense(C, dtype="float64"),
  ])


def _batch(seed):
  rng = np.random.default_rng(seed)
  y = np.tile(np.arange(K_ROWS) % C, S)            # every split: the same label multiset
  return {"train": {"x": tf.constant(rng.normal(size=(N, D))), "y": tf.constant(y),
                    "index": tf.range(N, dtype=tf.int64)}}


def _method(problem, **kw):
  cfg = ProximalReweighting.default_config()
  cfg.update(dict(splits=S, lr=0.1, momentum=0.9, mu=0.01))
  cfg.update(kw)
  return ProximalReweighting(problem, cfg)


def _direct_split_gradients(model, batch):
  """Each split through a fresh copy of the model (its own batch statistics), flattened."""
  grads = []
  for s in range(S):
    x = batch["train"]["x"][s * K_ROWS:(s + 1) * K_ROWS]
    y = batch["train"]["y"][s * K_ROWS:(s + 1) * K_ROWS]
    with tf.GradientTape() as tape:
      logits = model(x, training=True)
      loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits,
                                                                         from_logits=True))
    grads.append([g.numpy() for g in tape.gradient(loss, model.trainable_variables)])
  return grads


@pytest.mark.parametrize("per_layer", [False, True])
def test_weights_and_update_equal_the_formula(per_layer):
  model = _model(0)
  reference = _model(0)
  reference.set_weights(model.get_weights())
  decay = 0.05
  problem = ExampleReweighting(model, N, weight_decay=decay)
  batch = _batch(0)
  grads = _direct_split_gradients(reference, batch)
  flat = [np.concatenate([g.ravel() for g in gs]) for gs in grads]
  if per_layer:
    omega = np.array([[np.sum(grads[0][k] * grads[s][k]) / (np.sum(grads[s][k] ** 2) + 0.01)
                       for s in range(1, S)] for k in range(len(grads[0]))])
    omega_bar = omega / np.abs(omega).sum(axis=1, keepdims=True)
    data = [sum(omega_bar[k, s - 1] * grads[s][k] for s in range(1, S))
            for k in range(len(grads[0]))]
  else:
    omega = np.array([flat[0] @ flat[s] / (flat[s] @ flat[s] + 0.01) for s in range(1, S)])
    omega_bar = omega / np.abs(omega).sum()
    assert (omega_bar < 0).any() and (omega_bar > 0).any()   # signs kept, not clipped
    data = [sum(omega_bar[s - 1] * grads[s][k] for s in range(1, S))
            for k in range(len(grads[0]))]
  method = _method(problem, per_layer=per_layer)
  got, _ = method.split_gradients(batch, update_state=False)
  np.testing.assert_allclose(method.split_weights(got).numpy(), omega_bar, rtol=1e-9)
  before = [v.numpy() for v in problem.inner_variables]
  method.step(batch)
  for var, b, d, decayed in zip(problem.inner_variables, before, data, problem._decayed):
    expected = b - 0.1 * (d + (decay * b if decayed else 0.0))
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-9, atol=1e-13)
  # Exported: validation rows unweighted (0), training rows omega_bar / split size.
  w = method.weights.numpy()
  np.testing.assert_array_equal(w[:K_ROWS], 0.0)
  per_split = omega_bar.mean(axis=0) if per_layer else omega_bar
  np.testing.assert_allclose(w[K_ROWS:], np.repeat(per_split / K_ROWS, K_ROWS), rtol=1e-9)


def test_batch_norm_moves_once_per_split_as_the_original():
  model = _model(1)
  reference = _model(1)
  reference.set_weights(model.get_weights())
  batch = _batch(1)
  _direct_split_gradients(reference, batch)      # S training-mode calls, one per split
  _method(ExampleReweighting(model, N)).step(batch)
  for a, b in zip(reference.non_trainable_variables, model.non_trainable_variables):
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-12)


def test_zero_sum_guard_keeps_zero_weights_without_nan():
  problem = ExampleReweighting(_model(2), N)
  method = _method(problem)
  shapes = [v.shape for v in problem.inner_variables]
  zero = [tf.zeros(s, tf.float64) for s in shapes]
  ones = [tf.ones(s, tf.float64) for s in shapes]
  w = method.split_weights([zero] + [ones] * (S - 1)).numpy()   # validation gradient 0
  np.testing.assert_array_equal(w, np.zeros(S - 1))


def test_splits_must_divide_the_batch():
  with pytest.raises(ValueError, match="divide the batch size 12"):
    _method(ExampleReweighting(_model(3), N), splits=5)
