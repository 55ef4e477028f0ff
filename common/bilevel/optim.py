"""Optimiser updates with the exact semantics of the original code.

The originals use TF1's ``tf.train.AdamOptimizer``. Keras 3's Adam computes the same update,
but a bilevel method needs two things Keras does not give it: a learning rate that is a
variable the method itself owns and decays (the penalty schedule multiplies it on every passed
convergence test), and moment slots it can address by name (per-example importance state swaps
them in and out per mini-batch). ``tests/common/test_bilevel_optim.py`` pins this class to
``keras.optimizers.Adam`` step for step.
"""

import tensorflow as tf


class Adam(tf.Module):
  """Adam as in TF1: ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)``, epsilon outside the root.

  The defaults are TF1's (epsilon 1e-8; Keras' default is 1e-7).
  """

  def __init__(self, variables, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
               name=None):
    super().__init__(name=name)
    if not variables:
      raise ValueError("Adam needs at least one variable to optimise.")
    dtype = variables[0].dtype
    self.learning_rate = tf.Variable(learning_rate, dtype=dtype, trainable=False,
                                     name="learning_rate")
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
    if len(grads) != len(self.m):
      raise ValueError(f"Adam was built for {len(self.m)} variables, got {len(grads)} gradients.")
    t = tf.cast(self.iterations + 1, self.learning_rate.dtype)
    b1 = tf.constant(self.beta_1, t.dtype)  # tf.cast(python float) would round via float32
    b2 = tf.constant(self.beta_2, t.dtype)
    lr_t = self.learning_rate * tf.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
    for g, var, m, v in zip(grads, variables, self.m, self.v):
      g = tf.convert_to_tensor(g, dtype=var.dtype)
      m.assign(self.beta_1 * m + (1.0 - self.beta_1) * g)
      v.assign(self.beta_2 * v + (1.0 - self.beta_2) * tf.square(g))
      var.assign_sub(tf.cast(lr_t, var.dtype) * m / (tf.sqrt(v) + self.epsilon))
    self.iterations.assign_add(1)


class MomentumSGD(tf.Module):
  """TF1's ``MomentumOptimizer``: ``accum = momentum * accum + g; var -= lr * accum``.

  (Keras' SGD keeps ``-lr * g`` in its velocity instead, which differs once the learning rate
  changes.) The learning rate is a variable the method owns, as for ``Adam``; epoch schedules
  multiply it. ``boundaries`` (steps) give TF1's piecewise-constant step schedule on top: the
  rate used at step t is ``learning_rate * factor ** (number of boundaries <= t)``, t counted
  from 0 by ``iterations``.
  """

  def __init__(self, variables, learning_rate, momentum=0.9, name=None, boundaries=(),
               factor=0.1):
    super().__init__(name=name)
    if not variables:
      raise ValueError("MomentumSGD needs at least one variable to optimise.")
    if list(boundaries) != sorted(boundaries):
      raise ValueError(f"learning-rate boundaries must be increasing step numbers, got "
                       f"{list(boundaries)}.")
    self.learning_rate = tf.Variable(learning_rate, dtype=variables[0].dtype, trainable=False,
                                     name="learning_rate")
    self.momentum = momentum
    self.boundaries = tf.constant([int(b) for b in boundaries] or [-1], tf.int64)
    self.use_boundaries = bool(boundaries)
    self.factor = float(factor)
    self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
    self.accumulators = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="accum")
                         for v in variables]

  def current_rate(self):
    """The learning rate the next ``apply`` uses."""
    if not self.use_boundaries:
      return tf.identity(self.learning_rate)
    passed = tf.reduce_sum(tf.cast(self.iterations >= self.boundaries, self.learning_rate.dtype))
    return self.learning_rate * tf.pow(tf.constant(self.factor, self.learning_rate.dtype), passed)

  def apply(self, grads, variables):
    if len(grads) != len(self.accumulators):
      raise ValueError(f"MomentumSGD was built for {len(self.accumulators)} variables, got "
                       f"{len(grads)} gradients.")
    lr = self.current_rate()
    for g, var, acc in zip(grads, variables, self.accumulators):
      acc.assign(self.momentum * acc + tf.convert_to_tensor(g, dtype=var.dtype))
      var.assign_sub(tf.cast(lr, var.dtype) * acc)
    self.iterations.assign_add(1)
    return lr


class RMSProp(tf.Module):
  """TF1's ``RMSPropOptimizer`` (momentum 0 by default), which differs from Keras' RMSprop:

      ms  = decay * ms + (1 - decay) * g^2       (ms starts at ONE, not zero)
      mom = momentum * mom + lr * g / sqrt(ms + epsilon)
      var -= mom

  The clean-label attack of the penalty paper pre- and retrains its classifier with TF1's
  defaults: decay 0.9, momentum 0, epsilon 1e-10. Starting ms at one makes the first steps
  roughly plain gradient steps of size lr rather than sign steps of size ~3 lr.
  """

  def __init__(self, variables, learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10,
               name=None):
    super().__init__(name=name)
    if not variables:
      raise ValueError("RMSProp needs at least one variable to optimise.")
    self.learning_rate = tf.Variable(learning_rate, dtype=variables[0].dtype, trainable=False,
                                     name="learning_rate")
    self.decay, self.momentum, self.epsilon = decay, momentum, epsilon
    self.ms = [tf.Variable(tf.ones(v.shape, v.dtype), trainable=False, name="ms")
               for v in variables]
    self.mom = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="mom")
                for v in variables]

  def apply(self, grads, variables):
    if len(grads) != len(self.ms):
      raise ValueError(f"RMSProp was built for {len(self.ms)} variables, got {len(grads)} "
                       "gradients.")
    for g, var, ms, mom in zip(grads, variables, self.ms, self.mom):
      g = tf.convert_to_tensor(g, dtype=var.dtype)
      ms.assign(self.decay * ms + (1.0 - self.decay) * tf.square(g))
      mom.assign(self.momentum * mom + self.learning_rate * g / tf.sqrt(ms + self.epsilon))
      var.assign_sub(mom)
