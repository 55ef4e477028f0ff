"""Problems and losses that several families share."""

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
