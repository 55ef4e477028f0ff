"""The few-shot bilevel problem under the penalty method and ApproxGrad: the u-constant shortcut
changes nothing, ApproxGrad's first-group correction is what it says, head re-initialisation
leaves the method's state alone, and the evaluation protocol adapts heads only."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import bilevel
from common.bilevel import ApproxGrad, Penalty
from few_shot import models
from few_shot.problem import FewShotProblem, adapt_and_evaluate

M, N, K, Q = 3, 2, 2, 3


def _batch(seed=0, size=8):
  """M tasks of N classes whose images are noisy class templates (learnable)."""
  rng = np.random.default_rng(seed)
  templates = rng.random((M, N, size, size, 1)).astype(np.float32)

  def part(count):
    y = np.tile(np.arange(N), count)[None].repeat(M, 0).astype(np.int32)
    x = templates[np.arange(M)[:, None], y] + 0.1 * rng.normal(size=(M, N * count, size, size,
                                                                     1)).astype(np.float32)
    return x, y

  sx, sy = part(K)
  qx, qy = part(Q)
  return {"support_x": sx, "support_y": sy, "query_x": qx, "query_y": qy}


class Unfixed(FewShotProblem):
  """The same problem without the shortcut: every cost recomputes the encoder."""

  def fix_outer(self, u, batch):
    return batch


def _problem(cls=FewShotProblem, seed=0):
  keras.utils.set_random_seed(seed)
  enc, set_aware = models.build_encoder("tests.few_shot.test_models:user_encoder", (8, 8, 1))
  problem = cls(enc, set_aware, M, N)
  problem.init_heads(tf.constant([seed, 0], tf.int64))
  return problem


def _copy_weights(src, dst):
  for a, b in zip(src.outer_variables + src.inner_variables,
                  dst.outer_variables + dst.inner_variables):
    b.assign(a)


@pytest.mark.parametrize("method", ["penalty", "approxgrad", "gd"])
def test_fix_outer_shortcut_gives_the_same_steps(method):
  batch = _batch()
  fixed, plain = _problem(), _problem(Unfixed)
  _copy_weights(fixed, plain)
  cfg = bilevel.get_method(method).default_config()
  cfg.update(dict(lr_u=1e-2, lr_v=1e-2, inner_steps=3))
  if method == "approxgrad":
    cfg.update(dict(lr_p=1e-2, p_steps=3))
  a = bilevel.build_method(method, fixed, cfg)
  b = bilevel.build_method(method, plain, cfg)
  u = [tf.convert_to_tensor(x) for x in fixed.outer_variables]
  feats = fixed.fix_outer(u, batch)
  v = [tf.convert_to_tensor(x) for x in fixed.inner_variables]
  assert float(fixed.inner_cost(u, v, feats)) == pytest.approx(
      float(fixed.inner_cost(u, v, batch)), rel=1e-6)
  assert float(fixed.outer_cost(u, v, feats)) == pytest.approx(
      float(fixed.outer_cost(u, v, batch)), rel=1e-6)
  for _ in range(2):
    ma, mb = a.step(batch), b.step(batch)
    assert float(ma["f"]) == pytest.approx(float(mb["f"]), rel=1e-5)
  for x, y in zip(fixed.outer_variables + fixed.inner_variables,
                  plain.outer_variables + plain.inner_variables):
    np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-6)


def test_one_group_per_task():
  problem = _problem()
  assert problem.inner_groups == [(0, 1), (2, 3), (4, 5)]
  assert [tuple(v.shape) for v in problem.inner_variables[:2]] == [(4, N), (N,)]


def test_heads_cost_is_the_mean_over_tasks_of_each_tasks_mean_ce():
  problem = _problem()
  batch = _batch()
  u = [tf.convert_to_tensor(x) for x in problem.outer_variables]
  v = [tf.convert_to_tensor(x) for x in problem.inner_variables]
  per_task = []
  for t in range(M):
    feats = problem.encoder(batch["support_x"][t], training=True).numpy()
    w, b = v[2 * t].numpy(), v[2 * t + 1].numpy()
    logits = models.cosine_logits(tf.constant(feats), tf.constant(w), tf.constant(b)).numpy()
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_task.append(-logp[np.arange(N * K), batch["support_y"][t]].mean())
  assert float(problem.inner_cost(u, v, batch)) == pytest.approx(np.mean(per_task), rel=1e-5)


@pytest.mark.parametrize("correction", ["first_group", "all_groups"])
def test_approxgrad_correction_groups(correction):
  """first_group: grad_u f - d2g/du dv0 p0 (the multi-group original: task 0 only)."""
  problem = _problem()
  cfg = ApproxGrad.default_config()
  cfg.correction = correction
  method = ApproxGrad(problem, cfg)
  rng = np.random.default_rng(2)
  for p in method.p:
    p.assign(rng.normal(size=p.shape).astype(np.float32))
  batch = _batch()
  got = method.hypergradient(batch)
  u = [tf.convert_to_tensor(x) for x in problem.outer_variables]
  v = [tf.convert_to_tensor(x) for x in problem.inner_variables]
  keep = [0, 1] if correction == "first_group" else list(range(2 * M))
  with tf.GradientTape() as outer:
    outer.watch(u)
    with tf.GradientTape() as inner:
      inner.watch(v)
      g = problem.inner_cost(u, v, batch)
    gv = inner.gradient(g, v)
    f = problem.outer_cost(u, v, batch)
    corr = tf.add_n([tf.reduce_sum(gv[i] * method.p[i]) for i in keep])
    total = f - corr
  want = outer.gradient(total, u)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-7)
  with pytest.raises(ValueError, match="correction"):
    cfg.correction = "task0"
    ApproxGrad(problem, cfg)


def test_init_heads_keeps_the_methods_state():
  problem = _problem()
  cfg = Penalty.default_config()
  cfg.update(dict(lr_u=1e-2, lr_v=1e-2, inner_steps=2))
  method = Penalty(problem, cfg)
  method.step(_batch())
  slots = method.opt_v.m + method.opt_v.v + method.nu
  state = [v.numpy().copy() for v in slots]
  problem.init_heads(tf.constant([5, 7], tf.int64))
  for before, var in zip(state, slots):
    np.testing.assert_array_equal(before, var.numpy())
  w = np.concatenate([problem.inner_variables[2 * t].numpy().ravel() for t in range(M)])
  assert abs(w.std() - 0.01) < 0.004 and all(
      np.all(problem.inner_variables[2 * t + 1].numpy() == np.float32(0.001)) for t in range(M))
  again = [v.numpy().copy() for v in problem.inner_variables]
  problem.init_heads(tf.constant([5, 7], tf.int64))
  for a, v in zip(again, problem.inner_variables):
    np.testing.assert_array_equal(a, v.numpy())


def test_adapt_and_evaluate_trains_heads_only_and_solves_an_easy_task():
  problem = _problem()
  before = [v.numpy().copy() for v in problem.outer_variables + problem.inner_variables]
  batch = _batch(seed=3)
  easy = adapt_and_evaluate(problem, batch, tf.constant([1, 2], tf.int64), 100, 1e-2).numpy()
  none = adapt_and_evaluate(problem, batch, tf.constant([1, 2], tf.int64), 0, 1e-2).numpy()
  assert easy.shape == (M,) and easy.mean() > 0.9
  assert easy.mean() > none.mean()
  for a, v in zip(before, problem.outer_variables + problem.inner_variables):
    np.testing.assert_array_equal(a, v.numpy())
