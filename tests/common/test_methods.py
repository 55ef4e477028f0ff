"""The suite every registered bilevel method must pass (DESIGN.md, "one parameterised test
suite"): on the closed-form quadratic of ``tests/quadratic.py``, in float64,

  * the compiled step converges to the method's known limit, traces once, returns finite
    scalar metrics, and gives the same numbers under XLA;
  * a method that exposes ``hypergradient`` agrees, where it should be exact, with the closed
    form and with central finite differences of the function it differentiates.

A method's *limit* is where it provably goes, which is not always the bilevel optimum u*:
GD stops where the partial gradient of f vanishes, RMD at T steps where the gradient of the
T-step unrolled objective vanishes, ApproxGrad at the sigma-damped solution. Testing each
against its own closed form (and checking that it differs from u*) catches an implementation
that is right for the wrong reason. A method added to the registry without its cases here
fails ``test_every_registered_method_has_cases``.
"""

import dataclasses
from typing import Callable, Optional

import numpy as np
import pytest
import tensorflow as tf

from common import bilevel
from tests.quadratic import JointQuadratic, Quadratic, Regression

SEED = 4


def _limit_exact(p):
  u = p.u_star()
  return u, p.v_star(u)


def _limit_gd(p):
  # grad_u f(u, v*(u)) = D u = 0.
  u = np.zeros_like(p.u.numpy())
  return u, p.v_star(u)


def _rmd_jacobian(p, lr_v, T, legacy=False):
  """d v_T / d u of T GD steps v <- v - lr_v (A v - B u), from the T-step unrolled map."""
  n = len(p.c)
  M = np.eye(n) - lr_v * p.A
  k = T - 1 if legacy else T
  return lr_v * sum(np.linalg.matrix_power(M, j) for j in range(k)) @ p.B \
      if k > 0 else np.zeros_like(p.B)


def _limit_rmd(lr_v, T):
  def limit(p):
    # v is warm-started, so at the fixed point v = v*(u) and the u-step solves
    # D u + J' (v*(u) - c) = 0 with J = d v_T / d u (truncated at T steps).
    J = _rmd_jacobian(p, lr_v, T)
    K = np.linalg.solve(p.A, p.B)
    u = np.linalg.solve(p.D + J.T @ K, J.T @ p.c)
    return u, p.v_star(u)
  return limit


def _limit_approxgrad(sigma):
  def limit(p):
    # p = (A + sigma I)^-1 (v - c) and D u + B' p = 0 at v = v*(u).
    K = np.linalg.solve(p.A, p.B)
    S = np.linalg.solve(p.A + sigma * np.eye(len(p.c)), np.eye(len(p.c)))
    u = np.linalg.solve(p.D + p.B.T @ S @ K, p.B.T @ S @ p.c)
    return u, p.v_star(u)
  return limit


def _limit_plain(p):
  u = p.u.numpy()      # u never moves; v goes to v*(u0)
  return u, p.v_star(u)


def _limit_reweighting(p):
  # Reweighting against the exact clean set recovers theta* despite the outliers (the plain
  # least-squares fit is 1.7 away); the step-to-step reselection of examples leaves a small
  # residual, hence this case's loose tolerance.
  return np.zeros(0), p.theta_star


def _limit_least_squares(p):
  # Uniform weights: the plain mean loss, whose minimiser is the least-squares fit. Random
  # weights have mean 1 / n for every row (by symmetry), so they hover around it too.
  return np.zeros(0), p.least_squares()


def _limit_batch_ratio(k):
  # The batch's majority label (class 0, the non-outliers) weighs r = 0.1 / (0.4 + 0.6 / K)
  # of the others: the weighted least-squares fit with those weights (normalising the weights
  # does not move the minimiser).
  def limit(p):
    w = np.ones(p.batch_size)
    w[:p.batch_size - p.outliers] = 0.1 / (0.4 + 0.6 / k)
    return np.zeros(0), p.weighted_least_squares(w)
  return limit


def _limit_joint(weight_decay):
  def limit(p):
    return p.joint_minimiser(weight_decay)
  return limit


def _outlier_labels(p):
  # Class 1 for the outlier rows, class 0 for the rest: what the class_ratio rule weighs by.
  y = np.zeros(p.batch_size, np.int32)
  y[p.batch_size - p.outliers:] = 1
  return {"train": {"y": tf.constant(y)}}


@dataclasses.dataclass
class Case:
  config: dict
  limit: Callable
  steps: int
  atol: float
  differs_from_optimum: bool = False   # the limit is provably not u* (reweighting: theta*)
  problem: Callable = lambda seed: Quadratic(seed=seed)
  batch: Callable = lambda problem: None
  # XLA gives the same numbers; not for random weights: TensorFlow's stateful generator draws
  # another stream under XLA (its XLA kernel), so only finiteness is compared there.
  xla_same_numbers: bool = True


R = 1.0 / 1.1
RMD_LR_V, RMD_T = 0.2, 3
AG_SIGMA = 1.0

CASES = {
    "penalty": Case(dict(lr_u=5e-2, lr_v=5e-2, inner_steps=20, rho0=1.0, lamb0=1e-2, eps0=0.1,
                         nu0=0.0, c_rho=1.1, c_lamb=R, c_eps=R, lr_decay=R,
                         convergence_test="squared"),
                    _limit_exact, 3000, 1e-2),
    "approxgrad": Case(dict(lr_u=1e-2, lr_v=3e-2, lr_p=3e-2, sigma=AG_SIGMA, inner_steps=10,
                            p_steps=10),
                       _limit_approxgrad(AG_SIGMA), 3000, 1e-2, differs_from_optimum=True),
    "rmd": Case(dict(lr_u=0.1, lr_v=RMD_LR_V, inner_steps=RMD_T), _limit_rmd(RMD_LR_V, RMD_T),
                1500, 1e-8, differs_from_optimum=True),
    "gd": Case(dict(lr_u=1e-2, lr_v=3e-2, inner_steps=10), _limit_gd, 3000, 1e-2,
               differs_from_optimum=True),
    "plain": Case(dict(lr=3e-2), _limit_plain, 1500, 1e-2, differs_from_optimum=True),
    # Example reweighting: no outer variables, a problem with per-example losses.
    "l2rw": Case(dict(lr=1e-2, momentum=0.9), _limit_reweighting, 3000, 0.15,
                 problem=lambda seed: Regression(seed=seed)),
    # Splits of 3 rows: split 0 (validation) and two more are clean, the last holds the
    # outliers, whose weight goes to about 0.
    "proximal": Case(dict(lr=3e-2, splits=4, mu=0.01), _limit_reweighting, 3000, 0.15,
                     problem=lambda seed: Regression(seed=seed)),
    # The fixed-rule weights: uniform and random go to the least-squares fit; weighing the
    # outliers' class by 0 recovers theta* exactly.
    "uniform": Case(dict(lr=3e-2, momentum=0.9), _limit_least_squares, 1500, 1e-6,
                    differs_from_optimum=True, problem=lambda seed: Regression(seed=seed)),
    "random": Case(dict(lr=5e-4, momentum=0.9, seed=1), _limit_least_squares, 4000, 0.15,
                   differs_from_optimum=True, problem=lambda seed: Regression(seed=seed),
                   xla_same_numbers=False),
    # Data parameters: u (a temperature tensor's stand-in) descends g with v, v with coupled
    # decay; the limit is the joint minimiser of g + wd/2 |v|^2, not the bilevel optimum.
    "data_parameters": Case(dict(lr=0.05, momentum=0.9, weight_decay=0.1,
                                 data_params=dict(lr_class_param=0.05, lr_inst_param=0.05,
                                                  momentum=0.9)),
                            _limit_joint(0.1), 1500, 1e-8, differs_from_optimum=True,
                            problem=lambda seed: JointQuadratic(seed=seed)),
    "batch_ratio": Case(dict(lr=3e-2, momentum=0.9, num_classes=10), _limit_batch_ratio(10),
                        1500, 1e-6, differs_from_optimum=True,
                        problem=lambda seed: Regression(seed=seed),
                        batch=_outlier_labels),
    "class_ratio": Case(dict(lr=3e-2, momentum=0.9, class_weights=(1.0 / 9, 0.0)),
                        _limit_reweighting, 1500, 1e-6,
                        problem=lambda seed: Regression(seed=seed), batch=_outlier_labels),
}


def _flat(variables):
  return np.concatenate([np.ravel(v.numpy()) for v in variables] or [np.zeros(0)])


def _build(name, problem, **overrides):
  cfg = bilevel.get_method(name).default_config()
  cfg.update(CASES[name].config)
  cfg.update(overrides)
  return bilevel.build_method(name, problem, cfg)


def test_every_registered_method_has_cases():
  assert set(CASES) == set(bilevel.METHODS)
  exposing = {n for n, m in bilevel.METHODS.items() if hasattr(m, "hypergradient")}
  assert exposing == set(HYPERGRADIENT_CASES), "every hypergradient needs its exactness case"


@pytest.mark.parametrize("name", sorted(CASES))
def test_converges_to_its_closed_form_limit_traces_once_finite_metrics(name):
  case = CASES[name]
  p = case.problem(SEED)
  u_lim, v_lim = case.limit(p)
  if isinstance(p, Quadratic):
    gap = np.linalg.norm(u_lim - p.u_star())
    assert (gap > 20 * case.atol) == case.differs_from_optimum, gap
  else:   # reweighting: the problem separates theta* from the unweighted fit
    assert np.linalg.norm(p.least_squares() - p.theta_star) > 1.0
    gap = np.linalg.norm(v_lim - p.theta_star)
    assert (gap > 5 * case.atol) == case.differs_from_optimum, gap
  u0, v0 = _flat(p.outer_variables), _flat(p.inner_variables)
  assert np.linalg.norm(u0 - u_lim) + np.linalg.norm(v0 - v_lim) > 0.5
  method = _build(name, p)
  step = tf.function(bilevel.combined_step(p, method))
  batch = case.batch(p)
  for _ in range(case.steps):
    metrics = step(batch)
  for key, value in metrics.items():
    assert value.shape == (), key
    assert np.isfinite(value.numpy()), key
  assert step.experimental_get_tracing_count() == 1
  np.testing.assert_allclose(_flat(p.outer_variables), u_lim, atol=case.atol)
  np.testing.assert_allclose(_flat(p.inner_variables), v_lim, atol=case.atol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_xla_step_equals_the_plain_graph(name):
  results = []
  for jit in (False, True):
    p = CASES[name].problem(SEED + 1)
    method = _build(name, p)
    step = tf.function(bilevel.combined_step(p, method), jit_compile=jit)
    for _ in range(4):
      metrics = step(CASES[name].batch(p))
    results.append([_flat(p.outer_variables), _flat(p.inner_variables)]
                   + [m.numpy() for m in metrics.values()])
  for a, b in zip(*results):
    assert np.all(np.isfinite(b))
    if CASES[name].xla_same_numbers:
      np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# -- hypergradients ----------------------------------------------------------------------------


def _central_differences(F, u, h=1e-5):
  return np.array([(F(u + h * e) - F(u - h * e)) / (2 * h) for e in np.eye(len(u))])


def _F_exact(p):
  return lambda u: 0.5 * np.sum((p.v_star(u) - p.c) ** 2) + 0.5 * u @ p.D @ u


@dataclasses.dataclass
class HyperCase:
  """Put ``method`` in a state where its hypergradient is exact for ``F``; give the closed form."""
  prepare: Callable        # (problem, method) -> None
  F: Callable              # problem -> numpy function of u whose gradient it should be
  closed_form: Callable    # problem -> expected gradient at the current u
  rtol: float
  overrides: Optional[dict] = None


def _prepare_approxgrad(p, m):
  p.v.assign(p.v_star(p.u.numpy()))
  m.p[0].assign(np.linalg.solve(p.A, p.v.numpy() - p.c))        # H^-1 grad_v f


def _prepare_penalty(p, m):
  # v = argmin_v h_low at a large rho (nu = 0, lambda = 0): h_low is quadratic in v.
  rho = 1e7
  m.rho.assign(rho)
  n = len(p.c)
  u = p.u.numpy()
  p.v.assign(np.linalg.solve(np.eye(n) + rho * p.A @ p.A, p.c + rho * p.A @ p.B @ u))


def _rmd_F(T):
  def F_of(p):
    v0 = p.v.numpy().copy()

    def F(u):
      v = v0
      for _ in range(T):
        v = v - RMD_LR_V * (p.A @ v - p.B @ u)
      return 0.5 * np.sum((v - p.c) ** 2) + 0.5 * u @ p.D @ u
    return F
  return F_of


def _rmd_closed_form(T, legacy=False):
  def closed(p):
    u, v = p.u.numpy(), p.v.numpy()
    for _ in range(T):
      v = v - RMD_LR_V * (p.A @ v - p.B @ u)
    return p.D @ u + _rmd_jacobian(p, RMD_LR_V, T, legacy).T @ (v - p.c)
  return closed


HYPERGRADIENT_CASES = {
    "approxgrad": [HyperCase(_prepare_approxgrad, _F_exact, lambda p: p.hypergradient(p.u.numpy()),
                             1e-10, dict(sigma=0.0))],
    "penalty": [HyperCase(_prepare_penalty, _F_exact, lambda p: p.hypergradient(p.u.numpy()),
                          1e-5, dict(nu0=0.0, lamb0=0.0))],
    "rmd": [HyperCase(lambda p, m: None, _rmd_F(T), _rmd_closed_form(T), 1e-10,
                      dict(inner_steps=T)) for T in (1, 5)],
}


@pytest.mark.parametrize("name,index", [(n, i) for n in sorted(HYPERGRADIENT_CASES)
                                        for i in range(len(HYPERGRADIENT_CASES[n]))])
def test_hypergradient_where_exact_matches_closed_form_and_finite_differences(name, index):
  case = HYPERGRADIENT_CASES[name][index]
  p = Quadratic(seed=SEED + 2)
  method = _build(name, p, **(case.overrides or {}))
  case.prepare(p, method)
  u_before, v_before = p.u.numpy(), p.v.numpy()
  got = method.hypergradient(None)[0].numpy()
  np.testing.assert_array_equal(p.u.numpy(), u_before)    # a pure query: nothing moved
  np.testing.assert_array_equal(p.v.numpy(), v_before)
  expected = case.closed_form(p)
  np.testing.assert_allclose(got, expected, rtol=case.rtol, atol=1e-12)
  fd = _central_differences(case.F(p), p.u.numpy())
  np.testing.assert_allclose(got, fd, rtol=max(case.rtol, 1e-7), atol=1e-8)


def test_the_gradient_helper_is_tape_gradient_with_its_two_options():
  # The one place every method takes a gradient: on one device it equals tape.gradient, an
  # unconnected source is zeros only when asked, and a named check turns None into an error.
  x, y = tf.constant([1.0, 2.0], tf.float64), tf.constant(3.0, tf.float64)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([x, y])
    cost = tf.reduce_sum(x ** 2)
  got = bilevel.base.gradients(tape, cost, [x, y])
  np.testing.assert_array_equal(got[0].numpy(), tape.gradient(cost, x).numpy())
  assert got[1] is None
  zeros = bilevel.base.gradients(tape, cost, [x, y], zero_unconnected=True)
  np.testing.assert_array_equal(zeros[1].numpy(), 0.0)
  with pytest.raises(ValueError, match="the test cost is not connected to 1 of its variables"):
    bilevel.base.gradients(tape, cost, [x, y], "the test cost", ["x", "y"])


@pytest.mark.parametrize("name,problem", [("l2rw", lambda: Quadratic()),
                                          ("data_parameters", lambda: Regression()),
                                          ("proximal", lambda: JointQuadratic())])
def test_build_method_refuses_a_problem_without_its_interface(name, problem):
  """Each method names the problem interface it works on; any other problem is refused up
  front with both names, not failed on deep inside a traced step."""
  method = bilevel.get_method(name)
  with pytest.raises(ValueError, match=method.problem_interface.__name__):
    _build(name, problem())


class _BoxedQuadratic(Quadratic):
  """The quadratic with u confined to the box [-0.01, 0.01]: every step must end inside."""

  def project_outer(self, u):
    return [tf.clip_by_value(x, -0.01, 0.01) for x in u]


@pytest.mark.parametrize("name", sorted(n for n, m in bilevel.METHODS.items()
                                        if m.needs_outer_variables))
def test_every_step_on_u_is_projected(name):
  p = _BoxedQuadratic(seed=3)
  method = _build(name, p)
  step = tf.function(bilevel.combined_step(p, method))
  moved = False
  for _ in range(5):
    before = p.u.numpy().copy()
    step({})
    moved |= not np.allclose(p.u.numpy(), before)
    assert np.all(np.abs(p.u.numpy()) <= 0.01 + 1e-15), (name, p.u.numpy())
  assert moved, f"{name} never moved u: the test would prove nothing"
