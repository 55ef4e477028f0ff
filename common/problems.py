"""Problems and losses shared by the families and the benchmarks."""

import math

import numpy as np
import tensorflow as tf

from common import defaults
from common import distribute
from common import models
from common.bilevel import BilevelProblem
from common.bilevel.base import BatchSlot, ReweightingProblem, TemperatureProblem


def cross_entropy(logits, labels):
  """Per-example cross-entropy with integer labels: softmax over K logits, or, for a model
  with a single logit (a binary task such as L2RW's 4-vs-9), the sigmoid cross-entropy of that
  logit against labels in {0, 1}."""
  if logits.shape[-1] == 1:
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, logits.dtype),
                                                   logits=logits[:, 0])
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32),
                                                        logits=logits)


class Classification(BilevelProblem):
  """Single-level supervised training: g = mean cross-entropy on ``batch[key]``; no u.

  Used with the ``plain`` method for baselines, pretraining and retraining.
  """

  supports_replication = True

  def __init__(self, model, key="train", training=False):
    super().__init__()
    self.model = model
    self.key = key
    self.training = training
    self.outer_variables = []
    self.inner_variables = list(model.trainable_variables)

  def inner_cost(self, u, v, batch):
    b = batch[self.key]
    return distribute.mean(cross_entropy(models.forward(self.model, v, b["x"], self.training),
                                         b["y"]))


class ExampleReweighting(ReweightingProblem):
  """Per-step example weights for a noisy training batch, judged on a clean batch (L2RW).

  No outer variables: the weights are recomputed from scratch at every step. The inner
  variables are the model's trainable weights.

    example_losses  per-example cross-entropy on ``batch[train_key]`` (training mode)
    clean_cost      mean cross-entropy on ``batch[clean_key]`` (a meta pass: batch statistics,
                    moving averages left alone)
    weight_decay    wd/2 |W|^2 over kernels only (not biases, not batch-norm parameters)
  """

  supports_replication = True

  def __init__(self, model, batch_size, weight_decay=0.0, training=True, train_key="train",
               clean_key="val", num_train=None):
    super().__init__()
    self.model = model
    self.batch_size = int(batch_size)
    self.decay = float(weight_decay)
    self.training = training
    self.train_key, self.clean_key = train_key, clean_key
    self.outer_variables = []
    self.inner_variables = list(model.trainable_variables)
    self._decayed = [getattr(v, "path", v.name).split("/")[-1].startswith("kernel")
                     for v in self.inner_variables]
    # Kept when the problem knows the training-set size (``index`` in the batches): the last
    # weight each training point received, and the sum and number of all it received, each
    # times the batch size (1 = uniform).
    self.weights_all = self.weight_sums = self.weight_counts = None
    if num_train is not None:
      self.weights_all = tf.Variable(tf.ones([num_train]), trainable=False,
                                     name="example_weights_all")
      self.weight_sums = tf.Variable(tf.zeros([num_train]), trainable=False,
                                     name="example_weight_sums")
      self.weight_counts = tf.Variable(tf.zeros([num_train]), trainable=False,
                                       name="example_weight_counts")

  def end_step(self, batch, method):
    if self.weights_all is None:
      return
    # The gathered global index: ``method.weights`` holds the whole batch's weights.
    index, weights = distribute.gather(batch[self.train_key]["index"]), method.weights
    valid = method.weights_valid   # rows that received a weight (None: all of them)
    if valid is not None:
      index, weights = tf.boolean_mask(index, valid), tf.boolean_mask(weights, valid)
    # Scaled so that uniform weights are 1.
    scaled = tf.cast(weights * tf.cast(tf.size(weights), weights.dtype), self.weights_all.dtype)
    self.weights_all.scatter_update(tf.IndexedSlices(scaled, index))
    # Gather-add-update rather than scatter_add: every replica writes the same values (the
    # gathered global batch), and a batch holds each point once.
    for store, add in ((self.weight_sums, scaled), (self.weight_counts, tf.ones_like(scaled))):
      store.scatter_update(tf.IndexedSlices(tf.gather(store, index) + add, index))

  def scores(self):
    """Per-point corruption evidence for reports and detection: the mean of all the weights a
    point received over the run (each times the batch size, so uniform weights give 1); 1
    for a point never seen. A point is flagged when that mean is at most
    ``detection_threshold`` (0.5: half the uniform weight)."""
    counts = self.weight_counts.numpy()
    return np.where(counts > 0, self.weight_sums.numpy() / np.maximum(counts, 1), 1.0)

  def last_weights(self):
    """The last weight each point received (times the batch size)."""
    return self.weights_all.numpy()

  def example_losses(self, v, batch, update_state=True, rows=None):
    """Per-example losses of ``batch[train_key]``, or of its ``rows`` (a slice) alone: a
    separate forward pass, so batch norm uses those rows' statistics."""
    b = batch[self.train_key]
    x, y = (b["x"], b["y"]) if rows is None else (b["x"][rows], b["y"][rows])
    logits = models.forward(self.model, v, x, self.training, update_state=update_state)
    return cross_entropy(logits, y)

  def clean_cost(self, v, batch):
    b = batch[self.clean_key]
    logits = models.forward(self.model, v, b["x"], self.training, update_state=False)
    return distribute.mean(cross_entropy(logits, b["y"]))

  def has_dropout(self):
    return bool(self.training) and models.has_dropout(self.model)

  def advance_random_state(self):
    models.advance_seeds(self.model)

  def weight_decay(self, v):
    terms = [tf.reduce_sum(tf.square(x)) for x, d in zip(v, self._decayed) if d]
    if not terms or self.decay == 0.0:
      return tf.constant(0.0, v[0].dtype)
    return 0.5 * self.decay * tf.add_n(terms)

  def inner_cost(self, u, v, batch):
    return distribute.mean(self.example_losses(v, batch)) + self.weight_decay(v)

  def outer_cost(self, u, v, batch):
    return self.clean_cost(v, batch)


# -- importance learning --------------------------------------------------------------------

def importance_from_logit(z):
  return 0.5 * (tf.tanh(z) + 1.0)


def logit_from_importance(a):
  return np.arctanh(2.0 * np.asarray(a, np.float64) - 1.0)


class ImportanceProblem(BilevelProblem):
  """Importance learning (data denoising), the penalty paper's bilevel problem.

      u = z, one logit per point of the current training mini-batch; a = (tanh z + 1) / 2
      v = the classifier's trainable weights
      g = sum_i a_i CE_i / sum_i a_i      on the (noisy) training mini-batch   (batch["train"])
      f = mean CE                          on a clean validation mini-batch    (batch["val"])

  As in the original, u is ONE batch-sized variable: before a step the importances of the batch's
  points are copied into it, after the step they are written back, so its Adam moments are shared
  by whichever points occupy a slot. ``per_example_state=True`` instead keeps the outer
  optimiser's moments per training point (swapped in and out with the importances); the Adam
  step counter stays global.
  """

  supports_replication = True

  def __init__(self, model, num_train, batch_size, training=False, per_example_state=False):
    super().__init__()
    self.model = model
    self.training = training
    self.per_example_state = per_example_state
    # The importances take the model's float type (float32 unless the model is float64).
    dtype = model.trainable_variables[0].dtype
    self.z = tf.Variable(tf.zeros([batch_size], dtype), name="z")
    self.slot = BatchSlot(self.z, num_train, with_optimizer_state=per_example_state)
    self.z_all = self.slot.rows     # every training point's importance logit
    self.outer_variables = [self.z]
    self.inner_variables = list(model.trainable_variables)

  # -- costs -------------------------------------------------------------------------------

  def inner_cost(self, u, v, batch):
    b = batch["train"]
    a = importance_from_logit(distribute.local_rows(u[0]))    # this replica's rows of z
    ce = cross_entropy(models.forward(self.model, v, b["x"], self.training), b["y"])
    weighted = distribute.sum_across(tf.reduce_sum(a * ce))
    total = distribute.sum_across(tf.reduce_sum(a))
    return weighted / total

  def outer_cost(self, u, v, batch):
    b = batch["val"]
    return distribute.mean(cross_entropy(models.forward(self.model, v, b["x"], self.training),
                                         b["y"]))

  # -- the batch slot ----------------------------------------------------------------------

  def begin_step(self, batch, method):
    self.slot.load(distribute.gather(batch["train"]["index"]), method)  # the global batch

  def end_step(self, batch, method):
    self.slot.store(distribute.gather(batch["train"]["index"]), method)

  # -- the importances ---------------------------------------------------------------------

  # Detection metrics flag a point whose importance is at most this.
  detection_threshold = 0.5

  def importances(self):
    return importance_from_logit(self.z_all).numpy()

  scores = importances

  def set_importances(self, a):
    self.z_all.assign(tf.constant(logit_from_importance(a), self.z_all.dtype))

  def renormalise(self):
    """End of epoch: a <- a / (2 mean a), clipped to [1e-5, 0.99999] (as the original)."""
    a = self.importances().astype(np.float64)
    a = np.clip(0.5 * a / a.mean(), 1e-5, 0.99999)
    self.set_importances(a)


# -- data parameters (Saxena, Tuzel, DeCoste, NeurIPS 2019) ----------------------------------
#
# Every class y has a parameter c[y] and every training example k a parameter s[k], both in log
# space. Training logits are divided by the sample's temperature sigma (exp(c[y]), exp(s[k]),
# or their *sum* when both are learned), so a hard or mislabelled example can raise its sigma
# and flatten its softmax instead of dragging the model towards its label. Inference never uses
# them: the original validates with the model's unscaled logits. The method that steps them is
# ``bilevel.DataParameterDescent``; ../shared/reference/data_parameters.md is the
# specification (section numbers below refer to it).

# sigma in [1/20, 20], written as the original writes its clamp config: log-space bounds
# (the original's keys say "sigma" but hold log(sigma)).
LOG_SIGMA_MIN, LOG_SIGMA_MAX = defaults.LOG_SIGMA_MIN, defaults.LOG_SIGMA_MAX


class DataParameters(tf.Module):
  """Class and instance parameters in log space, their temperature, penalty and clamp (§2).

  ``class_parameters`` ([num_classes]) and ``inst_parameters`` ([num_instances]) always exist,
  initialised to log(init) as the original's ``np.ones(n) * np.log(init)`` cast to the
  parameter dtype (§2.1); only the learned ones are ``trainable`` (the original's
  ``requires_grad``), are stepped, decayed and clamped. With neither learned the module is
  the baseline: sigma = 1 and logits pass through unchanged.
  """

  default_config = staticmethod(defaults.data_parameters)

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

  @property
  def learned_names(self):
    """``"class"`` / ``"inst"`` for each of ``learned_variables`` (their flags' infix)."""
    return [name for is_learned, name in ((self.learn_class_parameters, "class"),
                                          (self.learn_inst_parameters, "inst")) if is_learned]

  def _tensors(self, u):
    """(class, instance) log-parameters: the variables, or ``u`` (values of the learned ones,
    in ``learned_variables`` order) in place of the learned variables."""
    if u is None:
      return self.class_parameters, self.inst_parameters
    rest = list(u)
    cls = rest.pop(0) if self.learn_class_parameters else self.class_parameters
    inst = rest.pop(0) if self.learn_inst_parameters else self.inst_parameters
    return cls, inst

  def sigma(self, labels, index, u=None):
    """Per-sample temperature [B] (§2.2): exp(c[y]), exp(s[k]), their sum, or 1."""
    cls, inst = self._tensors(u)
    terms = []
    if self.learn_class_parameters:
      terms.append(tf.exp(tf.gather(cls, labels)))
    if self.learn_inst_parameters:
      terms.append(tf.exp(tf.gather(inst, index)))
    if not terms:
      return tf.ones(tf.shape(labels), self.class_parameters.dtype)
    return tf.add_n(terms)

  def scale_logits(self, logits, labels, index, u=None):
    """Training logits divided row-wise by sigma (§2.3); unchanged for the baseline.

    Training only: at inference the original uses the model's unscaled logits.
    """
    if not self.learned_variables:
      return logits
    sigma = tf.cast(self.sigma(labels, index, u), logits.dtype)
    return logits / sigma[:, None]

  @property
  def has_penalty(self):
    """Whether ``penalty`` has a term (a learned tensor with wd > 0); else it is 0."""
    return ((self.learn_inst_parameters and self.wd_inst_param > 0.0)
            or (self.learn_class_parameters and self.wd_class_param > 0.0))

  def penalty(self, labels, index, u=None):
    """1/2 wd sum over batch entries of the log-parameters squared (§2.3).

    Each term only when its tensor is learned and its wd > 0, as in the original; a class
    (or index) met m times in the batch is penalised m times.
    """
    cls, inst = self._tensors(u)
    total = tf.zeros([], self.class_parameters.dtype)
    if self.learn_inst_parameters and self.wd_inst_param > 0.0:
      s = tf.gather(inst, index)
      total += 0.5 * self.wd_inst_param * tf.reduce_sum(tf.square(s))
    if self.learn_class_parameters and self.wd_class_param > 0.0:
      c = tf.gather(cls, labels)
      total += 0.5 * self.wd_class_param * tf.reduce_sum(tf.square(c))
    return total

  def clamped(self, u):
    """``u`` (values of the learned tensors) clipped to their log-sigma bounds (§2.4): every
    entry, whole tensor; ``u`` itself when ``skip_clamp_data_param`` is set. Entries
    initialised below the floor are lifted by the first clamp (§4.2)."""
    if self.skip_clamp_data_param:
      return u
    bounds = {"class": self.clamp_cls_sigma, "inst": self.clamp_inst_sigma}
    return [tf.clip_by_value(x, *bounds[name]) for x, name in zip(u, self.learned_names)]

  def clamp(self):
    """``clamped`` applied to the learned variables themselves."""
    for var, value in zip(self.learned_variables,
                          self.clamped([tf.convert_to_tensor(v) for v in
                                        self.learned_variables])):
      var.assign(value)


class TemperatureScaledClassification(TemperatureProblem):
  """Classification with learned temperatures: the data-parameters paper's loss (§2.3)

    g(u, v) = mean_i CE(z_i / sigma_i, y_i) + 1/2 wd_inst sum_i s[k_i]^2
                                            + 1/2 wd_class sum_i c[y_i]^2

  on ``batch[key]`` (``x``, ``y`` and ``index``, each row's training-set index); the penalty
  sums over the mini-batch entries (a class or index met twice counts twice). u are the
  learned log-temperature tensors (``data_params.learned_variables``: class, then instance;
  none for the baseline), v the model's trainable weights; the clamp is ``project_outer``.

  Replicated (``common.distribute``), every replica holds the whole temperature tensors and
  reads the rows of its block of the batch (its rows' labels and ``index``); the mean and the
  penalty are global (``distribute.mean``, ``sum_across``). The gradient of a gathered tensor
  is ``tf.IndexedSlices`` of this replica's rows, and the all-reduce of ``distribute.gradients``
  concatenates them: every replica steps the same rows by the same global gradient. Exact as on
  one device when the model has no batch normalisation or dropout (the curriculum family
  refuses those replicated).
  """

  supports_replication = True

  def __init__(self, model, data_params, training=True, key="train"):
    super().__init__()
    self.model = model
    self.data_params = data_params
    self.training = training
    self.key = key
    self.outer_variables = list(data_params.learned_variables)
    self.outer_names = tuple(data_params.learned_names)
    self.inner_variables = list(model.trainable_variables)

  def inner_cost_and_metrics(self, u, v, batch):
    b = batch[self.key]
    x, y, index = b["x"], tf.cast(b["y"], tf.int32), b["index"]
    dp = self.data_params
    logits = models.forward(self.model, v, x, self.training)
    scaled = dp.scale_logits(logits, y, index, u)
    ce = distribute.mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                        logits=scaled))
    penalty = dp.penalty(y, index, u)
    if dp.has_penalty:       # a sum over the global batch's entries
      penalty = distribute.sum_across(penalty)
    loss = ce + tf.cast(penalty, ce.dtype)
    hits = tf.equal(tf.argmax(scaled, -1, output_type=tf.int32), y)
    return loss, {"cross_entropy": ce,
                  "train_accuracy": distribute.mean(tf.cast(hits, tf.float32))}

  def inner_cost(self, u, v, batch):
    return self.inner_cost_and_metrics(u, v, batch)[0]

  def project_outer(self, u):
    return self.data_params.clamped(u)

  def state_metrics(self, u, batch):
    b = batch[self.key]
    sigma = self.data_params.sigma(tf.cast(b["y"], tf.int32), b["index"], u)
    return {"mean_batch_sigma": distribute.mean(sigma)}
