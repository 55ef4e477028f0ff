"""RMD on a non-quadratic problem: its reverse pass equals automatic differentiation through
the unrolled loop (Hessians that change along the trajectory, two inner tensors)."""

import numpy as np
import pytest
import tensorflow as tf

from common.bilevel import RMD, BilevelProblem


class Smooth(BilevelProblem):
  """g and f with state-dependent Hessians; v is two tensors, u one."""

  def __init__(self, seed=0):
    super().__init__()
    rng = np.random.default_rng(seed)
    self.M = tf.constant(rng.normal(size=(4, 3)), tf.float64)
    self.u = tf.Variable(rng.normal(size=3), dtype=tf.float64)
    self.v1 = tf.Variable(rng.normal(size=4), dtype=tf.float64)
    self.v2 = tf.Variable(rng.normal(size=2), dtype=tf.float64)
    self.outer_variables = [self.u]
    self.inner_variables = [self.v1, self.v2]

  def inner_cost(self, u, v, batch):
    (u,), (v1, v2) = u, v
    return (tf.reduce_sum(tf.math.softplus(v1 - tf.linalg.matvec(self.M, u)))
            + 0.5 * tf.reduce_sum(v1 ** 2) + 0.25 * tf.reduce_sum((v2 - tf.tanh(u[:2])) ** 4)
            + 0.5 * tf.reduce_sum(v2 ** 2))

  def outer_cost(self, u, v, batch):
    (u,), (v1, v2) = u, v
    return (tf.reduce_sum(tf.sin(v1)) + tf.reduce_sum((v2 - 1.0) ** 2)
            + 0.1 * tf.reduce_sum(u ** 2) + tf.reduce_sum(v1[:3] * u))


def _autodiff_through_the_loop(p, lr_v, T):
  u = tf.convert_to_tensor(p.u)
  v0 = [tf.convert_to_tensor(x) for x in p.inner_variables]
  with tf.GradientTape() as tape:
    tape.watch(u)
    v = v0
    for _ in range(T):
      with tf.GradientTape() as inner:
        inner.watch(v)
        g = p.inner_cost([u], v, None)
      v = [x - lr_v * gx for x, gx in zip(v, inner.gradient(g, v))]
    f = p.outer_cost([u], v, None)
  return tape.gradient(f, u).numpy(), [x.numpy() for x in v]


def _rmd(p, lr_v, T, **kw):
  cfg = RMD.default_config()
  cfg.update(dict(lr_v=lr_v, lr_u=0.05, inner_steps=T, **kw))
  return RMD(p, cfg)


@pytest.mark.parametrize("T", [1, 2, 7])
def test_reverse_pass_equals_autodiff_through_the_unrolled_loop(T):
  p = Smooth(seed=T)
  expected, _ = _autodiff_through_the_loop(p, 0.3, T)
  method = _rmd(p, 0.3, T)
  np.testing.assert_allclose(method.hypergradient(None)[0].numpy(), expected, rtol=1e-12)
  compiled = tf.function(method.hypergradient)
  np.testing.assert_allclose(compiled(None)[0].numpy(), expected, rtol=1e-12)


def test_legacy_rule_drops_exactly_the_first_steps_jacobian():
  """Legacy at T = 1 is grad_u f at v_1; at T the difference is the first step's term."""
  p = Smooth(seed=11)
  legacy1 = _rmd(p, 0.3, 1, legacy_skip_first_jacobian=True).hypergradient(None)[0].numpy()
  u = tf.convert_to_tensor(p.u)
  _, v1 = _autodiff_through_the_loop(p, 0.3, 1)
  with tf.GradientTape() as tape:
    tape.watch(u)
    f = p.outer_cost([u], [tf.constant(x) for x in v1], None)
  np.testing.assert_allclose(legacy1, tape.gradient(f, u).numpy(), rtol=1e-12)
  full = _rmd(p, 0.3, 4).hypergradient(None)[0].numpy()
  legacy = _rmd(p, 0.3, 4, legacy_skip_first_jacobian=True).hypergradient(None)[0].numpy()
  assert np.linalg.norm(full - legacy) > 1e-3 * np.linalg.norm(full)


def test_step_moves_v_to_the_last_iterate_and_u_by_plain_gradient_descent():
  p = Smooth(seed=5)
  grad, v_T = _autodiff_through_the_loop(p, 0.3, 3)
  u0 = p.u.numpy()
  metrics = _rmd(p, 0.3, 3).step(None)
  for var, x in zip(p.inner_variables, v_T):
    np.testing.assert_allclose(var.numpy(), x, rtol=1e-12)
  np.testing.assert_allclose(p.u.numpy(), u0 - 0.05 * grad, rtol=1e-12)
  np.testing.assert_allclose(metrics["hypergradient_sq"].numpy(), grad @ grad, rtol=1e-12)
