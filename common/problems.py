"""Problems and losses shared by the families and the benchmarks."""

import numpy as np
import tensorflow as tf

from common import distribute
from common import models
from common.bilevel import BilevelProblem


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


class ExampleReweighting(BilevelProblem):
  """Per-step example weights for a noisy training batch, judged on a clean batch (L2RW).

  No outer variables: the weights are recomputed from scratch at every step. The inner
  variables are the model's trainable weights.

    example_losses  per-example cross-entropy on ``batch[train_key]`` (training mode)
    clean_cost      mean cross-entropy on ``batch[clean_key]`` (a meta pass: batch statistics,
                    moving averages left alone)
    weight_decay    wd/2 |W|^2 over kernels only (not biases, not batch-norm parameters)
  """

  # A point counts as rejected ("flagged" in detection metrics) when its weight is 0.
  detection_threshold = 0.0
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
    # The last weight each training point received, times the batch size (1 = uniform),
    # kept when the problem knows the training-set size (``index`` in the batches).
    self.weights_all = None if num_train is None else tf.Variable(
        tf.ones([num_train]), trainable=False, name="example_weights_all")

  def end_step(self, batch, method):
    if self.weights_all is None:
      return
    # The gathered global index: ``method.weights`` holds the whole batch's weights.
    index, weights = distribute.gather(batch[self.train_key]["index"]), method.weights
    valid = getattr(method, "weights_valid", None)   # rows that received a weight
    if valid is not None:
      index, weights = tf.boolean_mask(index, valid), tf.boolean_mask(weights, valid)
    # Scaled so that uniform weights are 1.
    scaled = tf.cast(weights * tf.cast(tf.size(weights), weights.dtype), self.weights_all.dtype)
    self.weights_all.scatter_update(tf.IndexedSlices(scaled, index))

  def scores(self):
    """Per-point weights (last weight received x batch size), for reports and detection."""
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
    self.z_all = tf.Variable(tf.zeros([num_train], dtype), trainable=False, name="z_all")
    self.z = tf.Variable(tf.zeros([batch_size], dtype), name="z")
    if per_example_state:
      self.moments_all = [tf.Variable(tf.zeros([num_train], dtype), trainable=False, name=n)
                          for n in ("m_all", "v_all")]
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
    index = distribute.gather(batch["train"]["index"])     # the global batch's points
    self.z.assign(tf.gather(self.z_all, index))
    if self.per_example_state:
      for slot, store in zip(method.outer_state_variables(0), self.moments_all):
        slot.assign(tf.gather(store, index))

  def end_step(self, batch, method):
    index = distribute.gather(batch["train"]["index"])
    # scatter_update (not scatter_nd_update): mirrored variables implement it.
    self.z_all.scatter_update(tf.IndexedSlices(tf.convert_to_tensor(self.z), index))
    if self.per_example_state:
      for slot, store in zip(method.outer_state_variables(0), self.moments_all):
        store.scatter_update(tf.IndexedSlices(tf.convert_to_tensor(slot), index))

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
