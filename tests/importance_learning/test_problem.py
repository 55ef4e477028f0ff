"""The importance-learning bilevel problem: costs, the batch slot, renormalisation, and the
penalty hypergradient through a real Keras model in float64."""

import keras
import numpy as np
import tensorflow as tf

from common.bilevel import Penalty, combined_step
from common.problems import ImportanceProblem, logit_from_importance

B, N, D, K = 6, 20, 5, 3


def _model(dtype="float64"):
  keras.utils.set_random_seed(0)
  return keras.Sequential([keras.Input((D,), dtype=dtype), keras.layers.Dense(K, dtype=dtype)])


def _batch(rng, index, dtype=np.float64):
  return {
      "train": {"x": tf.constant(rng.normal(size=(B, D)).astype(dtype)),
                "y": tf.constant(rng.integers(K, size=B)), "index": tf.constant(index)},
      "val": {"x": tf.constant(rng.normal(size=(B, D)).astype(dtype)),
              "y": tf.constant(rng.integers(K, size=B)), "index": tf.constant(np.arange(B))},
  }


def _problem(**kw):
  p = ImportanceProblem(_model(), N, B, **kw)
  # float64 importances (the model's type) so finite differences are meaningful
  assert p.z.dtype == tf.float64 and p.z_all.dtype == tf.float64
  return p


def test_inner_cost_is_the_importance_weighted_mean():
  rng = np.random.default_rng(0)
  p = _problem()
  batch = _batch(rng, np.arange(B))
  z = rng.normal(size=B)
  w = [tf.convert_to_tensor(v) for v in p.inner_variables]
  logits = batch["train"]["x"].numpy() @ w[0].numpy() + w[1].numpy()
  logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  ce = -logp[np.arange(B), batch["train"]["y"].numpy()]
  a = 0.5 * (np.tanh(z) + 1)
  got = p.inner_cost([tf.constant(z)], w, batch).numpy()
  np.testing.assert_allclose(got, np.sum(a * ce) / np.sum(a), rtol=1e-12)


def test_penalty_hypergradient_matches_central_differences_through_keras():
  rng = np.random.default_rng(1)
  p = _problem()
  cfg = Penalty.default_config()
  cfg.update(rho0=5.0, nu0=0.1)
  method = Penalty(p, cfg)
  batch = _batch(rng, np.arange(B))
  p.z.assign(rng.normal(size=B))
  got = method.hypergradient(batch)[0].numpy()
  v = [tf.convert_to_tensor(x) for x in p.inner_variables]

  def h_up(z):
    _, t = method._objectives([tf.constant(z)], v, batch, wrt=v)
    return (t["f"] + t["lag"] + 0.5 * method.rho * t["sq"]).numpy()

  z0, h = p.z.numpy(), 1e-6
  fd = np.array([(h_up(z0 + h * e) - h_up(z0 - h * e)) / (2 * h) for e in np.eye(B)])
  assert np.abs(fd).max() > 1e-4
  np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-9)


def test_batch_slot_is_loaded_and_written_back():
  rng = np.random.default_rng(2)
  p = _problem()
  a = rng.uniform(0.05, 0.95, size=N)
  p.set_importances(a)
  index = np.array([3, 17, 0, 9, 12, 5])
  method = Penalty(p, Penalty.default_config())
  before = p.importances()
  combined_step(p, method)(_batch(rng, index))
  after = p.importances()
  untouched = np.setdiff1d(np.arange(N), index)
  np.testing.assert_array_equal(after[untouched], before[untouched])
  assert np.all(after[index] != before[index])
  np.testing.assert_allclose(after[index], 0.5 * (np.tanh(p.z.numpy()) + 1), rtol=1e-12)


def test_per_example_state_keeps_moments_per_point():
  rng = np.random.default_rng(3)
  p = ImportanceProblem(_model("float32"), N, B, per_example_state=True)
  method = Penalty(p, Penalty.default_config())
  step = combined_step(p, method)
  first, second = np.arange(B), np.arange(B, 2 * B)
  step(_batch(rng, first, np.float32))
  m_first = p.slot.state_rows[0].numpy()[first].copy()
  step(_batch(rng, second, np.float32))
  # The second batch's moments start from zero, and the first batch's are kept aside.
  np.testing.assert_array_equal(p.slot.state_rows[0].numpy()[first], m_first)
  assert np.all(p.slot.state_rows[0].numpy()[second] != 0)
  np.testing.assert_allclose(method.opt_u.m[0].numpy(), p.slot.state_rows[0].numpy()[second])


def test_renormalise_sets_mean_one_half_and_clips():
  p = _problem()
  p.set_importances(np.r_[np.full(N - 1, 0.1), 0.99])
  p.renormalise()
  a = p.importances()
  assert a.max() <= 0.99999 + 1e-9 and a.min() >= 1e-5
  np.testing.assert_allclose(a[:-1], 0.5 * 0.1 / np.mean(np.r_[np.full(N - 1, 0.1), 0.99]),
                             rtol=1e-9)


def test_logit_round_trip():
  a = np.array([0.2, 0.5, 0.8])
  np.testing.assert_allclose(0.5 * (np.tanh(logit_from_importance(a)) + 1), a, rtol=1e-6)
