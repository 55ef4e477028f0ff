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


def test_inner_momentum_at_zero_is_the_gd_reverse_pass():
  """The autodiff path with momentum 0 unrolls the same map as the hand-written reverse pass."""
  p = Smooth(seed=3)
  gd = _rmd(p, 0.3, 4).hypergradient(None)[0].numpy()
  auto = _rmd(p, 0.3, 4, inner_optimizer="momentum",
              inner_optimizer_args={"momentum": 0.0}).hypergradient(None)[0].numpy()
  np.testing.assert_allclose(auto, gd, rtol=1e-12)


def _numpy_adam_F(p, u, lr_v, T, b1=0.9, b2=0.999, eps=1e-8):
  """f(u, v_T(u)) for T Adam steps on g from the problem's v (fresh moments): numpy Adam,
  TensorFlow only for grad_v g."""
  v = [x.numpy().copy() for x in p.inner_variables]
  m = [np.zeros_like(x) for x in v]
  s = [np.zeros_like(x) for x in v]
  ut = tf.constant(u)
  for t in range(1, T + 1):
    vt = [tf.constant(x) for x in v]
    with tf.GradientTape() as tape:
      tape.watch(vt)
      g = p.inner_cost([ut], vt, None)
    grads = [x.numpy() for x in tape.gradient(g, vt)]
    rate = lr_v * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    for i, gi in enumerate(grads):
      m[i] = b1 * m[i] + (1 - b1) * gi
      s[i] = b2 * s[i] + (1 - b2) * gi ** 2
      v[i] = v[i] - rate * m[i] / (np.sqrt(s[i]) + eps)
  return float(p.outer_cost([ut], [tf.constant(x) for x in v], None))


@pytest.mark.parametrize("T", [1, 3])
def test_inner_adam_hypergradient_matches_float64_central_differences(T):
  p = Smooth(seed=20 + T)
  method = _rmd(p, 0.05, T, inner_optimizer="adam")
  got = method.hypergradient(None)[0].numpy()
  u0, h = p.u.numpy(), 1e-6
  numeric = np.array([(_numpy_adam_F(p, u0 + h * e, 0.05, T) -
                       _numpy_adam_F(p, u0 - h * e, 0.05, T)) / (2 * h) for e in np.eye(len(u0))])
  assert np.abs(numeric).max() > 1e-3
  np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-8)
  compiled = tf.function(method.hypergradient)(None)[0].numpy()
  np.testing.assert_allclose(compiled, got, rtol=1e-12)
  # The step moves v to the Adam iterate the numpy loop reaches.
  method.step(None)
  assert float(p.outer_cost([tf.constant(u0)], [tf.convert_to_tensor(x) for x in
                                                 p.inner_variables], None)) == pytest.approx(
      _numpy_adam_F(p.__class__(seed=20 + T), u0, 0.05, T), rel=1e-10)


def test_unknown_inner_optimizer_is_a_clear_error():
  with pytest.raises(ValueError, match="rmd.inner_optimizer must be 'gd' or one of"):
    _rmd(Smooth(), 0.1, 2, inner_optimizer="lbfgs")
