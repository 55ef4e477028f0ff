"""The penalty method against closed forms and float64 finite differences."""

import numpy as np
import pytest
import tensorflow as tf

from common.bilevel import Penalty, combined_step
from tests.quadratic import Quadratic


def _config(**overrides):
  cfg = Penalty.default_config()
  cfg.update(dict(lr_u=1e-2, lr_v=1e-2, rho0=1.0, lamb0=1e-2, eps0=1e-2, nu0=0.0,
                  inner_steps=5))
  cfg.update(overrides)
  return cfg


def _h_up_numpy(p, u, v, nu, rho):
  grad_v_g = p.A @ v - p.B @ u
  f = 0.5 * np.sum((v - p.c) ** 2) + 0.5 * u @ p.D @ u
  return f + nu @ grad_v_g + 0.5 * rho * grad_v_g @ grad_v_g


def test_hypergradient_matches_float64_central_differences():
  p = Quadratic(seed=1)
  method = Penalty(p, _config(nu0=0.3, rho0=7.0))
  u, v = p.u.numpy(), p.v.numpy()
  nu = 0.3 * np.ones_like(v)
  got = method.hypergradient(batch=None)[0].numpy()
  h = 1e-6
  fd = np.array([(_h_up_numpy(p, u + h * e, v, nu, 7.0) - _h_up_numpy(p, u - h * e, v, nu, 7.0))
                 / (2 * h) for e in np.eye(len(u))])
  np.testing.assert_allclose(got, fd, rtol=1e-8, atol=1e-8)


def test_grad_v_lower_matches_closed_form():
  p = Quadratic(seed=2)
  method = Penalty(p, _config(nu0=0.1, rho0=3.0, lamb0=0.5))
  u, v = p.u.numpy(), p.v.numpy()
  nu = 0.1 * np.ones_like(v)
  gvg = p.A @ v - p.B @ u
  expected = (v - p.c) + p.A @ (nu + 3.0 * gvg) + 0.5 * gvg
  np.testing.assert_allclose(method.grad_v_lower(None)[0].numpy(), expected, rtol=1e-10)


def test_hypergradient_converges_to_exact_as_rho_grows():
  """At v = argmin_v h_low, grad_u h_up -> dF/du with error O(1/rho)."""
  p = Quadratic(seed=3)
  method = Penalty(p, _config(lamb0=1e-2))
  u = p.u.numpy()
  exact = p.hypergradient(u)
  errors = []
  for rho in [1.0, 10.0, 100.0, 1e3, 1e4, 1e5]:
    method.rho.assign(rho)
    lam = method.lamb.numpy()
    n = len(p.c)
    # h_low is quadratic in v: (I + rho A^2 + lam A) v = c + (rho A + lam I) B u
    v_rho = np.linalg.solve(np.eye(n) + rho * p.A @ p.A + lam * p.A,
                            p.c + (rho * p.A + lam * np.eye(n)) @ p.B @ u)
    p.v.assign(v_rho)
    np.testing.assert_allclose(method.grad_v_lower(None)[0].numpy(), 0.0, atol=1e-8)
    errors.append(np.linalg.norm(method.hypergradient(None)[0].numpy() - exact))
  assert all(b < a for a, b in zip(errors, errors[1:])), errors
  assert errors[-1] < 1e-4 * np.linalg.norm(exact), errors
  # O(1/rho): ten times rho, about a tenth of the error.
  assert 0.05 < errors[-1] / errors[-2] < 0.2, errors


def test_steps_converge_to_the_bilevel_optimum():
  """The synthetic-problem schedule (lambda, eps and learning rates divided by c_rho)."""
  p = Quadratic(seed=4)
  r = 1.0 / 1.1
  method = Penalty(p, _config(lr_u=5e-2, lr_v=5e-2, inner_steps=20, rho0=1.0, eps0=0.1,
                              c_rho=1.1, c_lamb=r, c_eps=r, lr_decay=r,
                              convergence_test="squared"))
  u_star = p.u_star()
  assert np.linalg.norm(p.u.numpy() - u_star) > 1.0
  step = tf.function(combined_step(p, method))
  for _ in range(3000):
    step(None)
  assert method.num_passed.numpy() > 20
  np.testing.assert_allclose(p.u.numpy(), u_star, atol=1e-2)
  np.testing.assert_allclose(p.v.numpy(), p.v_star(u_star), atol=1e-2)
  assert step.experimental_get_tracing_count() == 1


def test_schedule_on_a_passed_test():
  p = Quadratic(seed=5)
  cfg = _config(eps0=1e6, rho0=2.0, lamb0=0.5, c_rho=1.5, c_lamb=0.5, c_eps=0.25,
                lr_decay=0.9, inner_steps=1)
  method = Penalty(p, cfg)
  metrics = method.step(None)
  assert metrics["passed"].numpy() == 1.0
  np.testing.assert_allclose(method.rho.numpy(), 3.0)
  np.testing.assert_allclose(method.lamb.numpy(), 0.25)
  np.testing.assert_allclose(method.eps.numpy(), 0.25e6)
  np.testing.assert_allclose(method.opt_u.learning_rate.numpy(), 0.9 * cfg.lr_u)
  np.testing.assert_allclose(method.opt_v.learning_rate.numpy(), 0.9 * cfg.lr_v)
  # nu += rho_new * grad_v g at the new (u, v)
  gvg = p.A @ p.v.numpy() - p.B @ p.u.numpy()
  np.testing.assert_allclose(method.nu[0].numpy(), 3.0 * gvg, rtol=1e-10)


def test_convergence_test_variants_disagree_where_they_should():
  """Pick eps^2 between a + b and a^2 + b^2: exactly one variant passes."""
  p = Quadratic(seed=6)
  frozen = dict(inner_steps=1, lr_u=0.0, lr_v=0.0)   # (u, v) stay put
  m = Penalty(p, _config(eps0=1e-30, **frozen)).step(None)
  a, b = m["grad_u_sq"].numpy(), m["grad_v_sq"].numpy()
  eps = np.sqrt(0.5 * ((a + b) + (a * a + b * b)))
  legacy = Penalty(p, _config(convergence_test="legacy_fourth_power", eps0=eps, **frozen))
  squared = Penalty(p, _config(convergence_test="squared", eps0=eps, **frozen))
  fourth_passes = a * a + b * b < eps * eps
  assert bool(legacy.step(None)["passed"].numpy()) == fourth_passes
  assert bool(squared.step(None)["passed"].numpy()) == (not fourth_passes)


def test_cost_that_reads_variables_is_rejected():
  """Rule 1: a cost computed from variables instead of the given tensors gives a clear error."""

  class Broken(Quadratic):
    def inner_cost(self, u, v, batch):
      return super().inner_cost([self.u], [self.v], batch)  # ignores the tensors given

  p = Broken(seed=7)
  with pytest.raises(ValueError, match="stateless_call"):
    Penalty(p, _config()).hypergradient(None)


def test_xla_compiled_step_matches_the_plain_graph():
  results = []
  for jit in (False, True):
    p = Quadratic(seed=8)
    method = Penalty(p, _config(inner_steps=4, eps0=1e5))
    step = tf.function(combined_step(p, method), jit_compile=jit)
    for _ in range(5):
      m = step(None)
    results.append((p.u.numpy(), p.v.numpy(), method.rho.numpy(), float(m["f"])))
  for a, b in zip(*results):
    np.testing.assert_allclose(a, b, rtol=1e-10)
  assert results[0][2] > 1.0  # the schedule moved, under XLA too


@pytest.mark.parametrize("frozen", [True, False])
def test_convergence_test_quantities_match_closed_forms(frozen):
  """The test's |grad_u h_up|^2 and |grad_v h_low|^2 (lambda * grad_v g included) and the
  logged terms, at the (u, v) after the step, against numpy; and the decision they give."""
  p = Quadratic(seed=9)
  nu0, rho, lam = 0.2, 3.0, 2.0
  lr = dict(lr_u=0.0, lr_v=0.0) if frozen else dict(lr_u=5e-2, lr_v=5e-2)
  method = Penalty(p, _config(nu0=nu0, rho0=rho, lamb0=lam, eps0=1e-30, inner_steps=2, **lr))
  u0, v0 = p.u.numpy(), p.v.numpy()
  m = method.step(None)
  u, v = p.u.numpy(), p.v.numpy()
  if frozen:
    np.testing.assert_array_equal(u, u0)
    np.testing.assert_array_equal(v, v0)
  else:
    assert np.abs(u - u0).max() > 1e-3 and np.abs(v - v0).max() > 1e-3
  nu = nu0 * np.ones_like(v)
  gvg = p.A @ v - p.B @ u
  grad_u = p.D @ u - p.B.T @ (nu + rho * gvg)
  grad_v_low = (v - p.c) + p.A @ (nu + rho * gvg) + lam * gvg
  a, b = grad_u @ grad_u, grad_v_low @ grad_v_low
  np.testing.assert_allclose(m["grad_u_sq"].numpy(), a, rtol=1e-10)
  np.testing.assert_allclose(m["grad_v_sq"].numpy(), b, rtol=1e-10)
  # The lambda term matters here: without it |grad_v|^2 would be far off.
  grad_v_up = grad_v_low - lam * gvg
  assert abs(grad_v_up @ grad_v_up - b) > 0.1 * b
  f = 0.5 * np.sum((v - p.c) ** 2) + 0.5 * u @ p.D @ u
  g = 0.5 * v @ p.A @ v - v @ p.B @ u
  np.testing.assert_allclose(m["f"].numpy(), f, rtol=1e-10)
  np.testing.assert_allclose(m["g"].numpy(), g, rtol=1e-10)
  np.testing.assert_allclose(m["penalty"].numpy(), 0.5 * rho * gvg @ gvg, rtol=1e-10)
  np.testing.assert_allclose(m["lagrangian"].numpy(), nu @ gvg, rtol=1e-10)
  np.testing.assert_allclose(m["lamb_g"].numpy(), lam * g, rtol=1e-10)
  assert m["passed"].numpy() == 0.0 and method.num_passed.numpy() == 0


def test_convergence_decision_uses_the_lower_level_gradient_with_lambda():
  """eps^2 between the legacy sum with and without lambda * grad_v g: the test fails with the
  term (the method's definition) and would pass without it."""
  p = Quadratic(seed=10)
  nu0, rho, lam = 0.0, 1.0, 5.0
  frozen = dict(inner_steps=1, lr_u=0.0, lr_v=0.0, nu0=nu0, rho0=rho, lamb0=lam)
  u, v = p.u.numpy(), p.v.numpy()
  gvg = p.A @ v - p.B @ u
  grad_u = p.D @ u - p.B.T @ (rho * gvg)
  with_lam = (v - p.c) + p.A @ (rho * gvg) + lam * gvg
  without = with_lam - lam * gvg
  a = grad_u @ grad_u
  full = a * a + (with_lam @ with_lam) ** 2
  partial = a * a + (without @ without) ** 2
  assert partial < full
  eps = np.sqrt(np.sqrt(partial * full))   # eps^2 strictly between the two sums
  m = Penalty(p, _config(convergence_test="legacy_fourth_power", eps0=eps, **frozen)).step(None)
  assert m["passed"].numpy() == 0.0
  # ... and with eps^2 just above the full sum it passes.
  eps = np.sqrt(1.01 * full)
  m = Penalty(p, _config(convergence_test="legacy_fourth_power", eps0=eps, **frozen)).step(None)
  assert m["passed"].numpy() == 1.0
