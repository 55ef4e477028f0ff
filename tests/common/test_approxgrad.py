"""ApproxGrad against closed forms and float64 finite differences on the quadratic problem."""

import numpy as np
import tensorflow as tf

from common.bilevel import ApproxGrad, combined_step
from tests.quadratic import Quadratic


def _config(**kw):
  cfg = ApproxGrad.default_config()
  cfg.update(dict(lr_u=1e-2, lr_v=1e-2, lr_p=1e-2, sigma=1e-3, inner_steps=5, p_steps=5))
  cfg.update(kw)
  return cfg


def test_hypergradient_with_the_exact_p_is_the_implicit_hypergradient():
  p = Quadratic(seed=10)
  method = ApproxGrad(p, _config(sigma=0.0))
  u = p.u.numpy()
  p.v.assign(p.v_star(u))
  method.p[0].assign(np.linalg.solve(p.A, p.v.numpy() - p.c))   # H^-1 grad_v f
  np.testing.assert_allclose(method.hypergradient(None)[0].numpy(), p.hypergradient(u),
                             rtol=1e-10)


def test_residual_gradient_matches_central_differences():
  p = Quadratic(seed=11)
  method = ApproxGrad(p, _config(sigma=0.3))
  q0 = np.random.default_rng(0).normal(size=p.v.shape)
  method.p[0].assign(q0)
  residual, grad = method.residual_and_grad(None)

  def R(q):
    r = p.A @ q + 0.3 * q - (p.v.numpy() - p.c)
    return r @ r

  np.testing.assert_allclose(residual.numpy(), R(q0), rtol=1e-12)
  h = 1e-6
  fd = np.array([(R(q0 + h * e) - R(q0 - h * e)) / (2 * h) for e in np.eye(len(q0))])
  np.testing.assert_allclose(grad[0].numpy(), fd, rtol=1e-7, atol=1e-8)


def test_steps_converge_to_the_bilevel_optimum():
  p = Quadratic(seed=4)
  method = ApproxGrad(p, _config(lr_u=1e-2, lr_v=3e-2, lr_p=3e-2, sigma=1e-6, inner_steps=10,
                                 p_steps=10))
  step = tf.function(combined_step(p, method))
  for _ in range(3000):
    m = step(None)
  u_star = p.u_star()
  np.testing.assert_allclose(p.u.numpy(), u_star, atol=2e-2)
  np.testing.assert_allclose(method.p[0].numpy(),
                             np.linalg.solve(p.A, p.v_star(u_star) - p.c), atol=2e-2)
  assert m["residual"].numpy() < 1e-3
  assert step.experimental_get_tracing_count() == 1
