"""Evaluation metrics: accuracy of a classifier, and how well weights find corrupted points."""

import math

import numpy as np
import tensorflow as tf
from sklearn import metrics as skm


def predict(model, x, batch_size=1000, eager_calls=False):
  """Predicted classes of ``model`` (inference mode) on numpy ``x``.

  ``predict_on_batch`` reuses the model's one compiled predict function and, unlike
  ``model.predict``, builds no tf.data pipeline per call; ``eager_calls`` calls the model
  eagerly instead (for a few evaluations of many models and input sizes, where tracing a
  predict function for each would cost more). A single-logit model is a binary classifier:
  class 1 where the logit is positive.
  """
  def classes(logits):
    if logits.shape[-1] == 1:
      return (logits[:, 0] > 0).astype(np.int64)
    return np.argmax(logits, axis=-1)

  call = _eager_logits if eager_calls else _logits
  preds = [classes(call(model, x[i:i + batch_size]))
           for i in range(0, len(x), batch_size)]
  return np.concatenate(preds) if preds else np.zeros((0,), np.int64)


def probabilities(model, x, batch_size=1000):
  """Predicted class probabilities [N, K] of ``model`` (inference mode) on numpy ``x``: the
  softmax of its logits, or (single-logit binary model) [1 - sigmoid, sigmoid]."""
  out = []
  for i in range(0, len(x), batch_size):
    logits = np.asarray(_logits(model, x[i:i + batch_size]), np.float64)
    if logits.shape[-1] == 1:
      p1 = 1.0 / (1.0 + np.exp(-logits[:, 0]))
      out.append(np.stack([1.0 - p1, p1], axis=-1))
    else:
      z = np.exp(logits - logits.max(axis=-1, keepdims=True))
      out.append(z / z.sum(axis=-1, keepdims=True))
  return np.concatenate(out) if out else np.zeros((0, 0))


def _logits(model, x):
  """Inference-mode logits as numpy. A model built under a tf.distribute strategy (mirrored
  weights) is called directly: Keras' predict_on_batch would split the batch over replicas."""
  weights = model.weights
  if weights and isinstance(getattr(weights[0], "value", None), tf.distribute.DistributedValues):
    return np.asarray(model(x, training=False))
  return model.predict_on_batch(x)


def _eager_logits(model, x):
  return np.asarray(model(tf.constant(x), training=False))


def accuracy(model, x, y, batch_size=1000, legacy_divisor_batch=None, eager_calls=False):
  """Fraction of ``x`` classified as ``y`` (NaN for an empty set).

  ``legacy_divisor_batch=B`` reproduces the original ``eval_simple``, which divides the number
  of correct predictions by ceil(N / B) * B (too low when N is not a multiple of B).
  """
  if len(y) == 0:
    return float("nan")
  correct = int(np.sum(predict(model, x, batch_size, eager_calls) == np.asarray(y)))
  divisor = len(y)
  if legacy_divisor_batch:
    divisor = math.ceil(len(y) / legacy_divisor_batch) * legacy_divisor_batch
  return correct / max(divisor, 1)


def detection(weights, corrupted, threshold=0.5, flagged=None):
  """How well low weights single out corrupted points: the one set of detection metrics every
  method's corruption score is judged by.

  A point is *flagged* as corrupted when its weight is at most ``threshold`` (or where the
  boolean mask ``flagged`` says, for a method that flags by its own rule, such as confident
  learning). Returns the precision, recall and F1 of the flags, the ROC AUC and average
  precision of ``-weight`` as a corruption score, and the counts.
  """
  weights = np.asarray(weights, np.float64)
  corrupted = np.asarray(corrupted, bool)
  flagged = weights <= threshold if flagged is None else np.asarray(flagged, bool)
  tp = int(np.sum(flagged & corrupted))
  precision = tp / flagged.sum() if flagged.any() else float("nan")
  recall = tp / corrupted.sum() if corrupted.any() else float("nan")
  out = {
      "flagged": int(flagged.sum()),
      "corrupted": int(corrupted.sum()),
      "precision": precision,
      "recall": recall,
      "roc_auc": float("nan"),
      "f1": 2 * precision * recall / (precision + recall) if precision + recall > 0
            else float("nan"),
      "average_precision": float("nan"),
  }
  if 0 < corrupted.sum() < len(corrupted):
    out["roc_auc"] = float(skm.roc_auc_score(corrupted, -weights))
    out["average_precision"] = float(skm.average_precision_score(corrupted, -weights))
  return out


def roc_auc(positive, scores):
  """ROC AUC of ``scores`` (higher = more likely positive) for the boolean mask ``positive``;
  NaN when one of the two classes is empty."""
  positive = np.asarray(positive, bool)
  if not 0 < positive.sum() < len(positive):
    return float("nan")
  return float(skm.roc_auc_score(positive, np.asarray(scores, np.float64)))


def topk_accuracies(model, batches, ks=(1, 5)):
  """{k: fraction of examples whose label is among the k highest logits} over ``batches``, an
  iterable of (x, y) (e.g. a tf.data dataset), the model in inference mode. Ties at the k-th
  logit count as hits, as with ``tf.math.in_top_k``."""
  hits = {k: 0 for k in ks}
  total = 0
  for x, y in batches:
    logits = tf.convert_to_tensor(model.predict_on_batch(x))
    y = tf.cast(y, tf.int32)
    for k in ks:
      hits[k] += int(tf.reduce_sum(tf.cast(tf.math.in_top_k(y, logits, min(k, logits.shape[-1])),
                                           tf.int32)))
    total += int(tf.shape(y)[0])
  return {k: hits[k] / max(total, 1) for k in ks}


class TestSet:
  """A held-out set a model is evaluated on: numpy arrays (``x``, ``y``, evaluated in chunks of
  ``batch_size``; ``legacy_divisor_batch`` as in :func:`accuracy`), or an iterable of (x, y)
  batches such as a tf.data dataset. ``evaluate(model)`` -> {k: top-k accuracy} for k in
  ``ks`` (1 first); ``eager_calls`` as in :func:`predict`."""

  __test__ = False      # not a pytest class

  def __init__(self, x=None, y=None, batch_size=1000, legacy_divisor_batch=None, batches=None,
               ks=(1,), eager_calls=False):
    if (batches is None) == (x is None):
      raise ValueError("TestSet takes arrays (x, y) or batches, not both.")
    self.x, self.y, self.batch_size, self.eager_calls = x, y, batch_size, eager_calls
    self.legacy_divisor_batch, self.batches = legacy_divisor_batch, batches
    self.ks = tuple(ks)

  def evaluate(self, model):
    if self.batches is not None:
      return topk_accuracies(model, self.batches, self.ks)
    if self.ks != (1,):
      return topk_accuracies(model, ((self.x[i:i + self.batch_size], self.y[i:i + self.batch_size])
                                     for i in range(0, len(self.y), self.batch_size)), self.ks)
    return {1: accuracy(model, self.x, self.y, self.batch_size, self.legacy_divisor_batch,
                        self.eager_calls)}

  def accuracy(self, model):
    return self.evaluate(model)[1]
