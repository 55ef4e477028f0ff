import keras
import numpy as np
import pytest
import tensorflow as tf

from common.bilevel import optim
from common.bilevel.optim import Adam, MomentumSGD, RMSProp, Schedule


def test_adam_matches_keras_adam_with_tf1_epsilon():
  rng = np.random.default_rng(0)
  init = rng.normal(size=(5, 3)).astype(np.float32)
  ours, theirs = tf.Variable(init), tf.Variable(init)
  opt = Adam([ours], 0.05)
  ref = keras.optimizers.Adam(learning_rate=0.05, epsilon=1e-8)
  for _ in range(20):
    g = rng.normal(size=(5, 3)).astype(np.float32)
    opt.apply([g], [ours])
    ref.apply([tf.constant(g)], [theirs])
  np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
  assert opt.iterations.numpy() == 20


def test_adam_first_step_closed_form():
  """Step 1: m = 0.1 g, v = 0.001 g^2, lr_t = lr sqrt(0.001) / 0.1 -> var -= lr g/(|g| + eps')."""
  var = tf.Variable([1.0, -2.0], dtype=tf.float64)
  g = np.array([0.5, -3.0])
  Adam([var], 0.1).apply([g], [var])
  lr_t = 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9)
  expected = np.array([1.0, -2.0]) - lr_t * 0.1 * g / (np.sqrt(0.001 * g ** 2) + 1e-8)
  np.testing.assert_allclose(var.numpy(), expected, rtol=1e-12)


def test_learning_rate_is_a_variable_read_at_each_step():
  var = tf.Variable([0.0])
  opt = Adam([var], 1.0)
  opt.learning_rate.assign(0.0)
  opt.apply([tf.constant([1.0])], [var])
  assert var.numpy()[0] == 0.0


def _decay_epochs(every, offset, num_epochs, milestones=()):
  import ml_collections
  cfg = ml_collections.ConfigDict({"lr_decay_every_epochs": every, "lr_decay_factor": 0.5,
                                   "lr_decay_epoch_offset": offset,
                                   "lr_milestones_epochs": milestones})
  schedule = Schedule.from_config(cfg)
  lr = tf.Variable(1.0, dtype=tf.float64)
  hits = [e for e in range(1, num_epochs + 1) if schedule.end_epoch(e, [lr])]
  return hits, lr.numpy()


def test_epoch_schedule_matches_the_scripts_loops():
  """MNIST large: `for epoch in range(1, 101)`, CIFAR-10 / SVHN: `for epoch in range(n)`, both
  halving after the epoch when `epoch % 20 == 0 and epoch != 0`."""
  one_based = [e for e in range(1, 101) if e % 20 == 0 and e != 0]
  zero_based = [e + 1 for e in range(201) if e % 20 == 0 and e != 0]   # as completed epochs
  hits, lr = _decay_epochs(20, 0, 100)
  assert hits == one_based == [20, 40, 60, 80, 100] and lr == 0.5 ** 5
  hits, lr = _decay_epochs(20, 1, 201)
  assert hits == zero_based and hits[:2] == [21, 41] and lr == 0.5 ** 10
  assert _decay_epochs(0, 0, 50) == ([], 1.0)
  # Data parameters' CIFAR-100 milestones; with a period as well, either one fires.
  assert _decay_epochs(0, 0, 120, milestones=(80, 100)) == ([80, 100], 0.25)
  assert _decay_epochs(30, 0, 90, milestones=(45,))[0] == [30, 45, 60, 90]


def test_momentum_sgd_is_tf1_momentum_and_keras_sgd_at_constant_lr():
  rng = np.random.default_rng(1)
  init = rng.normal(size=(4, 2))
  ours, theirs = tf.Variable(init), tf.Variable(init)
  opt = MomentumSGD([ours], 0.05, momentum=0.9)
  ref = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
  acc = np.zeros_like(init)
  expected = init.copy()
  for _ in range(10):
    g = rng.normal(size=(4, 2))
    opt.apply([g], [ours])
    ref.apply([tf.constant(g)], [theirs])
    acc = 0.9 * acc + g
    expected = expected - 0.05 * acc
  np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)
  # Keras keeps its learning rate in float32, hence the looser match.
  np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_momentum_sgd_step_boundaries_are_tf1_piecewise_constant():
  var = tf.Variable([1.0], dtype=tf.float64)
  opt = MomentumSGD([var], 0.1, momentum=0.0,
                    schedule=Schedule(boundaries=(2, 4), boundary_factor=0.1))
  rates = [float(opt.apply([tf.constant([1.0], tf.float64)], [var])) for _ in range(6)]
  np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-12)
  np.testing.assert_allclose(var.numpy(), [1.0 - 0.2 - 0.02 - 0.002], rtol=1e-12)
  # An epoch decay multiplies the base rate; the boundaries still apply on top.
  opt.learning_rate.assign(opt.learning_rate * 0.5)
  assert float(opt.current_rate()) == pytest.approx(0.0005)
  with pytest.raises(ValueError, match="must be increasing"):
    Schedule(boundaries=(5, 3))


def test_momentum_sgd_keeps_tf1_semantics_when_the_rate_changes():
  """TF1: accum = m accum + g; var -= lr accum. A rate change (a step boundary, then an epoch
  decay of the base rate) rescales the whole accumulated step at once; Keras' SGD, whose
  velocity holds -lr g, would carry the old rate on in its velocity."""
  rng = np.random.default_rng(3)
  init = rng.normal(size=3)
  var = tf.Variable(init)
  opt = MomentumSGD([var], 0.5, momentum=0.9,
                    schedule=Schedule(boundaries=(2,), boundary_factor=0.1))
  grads = [rng.normal(size=3) for _ in range(6)]
  acc, x = np.zeros(3), init.copy()
  vel, y = np.zeros(3), init.copy()      # Keras' rule, to show the two really differ
  for t, g in enumerate(grads):
    if t == 4:
      opt.learning_rate.assign(0.25)     # an epoch decay halves the base rate
    lr = (0.5 if t < 4 else 0.25) * (0.1 if t >= 2 else 1.0)
    used = opt.apply([tf.constant(g)], [var])
    assert float(used) == pytest.approx(lr, rel=1e-12)
    acc = 0.9 * acc + g
    x = x - lr * acc
    vel = 0.9 * vel - lr * g
    y = y + vel
    np.testing.assert_allclose(var.numpy(), x, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(opt.accumulators[0].numpy(), acc, rtol=1e-12, atol=1e-12)
  assert np.abs(x - y).max() > 0.1
  # The pure update follows the same rule with a rate that changes between calls.
  params, state = [tf.constant(init)], optim.momentum_init([tf.constant(init)])
  acc, x = np.zeros(3), init.copy()
  for lr, g in zip([1.0, 1.0, 0.1, 0.01], grads):
    params, state = optim.momentum_update([tf.constant(g)], params, state, lr, momentum=0.9)
    acc = 0.9 * acc + g
    x = x - lr * acc
  np.testing.assert_allclose(params[0].numpy(), x, rtol=1e-12, atol=1e-12)


def test_rmsprop_is_tf1s_update_with_ms_starting_at_one():
  var = tf.Variable([1.0, -2.0, 0.5], dtype=tf.float64)
  opt = RMSProp([var], 0.01, decay=0.9, epsilon=1e-10)
  x, ms = var.numpy().copy(), np.ones(3)
  for g in ([0.3, -1.0, 2.0], [0.1, 0.2, -0.5], [1.0, 1.0, 1.0]):
    opt.apply([tf.constant(g, tf.float64)], [var])
    ms = 0.9 * ms + 0.1 * np.square(g)
    x = x - 0.01 * np.asarray(g) / np.sqrt(ms + 1e-10)
    np.testing.assert_allclose(var.numpy(), x, rtol=1e-12)


@pytest.mark.parametrize("rule", sorted(optim.RULES))
def test_each_wrapper_is_its_pure_update_bit_for_bit(rule):
  """The stateful optimiser assigns exactly what the functional core returns, step after step
  (so a method may switch between them, e.g. unroll the pure update inside a tape)."""
  wrappers = {"adam": lambda v: Adam(v, 0.05), "momentum": lambda v: MomentumSGD(v, 0.05),
              "rmsprop": lambda v: RMSProp(v, 0.05)}
  init, update = optim.RULES[rule]
  rng = np.random.default_rng(5)
  start = [rng.normal(size=(3, 2)), rng.normal(size=4)]
  variables = [tf.Variable(x) for x in start]
  opt = wrappers[rule](variables)
  params = [tf.constant(x) for x in start]
  state = init(params)
  for _ in range(5):
    grads = [tf.constant(rng.normal(size=x.shape)) for x in start]
    opt.apply(grads, variables)
    params, state = update(grads, params, state, 0.05)
    for var, p in zip(variables, params):
      np.testing.assert_array_equal(var.numpy(), p.numpy())


def test_pure_updates_leave_their_inputs_alone_and_differentiate():
  """No assignment happens, and the update is a differentiable function of its inputs: the
  derivative of two unrolled momentum steps w.r.t. the start equals the closed form."""
  p0 = tf.constant([1.0, -2.0], tf.float64)
  with tf.GradientTape() as tape:
    tape.watch(p0)
    params, acc = [p0], optim.momentum_init([p0])
    for _ in range(2):   # gradient of 1/2 |p|^2 is p
      params, acc = optim.momentum_update([params[0]], params, acc, 0.1, momentum=0.5)
    out = tf.reduce_sum(params[0])
  # p1 = 0.9 p0; acc1 = p0; acc2 = 0.5 p0 + 0.9 p0; p2 = 0.9 p0 - 0.1 * 1.4 p0 = 0.76 p0.
  np.testing.assert_allclose(params[0].numpy(), 0.76 * p0.numpy(), rtol=1e-12)
  np.testing.assert_allclose(tape.gradient(out, p0).numpy(), [0.76, 0.76], rtol=1e-12)
  np.testing.assert_array_equal(p0.numpy(), [1.0, -2.0])
