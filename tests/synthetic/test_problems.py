"""SMD20-SMD24 against an independent numpy transcription of the reference's table."""

import numpy as np
import pytest
import tensorflow as tf

from common import bilevel
from synthetic import problems
from synthetic.problems import PROBLEMS

ONE = np.ones(10)


def _sq(*xs):
  return sum(float(x @ x) for x in xs)


def _numpy_costs(name, u, v, A, P):
  """(f, g, error) from the reference's table, written out block by block."""
  (u1, u2), (v1, v2), (A1, A2), (P1, P2) = u, v, A, P
  if name == "smd20":
    return (_sq(v1, v2, u1, u2) - 1, _sq(ONE - u1 - v1, ONE - u2 - v2),
            np.sqrt(_sq(u1 - .5, u2 - .5, v1 - .5, v2 - .5)))
  if name == "smd21":
    return (_sq(v1, v2) - _sq(u1 - v1, u2 - v2), _sq(u1 - v1, u2 - v2),
            np.sqrt(_sq(u1, u2, v1, v2)))
  if name == "smd22":
    return (_sq(A1 @ v1, A2 @ v2) - _sq(A1 @ (u1 - v1), A2 @ (u2 - v2)),
            _sq(A1 @ (u1 - v1), A2 @ (u2 - v2)), np.sqrt(_sq(P1 @ u1, P2 @ u2, P1 @ v1, P2 @ v2)))
  if name == "smd23":
    return (_sq(v1, v2) - _sq(A1 @ (u1 - v1), A2 @ (u2 - v2)),
            _sq(A1 @ (u1 - v1), A2 @ (u2 - v2)), np.sqrt(_sq(P1 @ u1, P2 @ u2, v1, v2)))
  if name == "smd24":
    return (_sq(v1, v2, u1, u2), _sq(A1 @ (ONE - u1 - v1), A2 @ (ONE - u2 - v2)),
            np.sqrt(_sq(P1 @ (u1 - .5), P2 @ (u2 - .5), P1 @ (v1 - .5), P2 @ (v2 - .5))))
  raise KeyError(name)


def _state(p):
  return ([x.numpy() for x in p.outer_variables], [x.numpy() for x in p.inner_variables],
          [a.numpy() for a in p.A], [q.numpy() for q in p.P])


def _evaluate(p, u, v):
  u = [tf.constant(x, p.dtype) for x in u]
  v = [tf.constant(x, p.dtype) for x in v]
  return (float(p.outer_cost(u, v, None)), float(p.inner_cost(u, v, None)),
          float(tf.sqrt(p.squared_error(u, v))))


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_costs_and_error_match_the_reference_table(name):
  p = PROBLEMS[name](dtype=tf.float64)
  p.reinitialise([3, 1])
  u, v, A, P = _state(p)
  np.testing.assert_allclose(_evaluate(p, u, v), _numpy_costs(name, u, v, A, P), rtol=1e-12)
  assert all(a.shape == (5, 10) for a in A)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_initialisation_is_seeded_boxed_and_centred(name):
  p = PROBLEMS[name](dtype=tf.float64)
  p.reinitialise([0, 0])
  first = _state(p)
  p.reinitialise([0, 1])
  other = _state(p)
  p.reinitialise([0, 0])
  again = _state(p)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.allclose(np.asarray(first[0]), np.asarray(other[0]))
  samples = np.concatenate([np.ravel(_state(p)[0] + _state(p)[1])
                            for s in range(50) if p.reinitialise([1, s]) is None])
  assert samples.min() >= -5 and samples.max() <= 5
  # Uniform on [c + s(-5 - c), c + s(5 - c)]: mean c (1 - s), std 10 s / sqrt(12).
  assert abs(samples.mean() - p.centre * (1 - problems.SPREAD)) < 0.2
  assert abs(samples.std() - 10 * problems.SPREAD / np.sqrt(12)) < 0.2


def test_row_space_projectors():
  p = problems.SMD23(dtype=tf.float64)
  p.reinitialise([2, 0])
  for A, P in zip(p.A, p.P):
    A, P = A.numpy(), P.numpy()
    np.testing.assert_allclose(P @ P, P, atol=1e-12)
    np.testing.assert_allclose(P @ A.T, A.T, atol=1e-12)
    assert np.linalg.matrix_rank(P) == 5


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_error_is_zero_at_the_optimum_and_blind_to_the_null_space(name):
  p = PROBLEMS[name](dtype=tf.float64)
  p.reinitialise([4, 0])
  u, v = p.optimum()
  f, g, err = _evaluate(p, u, v)
  assert err < 1e-12
  assert abs(g) < 1e-12                    # the optimum's v solves the lower level
  # The lower-level gradient vanishes there too.
  tu = [tf.constant(x) for x in u]
  tv = [tf.constant(x) for x in v]
  with tf.GradientTape() as tape:
    tape.watch(tv)
    gg = p.inner_cost(tu, tv, None)
  for grad in tape.gradient(gg, tv):
    np.testing.assert_allclose(grad.numpy(), 0.0, atol=1e-12)
  if p.uses_matrices:
    # Moving u along null(A) leaves the measured error unchanged; moving along a row does not.
    null = np.linalg.svd(p.A[0].numpy())[2][-1]
    shifted = [u[0] + 3 * null, u[1]]
    assert _evaluate(p, shifted, v)[2] < 1e-10
    row = p.A[0].numpy()[0]
    assert _evaluate(p, [u[0] + row, u[1]], v)[2] > 0.1


@pytest.mark.parametrize("name", ["smd20", "smd21"])
def test_stated_optimum_is_stationary_for_the_bilevel_objective(name):
  """With the unique lower-level solution v*(u), grad F vanishes at the optimum (FD)."""
  p = PROBLEMS[name](dtype=tf.float64)
  v_star = {"smd20": lambda u: [ONE - x for x in u], "smd21": lambda u: list(u)}[name]
  F = lambda u: _evaluate(p, u, v_star(u))[0]
  (u1, u2), _ = p.optimum()
  h = 1e-6
  flat = np.concatenate([u1, u2])
  grad = []
  for e in np.eye(20):
    a, b = flat + h * e, flat - h * e
    grad.append((F([a[:10], a[10:]]) - F([b[:10], b[10:]])) / (2 * h))
  np.testing.assert_allclose(grad, 0.0, atol=1e-8)


def test_exact_methods_reach_smd20_and_gd_stops_at_its_own_limit():
  """ApproxGrad and the penalty method converge to u = v = 0.5 (the penalty method at the
  O(1/rho) rate of its bias, so more slowly); GD to u = 0, v = 1, whose error is exactly
  sqrt(20 * 0.25 + 20 * 0.25) = sqrt(10)."""
  final = {}
  for name, cfg in [
      ("approxgrad", dict(lr_u=3e-2, lr_v=3e-2, lr_p=3e-2, sigma=1e-6, inner_steps=5,
                          p_steps=6)),
      ("penalty", dict(lr_u=1e-1, lr_v=1e-1, rho0=1.0, lamb0=10.0, eps0=1.0, nu0=0.0,
                       c_rho=1.1, c_lamb=1 / 1.1, c_eps=1 / 1.1, lr_decay=1 / 1.1,
                       inner_steps=5)),
      ("gd", dict(lr_u=3e-2, lr_v=3e-2, inner_steps=5)),
  ]:
    p = problems.SMD20(dtype=tf.float64)
    p.reinitialise([0, 0])
    config = bilevel.get_method(name).default_config()
    config.update(cfg)
    step = tf.function(bilevel.combined_step(p, bilevel.build_method(name, p, config)))
    for _ in range(1500):
      step(None)
    final[name] = float(p.error())
  assert final["approxgrad"] < 1e-2, final
  assert final["penalty"] < 5e-2, final     # from an initial error of about 18
  assert abs(final["gd"] - np.sqrt(10.0)) < 1e-2, final
