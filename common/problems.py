"""Problems and losses that several families share."""

import tensorflow as tf

from common import models
from common.bilevel import BilevelProblem


def cross_entropy(logits, labels):
  """Per-example softmax cross-entropy with integer labels."""
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32),
                                                        logits=logits)


class Classification(BilevelProblem):
  """Single-level supervised training: g = mean cross-entropy on ``batch[key]``; no u.

  Used with the ``plain`` method for baselines, pretraining and retraining.
  """

  def __init__(self, model, key="train", training=False):
    super().__init__()
    self.model = model
    self.key = key
    self.training = training
    self.outer_variables = []
    self.inner_variables = list(model.trainable_variables)

  def inner_cost(self, u, v, batch):
    b = batch[self.key]
    return tf.reduce_mean(cross_entropy(models.forward(self.model, v, b["x"], self.training),
                                        b["y"]))
