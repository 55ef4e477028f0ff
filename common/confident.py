"""Confident learning (Northcutt, Jiang & Chuang, JAIR 2021) through the ``cleanlab`` package:
the label-error finder practitioners use, fed by any model's out-of-sample probabilities.

The steps (``../shared/reference/peers.md`` §4):
  1. K-fold out-of-sample predicted probabilities of the noisy training set: ``fold_indices``
     cuts stratified folds (as ``cleanlab.count.estimate_cv_predicted_probabilities`` does),
     ``out_of_sample_probabilities`` asks the caller's ``fit_predict`` for each held-out fold,
     so any model trains there (the families train their own Keras model, resumably). The
     caller may add trusted clean points to every fold's training data: cleanlab itself does
     not use a trusted subset, the bilevel methods do, and the comparison is then like for like.
  2. ``label_issues``: ``cleanlab.filter.find_label_issues`` (the confident joint, pruned by
     noise rate) flags likely errors, and ``cleanlab.rank.get_label_quality_scores``
     (self-confidence) scores every point in [0, 1], low = likely mislabelled.
  3. The caller retrains on the points kept (plus the trusted ones).
"""

import numpy as np
from sklearn import model_selection

from common.errors import ConfigError


def fold_indices(labels, folds, seed):
  """[(train rows, held-out rows)] of ``folds`` stratified, shuffled folds of ``labels``."""
  labels = np.asarray(labels)
  if int(folds) < 2:
    raise ConfigError(f"confident learning needs at least 2 folds, got {folds}.")
  if int(folds) > len(labels):
    raise ConfigError(f"{folds} folds of {len(labels)} training points: use at most "
                      f"{len(labels)} folds.")
  counts = np.bincount(labels)
  # StratifiedKFold needs every fold to hold each present class at least once where it can;
  # with fewer members than folds it would only warn and leave folds without that class.
  splitter = (model_selection.StratifiedKFold if counts[counts > 0].min() >= folds
              else model_selection.KFold)(n_splits=int(folds), shuffle=True,
                                          random_state=int(seed))
  return [(np.sort(tr), np.sort(held))
          for tr, held in splitter.split(np.zeros(len(labels)), labels)]


def out_of_sample_probabilities(labels, num_classes, folds, seed, fit_predict):
  """Predicted probabilities [n, num_classes] of every point from a model that never trained
  on it: ``fit_predict(k, train_rows, held_rows)`` trains on fold k's training rows and returns
  the probabilities of its held-out rows."""
  labels = np.asarray(labels)
  probs = np.full((len(labels), int(num_classes)), np.nan)
  for k, (train_rows, held_rows) in enumerate(fold_indices(labels, folds, seed)):
    p = np.asarray(fit_predict(k, train_rows, held_rows), np.float64)
    if p.shape != (len(held_rows), int(num_classes)):
      raise ValueError(f"fold {k}: fit_predict returned shape {p.shape}, expected "
                       f"{(len(held_rows), int(num_classes))}.")
    probs[held_rows] = p
  return probs


def label_issues(labels, pred_probs):
  """(flagged, quality): cleanlab's likely label errors (boolean mask, the confident joint
  pruned by noise rate) and its self-confidence label-quality score of every point (low =
  likely mislabelled; ``1 - quality`` is a corruption score)."""
  from cleanlab import filter as clfilter  # pylint: disable=import-outside-toplevel
  from cleanlab import rank as clrank  # pylint: disable=import-outside-toplevel
  labels = np.asarray(labels, np.int64)
  pred_probs = np.asarray(pred_probs, np.float64)
  # Rows are softmax outputs; renormalise away float32 rounding (cleanlab checks the sums).
  pred_probs = pred_probs / pred_probs.sum(axis=1, keepdims=True)
  flagged = clfilter.find_label_issues(labels, pred_probs, filter_by="prune_by_noise_rate")
  quality = clrank.get_label_quality_scores(labels, pred_probs, method="self_confidence")
  return np.asarray(flagged, bool), np.asarray(quality, np.float64)
