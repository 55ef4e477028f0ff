"""Data parameters (Saxena, Tuzel, DeCoste, NeurIPS 2019): per-class and per-instance temperatures.

The original (apple/ml-data-parameters, PyTorch) gives every class y a parameter c[y] and every
training example k a parameter s[k], both in log space. During training the logits of a sample
are divided by its temperature sigma (``exp(c[y])``, ``exp(s[k])``, or their *sum* when both
are learned), so a hard or mislabelled example can raise its sigma and flatten its softmax
instead of dragging the model towards its label. The loss is

  mean_i CE(z_i / sigma_i, y_i) + 1/2 wd_inst sum_i s[k_i]^2 + 1/2 wd_class sum_i c[y_i]^2,

the penalty summed over the mini-batch entries only (a class or index met twice counts twice).
The data parameters are then stepped by ``SparseMomentumSGD`` (PyTorch momentum SGD that leaves
every entry without a gradient, and its momentum, exactly as it was) and clamped so that each
sigma stays in [1/20, 20].

Inference never uses data parameters: the original validates with the model's unscaled logits,
so this module offers nothing that scales logits at test time; evaluate the bare model.

The pieces here are the maths only; a training loop composes them in the original's order:
gradient of the loss above, one ``SparseMomentumSGD`` step per learned tensor (class, then
instance), ``clamp()``. ``DataParameters.apply_gradients`` does the last two.
``../shared/reference/data_parameters.md`` is the specification; section numbers below refer
to it.
"""

import math

import ml_collections
import numpy as np
import tensorflow as tf

from common import models
from common.bilevel.optim import MomentumSGD

# sigma in [1/20, 20], written as the original writes its clamp config: log-space bounds
# (the original's keys say "sigma" but hold log(sigma)).
LOG_SIGMA_MIN = float(np.log(1 / 20))
LOG_SIGMA_MAX = float(np.log(20))


class SparseMomentumSGD(tf.Module):
  """The original's ``SparseSGD`` (§3) for one 1-D parameter tensor.

  PyTorch SGD with momentum (dampening 0, no Nesterov, no weight decay: the original asserts
  ``weight_decay == 0`` because data-parameter decay is the explicit mini-batch penalty):

    buf <- momentum * buf + g;   p <- p - lr * buf,

  but only for entries whose (accumulated) gradient is non-zero. Every other entry keeps both
  its value and its momentum buffer bit for bit: no movement, no momentum decay, until it is
  seen again. As in the original, a present entry whose gradient is exactly 0.0 (for instance
  two duplicate contributions that cancel) counts as absent.

  The buffer starts at zero, so the first update of a row sets ``buf = g``. This equals
  PyTorch's rule in both cases it distinguishes: on the tensor's first step PyTorch creates
  ``buf = g`` for the whole tensor (0 for rows without gradient, and those are not reverted),
  and a row first seen later starts from that 0, i.e. ``buf = 0.9 * 0 + g = g``.

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
    # A variable, like the other optimisers' rates, so a schedule or a checkpoint can own it.
    self.learning_rate = tf.Variable(learning_rate, dtype=variable.dtype, trainable=False,
                                     name="learning_rate")
    self.momentum = float(momentum)
    self.momentum_buffer = tf.Variable(tf.zeros(variable.shape, variable.dtype),
                                       trainable=False, name="momentum_buffer")

  def _update(self, grad, value, buf):
    """New (value, buffer) for entries with gradient ``grad``; zero-gradient entries unchanged."""
    present = tf.not_equal(grad, 0.0)
    new_buf = tf.where(present, self.momentum * buf + grad, buf)
    new_value = tf.where(present, value - self.learning_rate * new_buf, value)
    return new_value, new_buf

  def apply(self, grad):
    """One step along ``grad`` (IndexedSlices or dense); ``None`` is a no-op, as in PyTorch."""
    if grad is None:
      return
    var, buf = self.variable, self.momentum_buffer
    if not isinstance(grad, tf.IndexedSlices):
      value, new_buf = self._update(tf.convert_to_tensor(grad, var.dtype), var, buf)
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
    value, new_buf = self._update(tf.gather(total, row), tf.gather(var, indices),
                                  tf.gather(buf, indices))
    buf.scatter_update(tf.IndexedSlices(new_buf, indices))
    var.scatter_update(tf.IndexedSlices(value, indices))


class DataParameters(tf.Module):
  """Class and instance parameters in log space, their temperature, penalty and clamp (§2).

  ``class_parameters`` ([num_classes]) and ``inst_parameters`` ([num_instances]) always exist,
  initialised to log(init) as the original's ``np.ones(n) * np.log(init)`` cast to the
  parameter dtype (§2.1); only the learned ones are ``trainable`` (the original's
  ``requires_grad``), are stepped, decayed and clamped. With neither learned the module is
  the baseline: sigma = 1 and logits pass through unchanged.
  """

  @staticmethod
  def default_config():
    """The original's flags with its argparse defaults (§4.1) and its clamp config (§2.4)."""
    return ml_collections.ConfigDict({
        "learn_class_parameters": False,
        "learn_inst_parameters": False,
        "init_class_param": 1.0,      # sigma at init; stored as log(init)
        "init_inst_param": 1.0,
        "lr_class_param": 0.1,
        "lr_inst_param": 0.1,
        "wd_class_param": 0.0,        # coefficient of the explicit mini-batch penalty
        "wd_inst_param": 0.0,
        "skip_clamp_data_param": False,
        # Log-sigma bounds, keyed as in the original's config dict (its "sigma" keys hold logs).
        "clamp_cls_sigma": {"min": LOG_SIGMA_MIN, "max": LOG_SIGMA_MAX},
        "clamp_inst_sigma": {"min": LOG_SIGMA_MIN, "max": LOG_SIGMA_MAX},
        "momentum": 0.9,              # hard-coded in the original, not one of its flags
    })

  @classmethod
  def from_config(cls, config, num_classes, num_instances, dtype=tf.float32):
    """Builds the parameters from ``default_config()``-shaped settings."""
    return cls(num_classes, num_instances,
               learn_class_parameters=config.learn_class_parameters,
               learn_inst_parameters=config.learn_inst_parameters,
               init_class_param=config.init_class_param,
               init_inst_param=config.init_inst_param,
               wd_class_param=config.wd_class_param,
               wd_inst_param=config.wd_inst_param,
               skip_clamp_data_param=config.skip_clamp_data_param,
               clamp_cls_sigma=(config.clamp_cls_sigma.min, config.clamp_cls_sigma.max),
               clamp_inst_sigma=(config.clamp_inst_sigma.min, config.clamp_inst_sigma.max),
               dtype=dtype)

  def __init__(self, num_classes, num_instances, learn_class_parameters=False,
               learn_inst_parameters=False, init_class_param=1.0, init_inst_param=1.0,
               wd_class_param=0.0, wd_inst_param=0.0, skip_clamp_data_param=False,
               clamp_cls_sigma=(LOG_SIGMA_MIN, LOG_SIGMA_MAX),
               clamp_inst_sigma=(LOG_SIGMA_MIN, LOG_SIGMA_MAX), dtype=tf.float32, name=None):
    super().__init__(name=name)
    for flag, init in (("init_class_param", init_class_param),
                       ("init_inst_param", init_inst_param)):
      if not init > 0:
        raise ValueError(f"{flag} is a temperature and must be > 0 (it is stored as its log); "
                         f"got {init}.")
    self.learn_class_parameters = bool(learn_class_parameters)
    self.learn_inst_parameters = bool(learn_inst_parameters)
    self.wd_class_param = float(wd_class_param)
    self.wd_inst_param = float(wd_inst_param)
    self.skip_clamp_data_param = bool(skip_clamp_data_param)
    self.clamp_cls_sigma = tuple(float(b) for b in clamp_cls_sigma)
    self.clamp_inst_sigma = tuple(float(b) for b in clamp_inst_sigma)
    # Nothing checks the init against the clamp range: the original does not either (§4.2).
    self.class_parameters = tf.Variable(
        tf.fill([num_classes], tf.constant(math.log(init_class_param), dtype)),
        trainable=self.learn_class_parameters, name="class_parameters")
    self.inst_parameters = tf.Variable(
        tf.fill([num_instances], tf.constant(math.log(init_inst_param), dtype)),
        trainable=self.learn_inst_parameters, name="inst_parameters")

  @property
  def learned_variables(self):
    """The learned tensors in the original's stepping order: class, then instance."""
    learned = [(self.learn_class_parameters, self.class_parameters),
               (self.learn_inst_parameters, self.inst_parameters)]
    return [var for is_learned, var in learned if is_learned]

  def make_optimizers(self, config):
    """One ``SparseMomentumSGD`` per learned tensor, aligned with ``learned_variables``."""
    opts = []
    if self.learn_class_parameters:
      opts.append(SparseMomentumSGD(self.class_parameters, config.lr_class_param,
                                    config.momentum, name="class_param_sgd"))
    if self.learn_inst_parameters:
      opts.append(SparseMomentumSGD(self.inst_parameters, config.lr_inst_param,
                                    config.momentum, name="inst_param_sgd"))
    return opts

  def sigma(self, labels, index):
    """Per-sample temperature [B] (§2.2): exp(c[y]), exp(s[k]), their sum, or 1."""
    terms = []
    if self.learn_class_parameters:
      terms.append(tf.exp(tf.gather(self.class_parameters, labels)))
    if self.learn_inst_parameters:
      terms.append(tf.exp(tf.gather(self.inst_parameters, index)))
    if not terms:
      return tf.ones(tf.shape(labels), self.class_parameters.dtype)
    return tf.add_n(terms)

  def scale_logits(self, logits, labels, index):
    """Training logits divided row-wise by sigma (§2.3); unchanged for the baseline.

    Training only: at inference the original uses the model's unscaled logits.
    """
    if not self.learned_variables:
      return logits
    sigma = tf.cast(self.sigma(labels, index), logits.dtype)
    return logits / sigma[:, None]

  def penalty(self, labels, index):
    """1/2 wd sum over batch entries of the log-parameters squared (§2.3).

    Each term only when its tensor is learned and its wd > 0, as in the original; a class
    (or index) met m times in the batch is penalised m times.
    """
    total = tf.zeros([], self.class_parameters.dtype)
    if self.learn_inst_parameters and self.wd_inst_param > 0.0:
      s = tf.gather(self.inst_parameters, index)
      total += 0.5 * self.wd_inst_param * tf.reduce_sum(tf.square(s))
    if self.learn_class_parameters and self.wd_class_param > 0.0:
      c = tf.gather(self.class_parameters, labels)
      total += 0.5 * self.wd_class_param * tf.reduce_sum(tf.square(c))
    return total

  def clamp(self):
    """Clips every entry of each learned tensor, whole tensor, to its log-sigma bounds (§2.4).

    Tensors that are not learned are left alone, and ``skip_clamp_data_param`` turns it off.
    Entries initialised below the floor are lifted by the first call (§4.2).
    """
    if self.skip_clamp_data_param:
      return
    if self.learn_inst_parameters:
      self.inst_parameters.assign(tf.clip_by_value(self.inst_parameters, *self.clamp_inst_sigma))
    if self.learn_class_parameters:
      self.class_parameters.assign(tf.clip_by_value(self.class_parameters,
                                                    *self.clamp_cls_sigma))

  def apply_gradients(self, grads, optimizers):
    """One ``SparseMomentumSGD`` step per learned tensor, then ``clamp()`` (§2.4 steps 4-5).

    ``grads`` and ``optimizers`` are aligned with ``learned_variables``.
    """
    if len(grads) != len(optimizers):
      raise ValueError(f"{len(optimizers)} data-parameter optimisers, {len(grads)} gradients.")
    for grad, opt in zip(grads, optimizers):
      opt.apply(grad)
    self.clamp()


class DataParametersTraining(tf.Module):
  """One training step of the original (§2.4) for a Keras classifier: a method in the
  library's sense (``step(batch)`` -> scalar metrics, all state owned for checkpoints), not in
  the bilevel registry (there is no outer problem).

    loss = mean CE(logits / sigma, y) + data-parameter penalty       (one backward pass)
    model: PyTorch momentum SGD on grad + wd * theta (coupled L2 on *every* trainable weight,
           biases and batch norm included), i.e. TF1's MomentumSGD form
    data parameters: SparseMomentumSGD per learned tensor (class, then instance), then clamp

  With neither tensor learned this is the plain baseline. ``batch["train"]`` holds ``x``,
  ``y`` and ``index`` (the training-set index of each row). ``end_epoch`` applies the model's
  learning-rate schedule: x``lr_decay_factor`` after each epoch in ``lr_milestones_epochs``
  (CIFAR-100: 80, 100) or every ``lr_decay_every_epochs`` epochs (ImageNet: 30).
  """

  @staticmethod
  def default_config():
    """The model side of the CIFAR-100 recipe (§4.3) and the data-parameter flags (§4.1)."""
    return ml_collections.ConfigDict({
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,          # coupled L2 on all model weights
        "lr_milestones_epochs": (80, 100),
        "lr_decay_every_epochs": 0,
        "lr_decay_factor": 0.1,
        "data_params": DataParameters.default_config(),
    })

  def __init__(self, model, num_classes, num_instances, config, training=True):
    super().__init__(name="data_parameters_training")
    self.model = model
    self.config = config
    self.training = training
    self.data_params = DataParameters.from_config(config.data_params, num_classes, num_instances)
    self.dp_optimizers = self.data_params.make_optimizers(config.data_params)
    self.opt = MomentumSGD(list(model.trainable_variables), config.lr, config.momentum,
                           name="model_sgd")

  def end_epoch(self, epoch):
    cfg = self.config
    every = int(cfg.lr_decay_every_epochs)
    if epoch in tuple(cfg.lr_milestones_epochs) or (every > 0 and epoch % every == 0):
      self.opt.learning_rate.assign(self.opt.learning_rate * cfg.lr_decay_factor)

  def step(self, batch):
    b = batch["train"]
    x, y, index = b["x"], tf.cast(b["y"], tf.int32), b["index"]
    v_vars = list(self.model.trainable_variables)
    dp = self.data_params
    learned = dp.learned_variables
    v = [tf.convert_to_tensor(w) for w in v_vars]
    with tf.GradientTape() as tape:
      tape.watch(v)
      logits = models.forward(self.model, v, x, self.training)
      scaled = dp.scale_logits(logits, y, index)
      ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                         logits=scaled))
      loss = ce + tf.cast(dp.penalty(y, index), ce.dtype)
    grads = tape.gradient(loss, v + learned)
    model_grads = [g + self.config.weight_decay * w for g, w in zip(grads[:len(v)], v)]
    lr = self.opt.apply(model_grads, v_vars)
    dp.apply_gradients(grads[len(v):], self.dp_optimizers)
    sigma = dp.sigma(y, index)
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(scaled, -1, output_type=tf.int32), y),
                                      tf.float32))
    return {"loss": loss, "cross_entropy": ce, "train_accuracy": accuracy,
            "mean_batch_sigma": tf.reduce_mean(sigma), "lr": lr}
