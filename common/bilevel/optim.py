"""Optimisers with the exact semantics of the original code: a functional core and thin
stateful wrappers, plus one learning-rate schedule value.

**The functional core** (the optax / higher pattern): for each rule a pure ``*_init(params)``
giving its state as tensors and a pure ``*_update(grads, params, state, learning_rate, ...)``
giving ``(new_params, new_state)``. Nothing is assigned, so a method can run a rule inside a
loop it differentiates through (RMD unrolls any of them), or on tensors that never were
variables (the few-shot evaluation adapts fresh heads with ``adam_update``).

**The stateful wrappers** (``Adam``, ``MomentumSGD``, ``RMSProp``, ``SparseMomentumSGD``) keep
that state in variables a method owns and checkpoints, call the pure update and assign. Their
learning rate is a variable too: schedules multiply it without retracing. A bilevel method needs
this rather than Keras' optimisers because it owns and decays its rates (the penalty schedule
multiplies them on every passed convergence test) and addresses moment slots by position
(per-example importance state swaps them per mini-batch).
``tests/common/test_bilevel_optim.py`` pins ``Adam`` to ``keras.optimizers.Adam`` step for step
and each wrapper to its pure update.

**Schedules** are one value, ``Schedule``: epoch decay (every k epochs after an offset, or at
milestone epochs), TF1's piecewise-constant step boundaries, and a multiply-on-event rule.
"""

import dataclasses
from typing import NamedTuple

import tensorflow as tf

from common import defaults


# -- the functional core ------------------------------------------------------------------------

def _in_dtype(x, dtype):
  """``x`` as a ``dtype`` tensor: a cast for tensors, exact for Python numbers (``tf.cast``
  of a Python float would round it through float32 first)."""
  return tf.cast(x, dtype) if tf.is_tensor(x) or isinstance(x, tf.Variable) else \
      tf.constant(x, dtype)


class AdamState(NamedTuple):
  count: tf.Tensor      # steps taken (int64)
  m: list
  v: list


def adam_init(params):
  """Zero moments and a zero step count for ``params`` (a list of tensors)."""
  return AdamState(tf.zeros([], tf.int64), [tf.zeros_like(p) for p in params],
                   [tf.zeros_like(p) for p in params])


def adam_update(grads, params, state, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
  """TF1's Adam: ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)``, epsilon outside the root.

  The defaults are TF1's (epsilon 1e-8; Keras' default is 1e-7). The bias correction is
  computed in the first parameter's float type.
  """
  dtype = params[0].dtype
  t = tf.cast(state.count + 1, dtype)
  b1 = tf.constant(beta_1, dtype)  # tf.cast(python float) would round via float32
  b2 = tf.constant(beta_2, dtype)
  lr_t = learning_rate * tf.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
  new_params, new_m, new_v = [], [], []
  for g, p, m, v in zip(grads, params, state.m, state.v):
    g = tf.convert_to_tensor(g, dtype=p.dtype)
    m = beta_1 * m + (1.0 - beta_1) * g
    v = beta_2 * v + (1.0 - beta_2) * tf.square(g)
    new_params.append(p - _in_dtype(lr_t, p.dtype) * m / (tf.sqrt(v) + epsilon))
    new_m.append(m)
    new_v.append(v)
  return new_params, AdamState(state.count + 1, new_m, new_v)


def momentum_init(params):
  """TF1 momentum's accumulators: zeros shaped like ``params``."""
  return [tf.zeros_like(p) for p in params]


def momentum_update(grads, params, accumulators, learning_rate, momentum=0.9):
  """TF1's ``MomentumOptimizer``: ``accum = momentum * accum + g; p -= lr * accum``.

  (Keras' SGD keeps ``-lr * g`` in its velocity instead, which differs once the rate changes.)
  """
  new_params, new_acc = [], []
  for g, p, acc in zip(grads, params, accumulators):
    acc = momentum * acc + tf.convert_to_tensor(g, dtype=p.dtype)
    new_params.append(p - _in_dtype(learning_rate, p.dtype) * acc)
    new_acc.append(acc)
  return new_params, new_acc


class RMSPropState(NamedTuple):
  ms: list
  mom: list


def rmsprop_init(params):
  """TF1 RMSProp's state: the mean square starts at ONE, the momentum at zero."""
  return RMSPropState([tf.ones_like(p) for p in params], [tf.zeros_like(p) for p in params])


def rmsprop_update(grads, params, state, learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10):
  """TF1's ``RMSPropOptimizer``: ``ms = decay ms + (1 - decay) g^2;
  mom = momentum mom + lr g / sqrt(ms + epsilon); p -= mom``."""
  new_params, new_ms, new_mom = [], [], []
  for g, p, ms, mom in zip(grads, params, state.ms, state.mom):
    g = tf.convert_to_tensor(g, dtype=p.dtype)
    ms = decay * ms + (1.0 - decay) * tf.square(g)
    mom = momentum * mom + learning_rate * g / tf.sqrt(ms + epsilon)
    new_params.append(p - mom)
    new_ms.append(ms)
    new_mom.append(mom)
  return new_params, RMSPropState(new_ms, new_mom)


def sparse_momentum_update(grad, value, buf, learning_rate, momentum=0.9):
  """PyTorch momentum SGD on the entries whose gradient is non-zero; every other entry keeps
  its value and its momentum buffer exactly. Dense tensors of one shape; returns
  ``(new_value, new_buffer)``."""
  present = tf.not_equal(grad, 0.0)
  new_buf = tf.where(present, momentum * buf + grad, buf)
  new_value = tf.where(present, value - learning_rate * new_buf, value)
  return new_value, new_buf


RULES = {
    # name: (init, update); ``update(grads, params, state, learning_rate, **hyperparameters)``
    "adam": (adam_init, adam_update),
    "momentum": (momentum_init, momentum_update),
    "rmsprop": (rmsprop_init, rmsprop_update),
}


# -- schedules ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Schedule:
  """Every learning-rate schedule of the four originals, as one value.

  * **epoch decay**: multiply by ``factor`` after epoch ``e`` (1-based) when ``e`` is one of
    ``milestones``, or when ``every_epochs > 0``, ``e > epoch_offset`` and
    ``(e - epoch_offset) % every_epochs == 0``. The penalty paper's scripts halve when
    ``e % 20 == 0 and e != 0``: with their 1-based epoch loops (MNIST large) that is offset 0,
    with 0-based loops (CIFAR-10, SVHN) offset 1. Data parameters use milestones (CIFAR-100:
    80, 100) or every 30 epochs (ImageNet).
  * **step boundaries** (a piecewise-constant schedule): the rate used at step t (from 0) is
    the base rate times ``boundary_factor ** (number of boundaries <= t)``: b steps run at
    the old rate, the new one starts with step index b. With ``boundaries_one_based`` a
    boundary b is instead the 1-based number of the first step at the new rate (step index
    b - 1): the official L2RW CIFAR loop calls ``FixedLearnRateScheduler.step(niter)`` before
    the training step ``niter`` (from 0), and that assigns the new rate when
    ``niter + 1 == b``, so its 40,000th step (index 39,999) already runs at 0.01.
  * **multiply on an event** (``multiply``): the penalty method's decay on every passed
    convergence test.
  """

  factor: float = 0.5
  every_epochs: int = 0
  epoch_offset: int = 0
  milestones: tuple = ()
  boundaries: tuple = ()
  boundary_factor: float = 0.1
  boundaries_one_based: bool = False

  def __post_init__(self):
    if list(self.boundaries) != sorted(self.boundaries):
      raise ValueError(f"learning-rate boundaries must be increasing step numbers, got "
                       f"{list(self.boundaries)}.")

  @classmethod
  def from_config(cls, config):
    """From a method block's keys (absent keys: off): ``lr_decay_factor``,
    ``lr_decay_every_epochs``, ``lr_decay_epoch_offset``, ``lr_milestones_epochs``,
    ``lr_boundaries_steps``, ``lr_boundaries_factor``, ``lr_boundaries_one_based``."""
    return cls(factor=float(config.get("lr_decay_factor", 0.5)),
               every_epochs=int(config.get("lr_decay_every_epochs", 0)),
               epoch_offset=int(config.get("lr_decay_epoch_offset", 0)),
               milestones=tuple(int(e) for e in config.get("lr_milestones_epochs", ())),
               boundaries=tuple(int(b) for b in config.get("lr_boundaries_steps", ())),
               boundary_factor=float(config.get("lr_boundaries_factor", 0.1)),
               boundaries_one_based=bool(config.get("lr_boundaries_one_based", False)))

  def decays_after(self, epoch):
    """Whether the rate is multiplied by ``factor`` after ``epoch`` (1-based) epochs."""
    every, offset = self.every_epochs, self.epoch_offset
    return epoch in self.milestones or (
        every > 0 and epoch > offset and (epoch - offset) % every == 0)

  def end_epoch(self, epoch, learning_rates):
    """Apply the epoch decay to the rate variables; True when it fired."""
    if self.decays_after(epoch):
      multiply(learning_rates, self.factor)
      return True
    return False

  def step_rate(self, learning_rate, step):
    """The rate used at step ``step`` (a tensor from 0): the boundaries on top of the base."""
    if not self.boundaries:
      return tf.identity(learning_rate)
    dtype = learning_rate.dtype
    # One-based: step index t is step number t + 1, which is what the boundaries count.
    number = tf.cast(step, tf.int64) + (1 if self.boundaries_one_based else 0)
    passed = tf.reduce_sum(tf.cast(number >= tf.constant(self.boundaries, tf.int64), dtype))
    return learning_rate * tf.pow(tf.constant(self.boundary_factor, dtype), passed)


def multiply(learning_rates, factor):
  """Multiply each rate variable by ``factor`` (a schedule event)."""
  for lr in learning_rates:
    lr.assign(lr * factor)


# A method block's schedule keys (common/defaults.py).
epoch_decay_defaults = defaults.epoch_decay
momentum_schedule_defaults = defaults.momentum_schedule


# -- the stateful wrappers ---------------------------------------------------------------------

def _rate_variable(learning_rate, variables, what):
  if not variables:
    raise ValueError(f"{what} needs at least one variable to optimise.")
  return tf.Variable(learning_rate, dtype=variables[0].dtype, trainable=False,
                     name="learning_rate")


def _assign(variables, values):
  for var, value in zip(variables, values):
    var.assign(value)


def _check_count(grads, expected, what):
  if len(grads) != expected:
    raise ValueError(f"{what} was built for {expected} variables, got {len(grads)} gradients.")


def _values(variables):
  return [tf.convert_to_tensor(v) for v in variables]


class Adam(tf.Module):
  """``adam_update`` with its state in variables (``slots(i)``: variable i's two moments)."""

  def __init__(self, variables, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
               name=None):
    super().__init__(name=name)
    self.learning_rate = _rate_variable(learning_rate, variables, "Adam")
    self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
    self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
    self.m = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="m")
              for v in variables]
    self.v = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="v")
              for v in variables]

  def slots(self, index):
    """The moment variables (m, v) of variable ``index``: state shaped like that variable."""
    return [self.m[index], self.v[index]]

  def apply(self, grads, variables):
    """One Adam step of every variable along its gradient (same order as at construction)."""
    _check_count(grads, len(self.m), "Adam")
    state = AdamState(tf.convert_to_tensor(self.iterations), _values(self.m), _values(self.v))
    params, state = adam_update(grads, _values(variables), state, self.learning_rate,
                                self.beta_1, self.beta_2, self.epsilon)
    _assign(self.m, state.m)
    _assign(self.v, state.v)
    _assign(variables, params)
    self.iterations.assign_add(1)


class MomentumSGD(tf.Module):
  """``momentum_update`` with its accumulators in variables. ``schedule`` (a ``Schedule``)
  supplies the step boundaries, counted by ``iterations``; epoch decays multiply
  ``learning_rate`` and the boundaries still apply on top."""

  def __init__(self, variables, learning_rate, momentum=0.9, name=None, schedule=None):
    super().__init__(name=name)
    self.learning_rate = _rate_variable(learning_rate, variables, "MomentumSGD")
    self.momentum = momentum
    self.schedule = schedule or Schedule()
    self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
    self.accumulators = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="accum")
                         for v in variables]

  def current_rate(self):
    """The learning rate the next ``apply`` uses."""
    return self.schedule.step_rate(self.learning_rate, self.iterations)

  def apply(self, grads, variables):
    """One step; returns the rate it used."""
    _check_count(grads, len(self.accumulators), "MomentumSGD")
    lr = self.current_rate()
    params, acc = momentum_update(grads, _values(variables), _values(self.accumulators), lr,
                                  self.momentum)
    _assign(self.accumulators, acc)
    _assign(variables, params)
    self.iterations.assign_add(1)
    return lr


class RMSProp(tf.Module):
  """``rmsprop_update`` with its state in variables. The clean-label attack of the penalty
  paper pre- and retrains its classifier with TF1's defaults (decay 0.9, momentum 0, epsilon
  1e-10); the mean square starting at one makes the first steps roughly plain gradient steps
  of size lr rather than sign steps of size ~3 lr (Keras' RMSprop starts it at zero)."""

  def __init__(self, variables, learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10,
               name=None):
    super().__init__(name=name)
    self.learning_rate = _rate_variable(learning_rate, variables, "RMSProp")
    self.decay, self.momentum, self.epsilon = decay, momentum, epsilon
    self.ms = [tf.Variable(tf.ones(v.shape, v.dtype), trainable=False, name="ms")
               for v in variables]
    self.mom = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="mom")
                for v in variables]

  def apply(self, grads, variables):
    _check_count(grads, len(self.ms), "RMSProp")
    state = RMSPropState(_values(self.ms), _values(self.mom))
    params, state = rmsprop_update(grads, _values(variables), state, self.learning_rate,
                                   self.decay, self.momentum, self.epsilon)
    _assign(self.ms, state.ms)
    _assign(self.mom, state.mom)
    _assign(variables, params)


class SparseMomentumSGD(tf.Module):
  """The data-parameters paper's ``SparseSGD`` for one 1-D tensor: ``sparse_momentum_update``
  on the rows that have a gradient.

  PyTorch SGD with momentum (dampening 0, no Nesterov, no weight decay: data-parameter decay is
  the explicit mini-batch penalty) applied only to entries whose (accumulated) gradient is
  non-zero; every other entry keeps its value and its buffer bit for bit until it is seen
  again. A present entry whose gradient is exactly 0.0 counts as absent, as in the original.
  The buffer starts at zero, so a row's first update sets ``buf = g``, which is PyTorch's rule
  both on the tensor's first step and for a row first seen later.

  Gradients of ``tf.gather`` arrive as ``tf.IndexedSlices`` with one entry per batch position;
  duplicates are summed with ``tf.unique`` + ``unsorted_segment_sum`` (what PyTorch's dense
  gradient does) and the row is updated once. All shapes are the batch's, so a step traces
  once and compiles under XLA. A dense gradient (shape of the variable) is accepted too.
  """

  def __init__(self, variable, learning_rate, momentum=0.9, name=None):
    super().__init__(name=name)
    if variable.shape.rank != 1:
      raise ValueError(f"SparseMomentumSGD updates rows of a 1-D tensor, got shape "
                       f"{variable.shape}.")
    self.variable = variable
    self.learning_rate = _rate_variable(learning_rate, [variable], "SparseMomentumSGD")
    self.momentum = float(momentum)
    self.momentum_buffer = tf.Variable(tf.zeros(variable.shape, variable.dtype),
                                       trainable=False, name="momentum_buffer")

  def apply(self, grad):
    """One step along ``grad`` (IndexedSlices or dense); ``None`` is a no-op, as in PyTorch."""
    if grad is None:
      return
    var, buf = self.variable, self.momentum_buffer
    if not isinstance(grad, tf.IndexedSlices):
      value, new_buf = sparse_momentum_update(tf.convert_to_tensor(grad, var.dtype), var, buf,
                                              self.learning_rate, self.momentum)
      buf.assign(new_buf)
      var.assign(value)
      return
    indices = grad.indices
    values = tf.cast(tf.reshape(grad.values, tf.shape(indices)), var.dtype)
    # row[j]: which distinct index batch position j holds. Summing per distinct index and
    # gathering the sum back gives every position its row's total gradient; duplicate
    # positions then compute identical new values, so the scatters below are well defined
    # whatever order they write in, and every shape stays the batch's.
    _, row = tf.unique(indices)
    total = tf.math.unsorted_segment_sum(values, row, tf.size(indices))
    value, new_buf = sparse_momentum_update(tf.gather(total, row), tf.gather(var, indices),
                                            tf.gather(buf, indices), self.learning_rate,
                                            self.momentum)
    buf.scatter_update(tf.IndexedSlices(new_buf, indices))
    var.scatter_update(tf.IndexedSlices(value, indices))
