"""Learning to Reweight: the weights against their definition, closed form and float64
finite differences, on a Keras model with batch norm (so examples are coupled)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from common.bilevel import L2RW
from common.problems import ExampleReweighting

N, M, D, K = 8, 6, 4, 3


def _model(seed=0):
  keras.utils.set_random_seed(seed)
  model = keras.Sequential([
      keras.Input((D,), dtype="float64"),
      keras.layers.Dense(5, dtype="float64"),
      keras.layers.BatchNormalization(dtype="float64"),
      keras.layers.Activation("tanh", dtype="float64"),
      keras.layers.Dense(K, dtype="float64"),
  ])
  return model


def _batch(seed=0):
  """Clean labels all 0, training labels cycling through the classes: some training examples
  help the clean loss, some hurt it, so the clip at zero matters."""
  rng = np.random.default_rng(seed)
  return {"train": {"x": tf.constant(rng.normal(size=(N, D))),
                    "y": tf.constant(np.arange(N) % K)},
          "val": {"x": tf.constant(rng.normal(size=(M, D))),
                  "y": tf.constant(np.zeros(M, np.int64))}}


def _method(problem, **kw):
  cfg = L2RW.default_config()
  cfg.update(kw)
  return L2RW(problem, cfg)


def _bn_state(model):
  return [v.numpy().copy() for v in model.non_trainable_variables]


def _per_example_dots(problem, batch, with_decay):
  """<grad_theta l_i, grad_theta L_clean> one example at a time (batch statistics of the whole
  batch, as in the forward pass), the definition the weights must equal."""
  v = [tf.convert_to_tensor(x) for x in problem.inner_variables]
  with tf.GradientTape() as tape:
    tape.watch(v)
    clean = problem.clean_cost(v, batch) + (problem.weight_decay(v) if with_decay else 0.0)
  gc = tape.gradient(clean, v)
  dots = []
  for i in range(N):
    with tf.GradientTape() as tape:
      tape.watch(v)
      li = problem.example_losses(v, batch, update_state=False)[i]
    dots.append(sum(float(tf.reduce_sum(a * b)) for a, b in zip(tape.gradient(li, v), gc)))
  return np.array(dots)


@pytest.mark.parametrize("decay", [0.0, 0.05])
def test_fast_path_weights_are_the_clipped_normalised_gradient_inner_products(decay):
  problem = ExampleReweighting(_model(1), N, weight_decay=decay)
  batch = _batch(1)
  method = _method(problem, decay_in_clean_gradient=True)
  dots = _per_example_dots(problem, batch, with_decay=True)
  np.testing.assert_allclose(method.raw_weights(batch).numpy(), dots, rtol=1e-10, atol=1e-14)
  expected = np.maximum(dots, 0) / np.maximum(dots, 0).sum()
  assert 0 < (dots > 0).sum() < N            # some clipped, some kept: a real test of the clip
  np.testing.assert_allclose(method.example_weights(batch).numpy(), expected, rtol=1e-10)


def test_look_ahead_matches_central_differences_and_alpha_cancels():
  problem = ExampleReweighting(_model(2), N)
  batch = _batch(2)
  v0 = [tf.convert_to_tensor(x) for x in problem.inner_variables]

  def clean_after_look_ahead(eps, alpha):
    eps = tf.constant(eps)
    with tf.GradientTape() as tape:
      tape.watch(v0)
      weighted = tf.reduce_sum(eps * problem.example_losses(v0, batch, update_state=False))
    grads = tape.gradient(weighted, v0)
    return float(problem.clean_cost([x - alpha * g for x, g in zip(v0, grads)], batch))

  normalised = []
  for alpha in (1.0, 0.1, 1e-3):
    method = _method(problem, look_ahead=True, alpha=alpha)
    raw = method.raw_weights(batch).numpy()
    h = 1e-5
    fd = np.array([-(clean_after_look_ahead(h * e, alpha) - clean_after_look_ahead(-h * e, alpha))
                   / (2 * h) for e in np.eye(N)])
    np.testing.assert_allclose(raw, fd, rtol=1e-6, atol=1e-9)
    # -dL/d eps_i = alpha <grad l_i, grad L_clean> at eps = 0.
    np.testing.assert_allclose(raw, alpha * _per_example_dots(problem, batch, False),
                               rtol=1e-9, atol=1e-14)
    normalised.append(method.example_weights(batch).numpy())
  for w in normalised[1:]:
    np.testing.assert_allclose(w, normalised[0], rtol=1e-9)
  # ... and equal the fast path's (no decay in the clean gradient).
  fast = _method(problem, decay_in_clean_gradient=False).example_weights(batch).numpy()
  np.testing.assert_allclose(fast, normalised[0], rtol=1e-9)


def test_meta_passes_leave_batch_norm_statistics_alone_and_the_step_updates_them_once():
  model = _model(3)
  problem = ExampleReweighting(model, N)
  batch = _batch(3)
  before = _bn_state(model)
  for look_ahead in (False, True):
    _method(problem, look_ahead=look_ahead).example_weights(batch)
    for a, b in zip(before, _bn_state(model)):
      np.testing.assert_array_equal(a, b)
  # One step = exactly one training-mode pass on the noisy batch.
  reference = _model(3)
  reference.set_weights(model.get_weights())
  reference(batch["train"]["x"], training=True)
  _method(problem).step(batch)
  for a, b in zip(_bn_state(reference), _bn_state(model)):
    np.testing.assert_allclose(a, b, rtol=1e-12)
  assert not all(np.array_equal(a, b) for a, b in zip(before, _bn_state(model)))


def test_all_zero_weights_give_no_nan_and_only_decay_and_momentum_move():
  w = L2RW.normalise(tf.constant([-1.0, -2.0, 0.0], tf.float64)).numpy()
  np.testing.assert_array_equal(w, [0.0, 0.0, 0.0])
  model = _model(4)
  problem = ExampleReweighting(model, N, weight_decay=0.1)
  method = _method(problem, lr=0.5, momentum=0.9)
  # Nothing helps the clean loss: every raw weight negative, on both paths.
  method.raw_weights = lambda batch: -tf.ones([N], tf.float64)
  method._losses_and_raw_weights = lambda v, batch, update_state: (
      problem.example_losses(v, batch, update_state), -tf.ones([N], tf.float64))
  before = [v.numpy() for v in problem.inner_variables]
  metrics = method.step(_batch(4))
  assert metrics["zero_weight_fraction"].numpy() == 1.0
  for var, b, decayed in zip(problem.inner_variables, before, problem._decayed):
    expected = b - 0.5 * 0.1 * b if decayed else b           # kernels decay, the rest stays
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-12)
    assert np.isfinite(var.numpy()).all()


def test_step_is_momentum_sgd_on_the_weighted_loss():
  model = _model(5)
  problem = ExampleReweighting(model, N)
  batch = _batch(5)
  method = _method(problem, lr=0.1, momentum=0.9)
  w = method.example_weights(batch).numpy()
  v = [tf.convert_to_tensor(x) for x in problem.inner_variables]
  with tf.GradientTape() as tape:
    tape.watch(v)
    loss = tf.reduce_sum(w * problem.example_losses(v, batch, update_state=False))
  grads = [g.numpy() for g in tape.gradient(loss, v)]
  before = [x.numpy() for x in v]
  method.step(batch)
  for var, b, g in zip(problem.inner_variables, before, grads):
    np.testing.assert_allclose(var.numpy(), b - 0.1 * g, rtol=1e-10, atol=1e-14)
  np.testing.assert_allclose(method.weights.numpy(), w, rtol=1e-12)


def test_forward_mode_weights_equal_the_official_double_backprop():
  problem = ExampleReweighting(_model(6), N, weight_decay=0.05)
  batch = _batch(6)
  method = _method(problem)
  np.testing.assert_allclose(method.raw_weights(batch).numpy(),
                             method.raw_weights_double_backprop(batch).numpy(),
                             rtol=1e-10, atol=1e-14)


def _model_with_dropout(rate=0.5):
  keras.utils.set_random_seed(7)
  return keras.Sequential([
      keras.Input((D,), dtype="float64"),
      keras.layers.Dense(16, dtype="float64"),
      keras.layers.BatchNormalization(dtype="float64"),
      keras.layers.Dropout(rate, dtype="float64"),
      keras.layers.Activation("tanh", dtype="float64"),
      keras.layers.Dense(K, dtype="float64"),
  ])


def test_shared_masks_step_equals_weights_then_a_separate_training_pass_with_dropout():
  """dropout_masks="shared": weights and gradient from one training pass; with dropout and
  batch norm it must equal the two-pass computation (same mask, one statistics update)."""
  batch = _batch(7)
  fused_model, two_pass_model = _model_with_dropout(), _model_with_dropout()
  fused = _method(ExampleReweighting(fused_model, N, weight_decay=0.01), lr=0.1,
                  dropout_masks="shared")
  two_pass_problem = ExampleReweighting(two_pass_model, N, weight_decay=0.01)
  two_pass = _method(two_pass_problem, lr=0.1, dropout_masks="shared")
  from common.bilevel import base
  for _ in range(3):
    fused.step(batch)
    w = two_pass.normalise(two_pass.raw_weights_double_backprop(batch))
    base.weighted_loss_step(two_pass_problem, two_pass.opt, w, batch)
    np.testing.assert_allclose(fused.weights.numpy(), w.numpy(), rtol=1e-9, atol=1e-14)
  for a, b in zip(fused_model.weights, two_pass_model.weights):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_independent_masks_default_draws_a_mask_per_pass_as_the_official_code():
  """The default with dropout: the clean pass, the weight pass and the update pass each draw
  their own mask (the official code's models B, A and C); checked against a hand-made
  sequence of passes, with the seed state advanced between them, over three steps."""
  from common.bilevel import base
  batch = _batch(8)
  model, hand_model, shared_model = (_model_with_dropout() for _ in range(3))
  method = _method(ExampleReweighting(model, N, weight_decay=0.01), lr=0.1)
  assert method.config.dropout_masks == "independent" and method.separate_passes()
  hand_problem = ExampleReweighting(hand_model, N, weight_decay=0.01)
  hand = _method(hand_problem, lr=0.1)
  shared = _method(ExampleReweighting(shared_model, N, weight_decay=0.01), lr=0.1,
                   dropout_masks="shared")
  for step in range(3):
    method.step(batch)
    shared.step(batch)
    v = base.values(hand_problem.inner_variables)
    c = hand.clean_direction(v, batch)                 # mask 1
    hand_problem.advance_random_state()
    with tf.GradientTape() as tape:
      tape.watch(v)
      losses = hand_problem.example_losses(v, batch, update_state=False)   # mask 2
    jac = tape.jacobian(losses, v)
    raw = tf.add_n([tf.reduce_sum(tf.reshape(j, [N, -1]) * tf.reshape(g, [1, -1]), axis=1)
                    for j, g in zip(jac, c)])
    w = hand.normalise(raw)
    hand_problem.advance_random_state()
    base.weighted_loss_step(hand_problem, hand.opt, w, batch)         # mask 3
    np.testing.assert_allclose(method.weights.numpy(), w.numpy(), rtol=1e-9, atol=1e-14)
    if step == 0:    # the same start, other masks: other weights than the shared pass's
      assert not np.allclose(method.weights.numpy(), shared.weights.numpy())
  for a, b in zip(model.weights, hand_model.weights):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)


def test_without_dropout_both_mask_settings_are_the_same_fused_pass():
  batch = _batch(9)
  models_ = [_model_with_dropout(rate=0.0) for _ in range(2)]
  methods = [_method(ExampleReweighting(m, N, weight_decay=0.01), lr=0.1, dropout_masks=d)
             for m, d in zip(models_, ("independent", "shared"))]
  assert not methods[0].separate_passes()
  for _ in range(2):
    for m in methods:
      m.step(batch)
    np.testing.assert_array_equal(methods[0].weights.numpy(), methods[1].weights.numpy())
  with pytest.raises(ValueError, match="dropout_masks must be 'independent' or 'shared'"):
    _method(ExampleReweighting(models_[0], N), dropout_masks="fresh")


def test_weights_accumulated_over_the_run_match_a_hand_computation_over_three_steps():
  """Each point's score is the mean of every weight it received (times the batch size): three
  steps over overlapping batches of a 12-point training set, summed by hand."""
  from common.bilevel import combined_step
  num_train = 12
  problem = ExampleReweighting(_model(5), N, num_train=num_train)
  method = _method(problem, lr=0.5)
  step = combined_step(problem, method)
  sums, counts = np.zeros(num_train), np.zeros(num_train)
  indices = [np.arange(0, 8), np.arange(4, 12), np.array([0, 2, 4, 6, 8, 9, 10, 11])]
  received = []
  for s, index in enumerate(indices):
    batch = _batch(10 + s)
    batch["train"]["index"] = tf.constant(index)
    step(batch)
    w = method.weights.numpy() * N           # this step's weights, times the batch size
    received.append(w)
    sums[index] += w
    counts[index] += 1
  assert any(np.any(w == 0) for w in received) and any(np.any(w > 1) for w in received)
  expected = np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)
  np.testing.assert_allclose(problem.scores(), expected, rtol=1e-6)
  # Point 0 was in steps 1 and 3: the mean of its two weights, not its last one.
  np.testing.assert_allclose(problem.scores()[0], (received[0][0] + received[2][0]) / 2,
                             rtol=1e-6)
  last = np.ones(num_train)
  for index, w in zip(indices, received):
    last[index] = w
  np.testing.assert_allclose(problem.last_weights(), last, rtol=1e-6)


def _official_scheduler_rates(num_steps, base, decay_steps, rate_list):
  """The rate each step of the official CIFAR loop trains with, by hand: ``for niter in
  range(...): lr_scheduler.step(niter); train_step(...)`` with FixedLearnRateScheduler.step
  assigning ``rate_list[0]`` when ``niter + 1 == decay_steps[0]``."""
  lr, steps, rates, used = base, list(decay_steps), list(rate_list), []
  for niter in range(num_steps):
    if steps and niter + 1 == steps[0]:
      lr = rates.pop(0)
      steps.pop(0)
    used.append(lr)
  return used


def test_step_boundaries_switch_where_the_official_l2rw_scheduler_does():
  # By hand: boundaries 3 and 5 -> the 3rd step (index 2) is the first at 0.01, the 5th
  # (index 4) the first at 0.001.
  official = _official_scheduler_rates(7, 0.1, (3, 5), (0.01, 0.001))
  assert official == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001]
  problem = ExampleReweighting(_model(5), N)
  batch = _batch(5)
  rates = {}
  for one_based in (True, False):
    method = _method(problem, lr=0.1, momentum=0.9, lr_boundaries_steps=(3, 5),
                     lr_boundaries_factor=0.1, lr_boundaries_one_based=one_based)
    rates[one_based] = [float(method.step(batch)["lr"]) for _ in range(7)]
  np.testing.assert_allclose(rates[True], official, rtol=1e-12)
  # The switch off: b steps at the old rate, one step later than the original.
  np.testing.assert_allclose(rates[False], [0.1] * 3 + [0.01] * 2 + [0.001] * 2, rtol=1e-12)


def test_l2rw_cifar_rows_switch_the_rate_at_the_original_steps():
  from common.bilevel import base, optim
  from common.bilevel.rule_weights import RuleWeights
  from importance_learning.configs import l2rw_cifar_background, l2rw_cifar_uniform
  # The baselines copy every key of their own config from the method's block.
  assert "lr_boundaries_one_based" in RuleWeights.default_config()
  for module, bounds in ((l2rw_cifar_uniform, (40000, 50000)),
                         (l2rw_cifar_background, (40000, 60000))):
    for arg in (None, "random"):
      c = module.get_config(arg)
      block = c[c.method]
      assert tuple(block.lr_boundaries_steps) == bounds and block.lr_boundaries_one_based
      schedule = optim.Schedule.from_config(block)
      lr = tf.Variable(0.1, dtype=tf.float64)
      at = lambda t: float(schedule.step_rate(lr, tf.constant(t, tf.int64)))  # noqa: E731
      # The official scheduler: step index b - 1 (the b-th step) is the first at the new rate.
      for b, old, new in ((bounds[0], 0.1, 0.01), (bounds[1], 0.01, 0.001)):
        assert at(b - 2) == pytest.approx(old) and at(b - 1) == pytest.approx(new), (b, arg)
  # The rows' MomentumSGD is what L2RW builds from the same block (base.momentum_sgd).
  var = tf.Variable([0.0], dtype=tf.float64)
  opt = base.momentum_sgd(l2rw_cifar_uniform.get_config().l2rw, [var])
  opt.iterations.assign(39998)
  used = [float(opt.apply([tf.constant([1.0], tf.float64)], [var])) for _ in range(2)]
  np.testing.assert_allclose(used, [0.1, 0.01], rtol=1e-12)


def test_imbalance_batch_with_one_minority_example_puts_all_weight_on_it():
  """The 4-vs-9 regime: the official CNN predicts 9 for every image (last kernel 0, bias 3), the
  clean set is 5 real 4s and 5 real 9s, the batch holds 99 real 9s and one real 4. Only the 4's
  gradient points along the clean one: it gets weight 1, every 9 gets 0. In closed form the
  raw weight of example i is (s - y_i) (c_b + h_i . c_w), s = sigmoid(3), with c_b and c_w the
  clean gradient of the last bias and kernel and h_i the 100 features of image i."""
  from common import models
  from common.data import mnist
  x, y = mnist.embedded_arrays()
  x = (x / 255.0).astype(np.float32)
  fours, nines = np.flatnonzero(y == 4), np.flatnonzero(y == 9)
  at = 37
  train_idx = np.insert(nines[:99], at, fours[0])
  val_idx = np.concatenate([fours[1:6], nines[99:104]])
  labels = (y == 9).astype(np.int64)
  keras.utils.set_random_seed(0)
  model = models.build("l2rw_mnist_cnn", (28, 28, 1), 1)
  last = model.layers[-1]
  last.kernel.assign(tf.zeros_like(last.kernel))
  last.bias.assign(tf.fill(last.bias.shape, 3.0))
  problem = ExampleReweighting(model, 100)
  batch = {"train": {"x": tf.constant(x[train_idx]), "y": tf.constant(labels[train_idx])},
           "val": {"x": tf.constant(x[val_idx]), "y": tf.constant(labels[val_idx])}}
  method = _method(problem)
  w = method.example_weights(batch).numpy()
  expected = np.zeros(100)
  expected[at] = 1.0
  np.testing.assert_allclose(w, expected, atol=1e-7)
  # The raw weights against the closed form (the earlier layers get no gradient through a
  # zero kernel).
  features = keras.Model(model.inputs, model.layers[-2].output)
  s = 1.0 / (1.0 + np.exp(-3.0))
  h_val = features(batch["val"]["x"]).numpy().astype(np.float64)
  r_val = s - labels[val_idx]
  c_b, c_w = r_val.mean(), (r_val[:, None] * h_val).mean(axis=0)
  h = features(batch["train"]["x"]).numpy().astype(np.float64)
  closed = (s - labels[train_idx]) * (c_b + h @ c_w)
  np.testing.assert_allclose(method.raw_weights(batch).numpy(), closed, rtol=2e-4, atol=1e-7)
  assert (closed[np.arange(100) != at] < 0).all() and closed[at] > 0
  # A training step on it follows the 4 alone: the zero-weight fraction is 99 of 100.
  metrics = method.step(batch)
  assert float(metrics["zero_weight_fraction"]) == pytest.approx(0.99)
