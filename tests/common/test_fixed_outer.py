"""The u-step reusing what ``fix_outer`` precomputed (``base.FixedOuter``) equals recomputing it.

Two copies of one small two-group bilevel problem in float64: ``Precomputed`` computes its
features tanh(x A) from u = A in ``fix_outer`` (as the few-shot problem does with its encoder),
``Recomputed`` has the identity ``fix_outer`` and computes them inside every cost. A method's
steps must leave the same variables and report the same metrics on both, and on
``Precomputed`` the u-gradient must actually take the pull-back path.
"""

import numpy as np
import pytest
import tensorflow as tf

from common.bilevel import GD, ApproxGrad, Penalty, base

D_IN, D_FEAT, N = 4, 3, 6


class Recomputed(base.BilevelProblem):
  """u = A [D_IN, D_FEAT]; v = two heads w_0, w_1 [D_FEAT]; features h = tanh(x A) per group.

  g = sum_t mean (h_t w_t - y_t)^2 + 0.1 |w|^2 on the support rows, f = the same without the
  decay on the query rows, plus 0.01 |A|^2 so f depends on u directly as well.
  """

  def __init__(self):
    super().__init__(name="recomputed")
    rng = np.random.default_rng(0)
    self.a = tf.Variable(rng.normal(size=(D_IN, D_FEAT)), name="a")
    self.w = [tf.Variable(rng.normal(size=(D_FEAT,)), name=f"w{t}") for t in range(2)]
    self.outer_variables = [self.a]
    self.inner_variables = list(self.w)
    self.inner_groups = [(0,), (1,)]

  def features(self, u, x):
    return tf.tanh(tf.einsum("tni,if->tnf", x, u[0]))

  def _feats(self, u, batch, part):
    return self.features(u, batch[f"{part}_x"])

  def _loss(self, feats, v, y):
    w = tf.stack(v)
    pred = tf.einsum("tnf,tf->tn", feats, w)
    return tf.reduce_sum(tf.reduce_mean(tf.square(pred - y), axis=1))

  def inner_cost(self, u, v, batch):
    return (self._loss(self._feats(u, batch, "support"), v, batch["support_y"])
            + 0.1 * base.sum_of_squares(v))

  def outer_cost(self, u, v, batch):
    return (self._loss(self._feats(u, batch, "query"), v, batch["query_y"])
            + 0.01 * tf.reduce_sum(tf.square(u[0])))


class Precomputed(Recomputed):

  pulled_back = 0

  def _feats(self, u, batch, part):
    key = f"{part}_features"
    return batch[key] if key in batch else self.features(u, batch[f"{part}_x"])

  def fix_outer(self, u, batch):
    fixed = dict(batch)
    fixed["support_features"] = self.features(u, batch["support_x"])
    fixed["query_features"] = self.features(u, batch["query_x"])
    return fixed


def _batches(steps=3):
  rng = np.random.default_rng(1)
  return [{k: tf.constant(rng.normal(size=(2, N) + ((D_IN,) if k.endswith("_x") else ())))
           for k in ("support_x", "support_y", "query_x", "query_y")} for _ in range(steps)]


def _run(problem_class, method_class, overrides):
  problem = problem_class()
  cfg = method_class.default_config()
  cfg.update(dict(inner_steps=3, lr_u=0.05, lr_v=0.05, **overrides))
  method = method_class(problem, cfg)
  step = tf.function(base.combined_step(problem, method))
  metrics = [{k: float(v) for k, v in step(b).items()} for b in _batches()]
  state = [problem.a.numpy()] + [w.numpy() for w in problem.w]
  for name in ("nu", "p"):
    state += [x.numpy() for x in getattr(method, name, [])]
  return metrics, state


CASES = [
    (Penalty, {"eps0": 100.0}),          # eps large: the test passes and nu moves too
    (Penalty, {}),
    (ApproxGrad, {"lr_p": 0.05, "p_steps": 2}),
    (ApproxGrad, {"lr_p": 0.05, "p_steps": 2, "correction": "first_group"}),
    (GD, {}),
]


@pytest.mark.parametrize("method_class,overrides", CASES,
                         ids=["penalty_passed", "penalty", "approxgrad", "approxgrad_first",
                              "gd"])
def test_reused_features_give_the_recomputed_steps(method_class, overrides, monkeypatch):
  calls = []
  original = base.FixedOuter.outer_gradients

  def counting(self, *args, **kwargs):
    calls.append(self._tape is not None)
    return original(self, *args, **kwargs)

  monkeypatch.setattr(base.FixedOuter, "outer_gradients", counting)
  monkeypatch.setattr(base.FixedOuter, "pull_back", True)
  want_metrics, want_state = _run(Recomputed, method_class, overrides)
  assert calls and not any(calls)            # identity fix_outer: the original path
  calls.clear()
  got_metrics, got_state = _run(Precomputed, method_class, overrides)
  assert calls and all(calls)                # features precomputed: pulled back
  for want, got in zip(want_metrics, got_metrics):
    assert want.keys() == got.keys()
    for k in want:
      np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12, err_msg=k)
  for want, got in zip(want_state, got_state):
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
  start = Recomputed()
  assert not np.allclose(want_state[0], start.a.numpy())      # u moved


def test_approxgrad_residual_from_the_hypergradient_pass_is_the_residual():
  """The residual metric (taken from the u-gradient's pass) equals R(p) computed directly."""
  problem = Precomputed()
  cfg = ApproxGrad.default_config()
  cfg.update(inner_steps=2, p_steps=3, lr_u=0.0, lr_v=0.05, lr_p=0.05)   # u frozen
  method = ApproxGrad(problem, cfg)
  batch = _batches(1)[0]
  metrics = base.combined_step(problem, method)(batch)
  residual, _ = method.residual_and_grad(batch)
  np.testing.assert_allclose(float(metrics["residual"]), float(residual), rtol=1e-10)
  assert float(residual) > 1e-6


def test_fix_outer_that_cannot_be_differentiated_is_a_clear_error(monkeypatch):
  """Features computed outside TensorFlow's tape cannot carry the u-gradient: say so."""
  monkeypatch.setattr(base.FixedOuter, "pull_back", True)

  class Detached(Precomputed):
    def fix_outer(self, u, batch):
      fixed = super().fix_outer([tf.stop_gradient(x) for x in u], batch)
      return fixed

  problem = Detached()
  method = Penalty(problem, Penalty.default_config())
  with pytest.raises(ValueError, match="do not depend differentiably on u"):
    base.combined_step(problem, method)(_batches(1)[0])
