"""Data parameters (Saxena et al. 2019) against hand-worked values of the original's behaviour.

Section numbers refer to ../shared/reference/data_parameters.md.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from common.bilevel.optim import SparseMomentumSGD
from common.problems import LOG_SIGMA_MAX, LOG_SIGMA_MIN, DataParameters

LO, HI = math.log(1 / 20), math.log(20)


def _params(num_classes=3, num_instances=6, dtype=tf.float64, **flags):
  cfg = DataParameters.default_config()
  cfg.update(flags)
  return DataParameters.from_config(cfg, num_classes, num_instances, dtype=dtype), cfg


def _optimizers(dp, cfg):
  """The method's optimisers of the learned tensors: SparseMomentumSGD at each one's rate."""
  return [SparseMomentumSGD(var, cfg[f"lr_{name}_param"], cfg.momentum)
          for var, name in zip(dp.learned_variables, dp.learned_names)]


def _apply(dp, grads, optimizers):
  """One sparse step per learned tensor (class, then instance), then the clamp (§2.4)."""
  for grad, opt in zip(grads, optimizers):
    opt.apply(grad)
  dp.clamp()


def _slices(indices, grads):
  return tf.IndexedSlices(tf.constant(grads, tf.float64), tf.constant(indices, tf.int64),
                          dense_shape=tf.constant([6], tf.int64))


def test_default_config_is_the_originals_argparse_defaults():
  cfg = DataParameters.default_config()
  assert (cfg.learn_class_parameters, cfg.learn_inst_parameters) == (False, False)
  assert (cfg.init_class_param, cfg.init_inst_param) == (1.0, 1.0)
  assert (cfg.lr_class_param, cfg.lr_inst_param) == (0.1, 0.1)
  assert (cfg.wd_class_param, cfg.wd_inst_param) == (0.0, 0.0)
  assert cfg.skip_clamp_data_param is False and cfg.momentum == 0.9
  for bounds in (cfg.clamp_cls_sigma, cfg.clamp_inst_sigma):
    assert (bounds.min, bounds.max) == (LOG_SIGMA_MIN, LOG_SIGMA_MAX)
  assert math.isclose(math.exp(LOG_SIGMA_MIN), 0.05) and math.isclose(math.exp(LOG_SIGMA_MAX), 20)


def test_init_is_log_of_the_flag_cast_to_float32():
  dp, _ = _params(dtype=tf.float32, init_class_param=2.0, init_inst_param=0.3)
  np.testing.assert_array_equal(dp.class_parameters.numpy(), np.float32(np.log(2.0)))
  np.testing.assert_array_equal(dp.inst_parameters.numpy(), np.float32(np.log(0.3)))
  assert dp.class_parameters.shape == [3] and dp.inst_parameters.shape == [6]
  assert not dp.class_parameters.trainable and not dp.inst_parameters.trainable
  with pytest.raises(ValueError, match="init_inst_param"):
    _params(init_inst_param=0.0)


@pytest.mark.parametrize("as_dense", [False, True])
def test_sparse_sgd_four_hand_computed_steps_with_clamp(as_dense):
  """lr 0.5, momentum 0.9 on 6 instance parameters, clamp after every step (§3, §2.4).

  Rows absent from a step keep value and buffer; duplicates sum; row 5 is first seen at step
  3 and starts with buf = g; at step 4 row 1 has gradient exactly 0.0 and row 3's duplicates
  cancel to 0.0: both count as absent, as in the original.
  """
  dp, cfg = _params(learn_inst_parameters=True, lr_inst_param=0.5)
  (opt,) = _optimizers(dp, cfg)
  steps = [([0, 2, 2], [4.0, 0.5, 0.25]),
           ([2, 0, 4], [-1.0, 4.0, -2.0]),
           ([5, 4, 4], [-12.0, 0.5, 0.5]),
           ([1, 3, 3, 0], [0.0, 0.3, -0.3, -10.0])]
  # Hand-worked p (after clamp) and buf after each step.
  expected = [
      # 0: b=4, p=-2; 2: b=0.25+0.5, p=-0.5*0.75
      ([-2.0, 0, -0.375, 0, 0, 0], [4.0, 0, 0.75, 0, 0, 0]),
      # 0: b=.9*4+4=7.6, p=-2-3.8=-5.8 -> LO; 2: b=.9*.75-1=-.325, p=-.375+.1625; 4: b=-2, p=1
      ([LO, 0, -0.2125, 0, 1.0, 0], [7.6, 0, -0.325, 0, -2.0, 0]),
      # 5 (new): b=-12, p=6 -> HI; 4: b=.9*-2+1=-.8, p=1+.4; 0 and 2 frozen, buffers undecayed
      ([LO, 0, -0.2125, 0, 1.4, HI], [7.6, 0, -0.325, 0, -0.8, -12.0]),
      # 0: b=.9*7.6-10=-3.16, p=LO+1.58 (the clamp did not touch the buffer); 1, 3 absent
      ([LO + 1.58, 0, -0.2125, 0, 1.4, HI], [-3.16, 0, -0.325, 0, -0.8, -12.0]),
  ]
  for (indices, grads), (p, b) in zip(steps, expected):
    grad = _slices(indices, grads)
    if as_dense:
      grad = tf.convert_to_tensor(grad)      # sums duplicates, as PyTorch's dense .grad
    _apply(dp, [grad], [opt])
    np.testing.assert_allclose(dp.inst_parameters.numpy(), p, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(opt.momentum_buffer.numpy(), b, rtol=1e-12, atol=1e-15)
  np.testing.assert_array_equal(dp.class_parameters.numpy(), 0.0)   # not learned: untouched


def test_sparse_sgd_none_gradient_is_a_no_op_and_rejects_matrices():
  var = tf.Variable([1.0, 2.0])
  opt = SparseMomentumSGD(var, 0.1)
  opt.apply(None)
  np.testing.assert_array_equal(var.numpy(), [1.0, 2.0])
  with pytest.raises(ValueError, match="1-D"):
    SparseMomentumSGD(tf.Variable(tf.zeros([2, 2])), 0.1)


def _set(dp, c, s):
  dp.class_parameters.assign(c)
  dp.inst_parameters.assign(s)


C = np.array([0.1, -0.2, 0.3])
S = np.array([0.5, -0.4, 0.0, 0.2, 0.7])
LABELS = tf.constant([2, 0, 2], tf.int64)
INDEX = tf.constant([4, 1, 1], tf.int64)


@pytest.mark.parametrize("learn_class,learn_inst,expected", [
    (True, False, np.exp(C[[2, 0, 2]])),
    (False, True, np.exp(S[[4, 1, 1]])),
    (True, True, np.exp(C[[2, 0, 2]]) + np.exp(S[[4, 1, 1]])),   # a sum, not a product (§2.2)
    (False, False, np.ones(3)),
])
def test_sigma_and_scaled_logits(learn_class, learn_inst, expected):
  dp, _ = _params(num_instances=5, learn_class_parameters=learn_class,
                  learn_inst_parameters=learn_inst)
  _set(dp, C, S)
  np.testing.assert_allclose(dp.sigma(LABELS, INDEX).numpy(), expected, rtol=1e-14)
  logits = tf.constant(np.arange(6.0).reshape(3, 2) - 2.0)
  np.testing.assert_allclose(dp.scale_logits(logits, LABELS, INDEX).numpy(),
                             logits.numpy() / expected[:, None], rtol=1e-14)


def test_penalty_sums_over_batch_entries_with_half_factor():
  """Index 1 and class 2 appear twice each and are penalised twice (§2.3)."""
  dp, _ = _params(num_instances=5, learn_class_parameters=True, learn_inst_parameters=True,
                  wd_class_param=0.3, wd_inst_param=0.7)
  _set(dp, C, S)
  expected = (0.5 * 0.7 * (S[4] ** 2 + S[1] ** 2 + S[1] ** 2)
              + 0.5 * 0.3 * (C[2] ** 2 + C[0] ** 2 + C[2] ** 2))
  assert dp.penalty(LABELS, INDEX).numpy() == pytest.approx(expected, rel=1e-14)
  # Each term needs its tensor learned and its wd > 0.
  for flags, term in [(dict(learn_inst_parameters=False), 0.5 * 0.3 * (2 * C[2] ** 2 + C[0] ** 2)),
                      (dict(wd_class_param=0.0), 0.5 * 0.7 * (S[4] ** 2 + 2 * S[1] ** 2))]:
    base = dict(learn_class_parameters=True, learn_inst_parameters=True, wd_class_param=0.3,
                wd_inst_param=0.7)
    dp, _ = _params(num_instances=5, **{**base, **flags})
    _set(dp, C, S)
    assert dp.penalty(LABELS, INDEX).numpy() == pytest.approx(term, rel=1e-14)


@pytest.mark.parametrize("learn_class,learn_inst,skip", [
    (True, True, False), (True, False, False), (True, True, True)])
def test_clamp_bounds_and_switch(learn_class, learn_inst, skip):
  """Whole learned tensors clipped to float32(log 1/20), float32(log 20); others untouched."""
  dp, _ = _params(num_instances=5, dtype=tf.float32, learn_class_parameters=learn_class,
                  learn_inst_parameters=learn_inst, skip_clamp_data_param=skip)
  c, s = np.float32([-10.0, 10.0, 0.25]), np.float32([-5.0, -2.0, 0.0, 2.5, 7.0])
  _set(dp, c, s)
  dp.clamp()
  lo, hi = np.float32(LO), np.float32(HI)
  clipped_c, clipped_s = np.float32([lo, hi, 0.25]), np.float32([lo, -2.0, 0.0, 2.5, hi])
  np.testing.assert_array_equal(dp.class_parameters.numpy(),
                                clipped_c if learn_class and not skip else c)
  np.testing.assert_array_equal(dp.inst_parameters.numpy(),
                                clipped_s if learn_inst and not skip else s)


def test_each_tensor_is_clamped_to_its_own_bounds():
  """Class and instance bounds set apart: each learned tensor uses its own pair."""
  dp, _ = _params(num_instances=5, dtype=tf.float32, learn_class_parameters=True,
                  learn_inst_parameters=True,
                  clamp_cls_sigma={"min": -1.0, "max": 1.0},
                  clamp_inst_sigma={"min": -2.0, "max": 2.0})
  _set(dp, np.float32([-5.0, 5.0, 0.5]), np.float32([-5.0, -1.5, 0.0, 1.5, 5.0]))
  dp.clamp()
  np.testing.assert_array_equal(dp.class_parameters.numpy(), np.float32([-1.0, 1.0, 0.5]))
  np.testing.assert_array_equal(dp.inst_parameters.numpy(),
                                np.float32([-2.0, -1.5, 0.0, 1.5, 2.0]))


def _ce_loss(dp, logits, labels, index):
  scaled = dp.scale_logits(logits, labels, index)
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, scaled)
  return tf.reduce_mean(ce) + dp.penalty(labels, index)


@pytest.mark.parametrize("skip", [False, True])
def test_joint_recipe_instance_init_below_the_clamp_floor(skip):
  """§4.2: ImageNet joint recipe, init_inst 0.001 < 0.05. Nothing stops the init; the first
  step moves the batch's entries a little, then the clamp lifts the *whole* instance tensor to
  log(1/20), so sigma goes from 1.001 to exp(c[y]) + 0.05."""
  dp, cfg = _params(num_classes=3, num_instances=8, dtype=tf.float32,
                    learn_class_parameters=True, learn_inst_parameters=True,
                    init_inst_param=0.001, lr_class_param=0.1, lr_inst_param=0.8,
                    wd_class_param=1e-4, wd_inst_param=1e-8, skip_clamp_data_param=skip)
  init = np.float32(np.log(0.001))
  np.testing.assert_array_equal(dp.inst_parameters.numpy(), init)
  labels, index = tf.constant([0, 1, 1, 2], tf.int64), tf.constant([3, 0, 5, 3], tf.int64)
  np.testing.assert_allclose(dp.sigma(labels, index).numpy(), 1.001, rtol=1e-6)
  logits = tf.constant(np.random.default_rng(0).normal(size=(4, 3)), tf.float32)
  with tf.GradientTape() as tape:
    loss = _ce_loss(dp, logits, labels, index)
  _apply(dp, tape.gradient(loss, dp.learned_variables), _optimizers(dp, cfg))
  s = dp.inst_parameters.numpy()
  if not skip:
    np.testing.assert_array_equal(s, np.float32(LO))
    np.testing.assert_allclose(dp.sigma(labels, index).numpy(),
                               np.exp(dp.class_parameters.numpy()[labels.numpy()]) + 0.05,
                               rtol=1e-6)
  else:
    in_batch = np.isin(np.arange(8), index.numpy())
    assert np.all(s[in_batch] != init) and np.all(s[in_batch] < LO)
    np.testing.assert_array_equal(s[~in_batch], init)


@pytest.mark.parametrize("learn_class,learn_inst", [(True, False), (False, True), (True, True)])
def test_gradients_match_float64_central_differences(learn_class, learn_inst):
  """Duplicate labels and indices; absent entries must get exactly zero gradient."""
  dp, _ = _params(num_instances=5, learn_class_parameters=learn_class,
                  learn_inst_parameters=learn_inst, wd_class_param=0.3, wd_inst_param=0.7)
  _set(dp, C, S)
  logits = tf.constant(np.random.default_rng(1).normal(size=(3, 3)))
  with tf.GradientTape() as tape:
    loss = _ce_loss(dp, logits, LABELS, INDEX)
  grads = tape.gradient(loss, dp.learned_variables)
  assert all(isinstance(g, tf.IndexedSlices) for g in grads)
  eps = 1e-6
  for var, grad in zip(dp.learned_variables, grads):
    base = var.numpy()
    numeric = np.zeros_like(base)
    for j in range(base.size):
      values = []
      for sign in (1, -1):
        bumped = base.copy()
        bumped[j] += sign * eps
        var.assign(bumped)
        values.append(_ce_loss(dp, logits, LABELS, INDEX).numpy())
      numeric[j] = (values[0] - values[1]) / (2 * eps)
    var.assign(base)
    dense = tf.convert_to_tensor(grad).numpy()
    np.testing.assert_allclose(dense, numeric, rtol=1e-7, atol=1e-9)
    absent = ~np.isin(np.arange(base.size), (LABELS if var is dp.class_parameters else INDEX))
    assert np.all(dense[absent] == 0.0) and np.all(dense[~absent] != 0.0)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_step_traces_once_and_matches_eager(jit_compile):
  """Loss, gradient, both sparse optimisers and the clamp in one compiled step (§2.4)."""
  def build():
    dp, cfg = _params(num_classes=3, num_instances=6, dtype=tf.float32,
                      learn_class_parameters=True, learn_inst_parameters=True,
                      init_inst_param=0.5, wd_class_param=1e-2, wd_inst_param=1e-2,
                      lr_class_param=2.0, lr_inst_param=3.0)
    return dp, _optimizers(dp, cfg)

  def step(dp, opts, logits, labels, index):
    with tf.GradientTape() as tape:
      loss = _ce_loss(dp, logits, labels, index)
    _apply(dp, tape.gradient(loss, dp.learned_variables), opts)
    return loss

  traces = []
  dp, opts = build()

  @tf.function(jit_compile=jit_compile)
  def compiled(logits, labels, index):
    traces.append(1)
    return step(dp, opts, logits, labels, index)

  twin, twin_opts = build()
  rng = np.random.default_rng(2)
  batches = [([0, 2, 2, 1], [5, 1, 5, 0]), ([1, 1, 0, 2], [2, 4, 4, 2])]
  for labels, index in batches:
    args = (tf.constant(rng.normal(size=(4, 3)) * 4, tf.float32),
            tf.constant(labels, tf.int64), tf.constant(index, tf.int64))
    np.testing.assert_allclose(compiled(*args).numpy(), step(twin, twin_opts, *args).numpy(),
                               rtol=1e-5)
  assert len(traces) == 1
  for ours, eager in [(dp.class_parameters, twin.class_parameters),
                      (dp.inst_parameters, twin.inst_parameters),
                      (opts[1].momentum_buffer, twin_opts[1].momentum_buffer)]:
    np.testing.assert_allclose(ours.numpy(), eager.numpy(), rtol=1e-5, atol=1e-6)
  assert twin.inst_parameters.numpy()[3] == np.float32(np.log(0.5))   # absent from both
  assert np.any(twin.inst_parameters.numpy() != np.float32(np.log(0.5)))
