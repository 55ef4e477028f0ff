"""Importance learning (data denoising), the penalty paper's bilevel problem.

    u = z, one logit per point of the current training mini-batch; importance a = (tanh z + 1)/2
    v = the classifier's trainable weights
    g = sum_i a_i CE_i / sum_i a_i      on the (noisy) training mini-batch   (batch["train"])
    f = mean CE                          on a clean validation mini-batch    (batch["val"])

As in the original, u is ONE batch-sized variable: before a step the importances of the batch's
points are copied into it, after the step they are written back, so its Adam moments are shared
by whichever points occupy a slot. ``per_example_state=True`` instead keeps the outer
optimiser's moments per training point (swapped in and out with the importances); the Adam
step counter stays global.
"""

import numpy as np
import tensorflow as tf

from common import distribute
from common import models
from common.bilevel import BilevelProblem
from common.problems import cross_entropy


def importance_from_logit(z):
  return 0.5 * (tf.tanh(z) + 1.0)


def logit_from_importance(a):
  return np.arctanh(2.0 * np.asarray(a, np.float64) - 1.0)


class ImportanceProblem(BilevelProblem):

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
