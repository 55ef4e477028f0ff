"""Confident learning: folds, out-of-sample probabilities and cleanlab's label issues, on a
problem with planted label errors."""

import numpy as np
import pytest
from sklearn import linear_model

from common import confident
from common.errors import ConfigError


def _blobs(n=600, k=3, flips=60, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, k, n)
  centres = 4.0 * rng.normal(size=(k, 2))
  x = centres[y] + rng.normal(size=(n, 2))
  noisy = y.copy()
  planted = rng.choice(n, flips, replace=False)
  noisy[planted] = (y[planted] + rng.integers(1, k, flips)) % k
  return x, y, noisy, planted


def test_folds_partition_the_points_and_are_stratified():
  labels = np.repeat([0, 1, 2], [50, 30, 20])
  folds = confident.fold_indices(labels, 5, seed=1)
  held = np.concatenate([h for _, h in folds])
  assert sorted(held) == list(range(100))
  for train_rows, held_rows in folds:
    assert not set(train_rows) & set(held_rows)
    assert len(train_rows) + len(held_rows) == 100
    np.testing.assert_array_equal(np.bincount(labels[held_rows]), [10, 6, 4])
  with pytest.raises(ConfigError, match="at least 2 folds"):
    confident.fold_indices(labels, 1, 0)


def test_a_smallest_class_of_exactly_folds_members_is_still_stratified():
  # Class 1 has 5 members and there are 5 folds: each held-out fold gets exactly one of them
  # (plain K-fold would leave some folds without it and give others two).
  labels = np.repeat([0, 1, 2], [20, 5, 10])
  for seed in range(4):
    folds = confident.fold_indices(labels, 5, seed)
    assert sorted(np.concatenate([h for _, h in folds])) == list(range(35))
    for train_rows, held_rows in folds:
      np.testing.assert_array_equal(np.bincount(labels[held_rows], minlength=3), [4, 1, 2])
      np.testing.assert_array_equal(np.bincount(labels[train_rows], minlength=3), [16, 4, 8])


def _held_out(folds):
  return [h.tolist() for _, h in folds]


@pytest.mark.parametrize("counts, k", [((30, 12, 8), 4), ((30, 12, 2), 4)],
                         ids=["stratified", "kfold"])   # kfold: a class smaller than k
def test_the_seed_decides_the_folds(counts, k):
  labels = np.repeat(np.arange(3), counts)
  same = [_held_out(confident.fold_indices(labels, k, seed=7)) for _ in range(2)]
  assert same[0] == same[1]
  others = [_held_out(confident.fold_indices(labels, k, seed=s)) for s in (8, 9)]
  assert all(o != same[0] for o in others) and others[0] != others[1]
  # out_of_sample_probabilities trains on the folds of the seed it is given.
  for seed in (7, 8):
    asked = []

    def fit_predict(fold, train_rows, held_rows):
      asked.append(held_rows.tolist())
      assert not set(train_rows) & set(held_rows)
      return np.full((len(held_rows), 3), 1 / 3)

    confident.out_of_sample_probabilities(labels, 3, k, seed, fit_predict)
    assert asked == _held_out(confident.fold_indices(labels, k, seed)), seed
  assert asked != same[0]     # seed 8's folds, not seed 7's


def test_planted_label_errors_are_found_from_out_of_sample_probabilities():
  x, y, noisy, planted = _blobs()
  seen = []

  def fit_predict(k, train_rows, held_rows):
    seen.append(k)
    clf = linear_model.LogisticRegression().fit(x[train_rows], noisy[train_rows])
    return clf.predict_proba(x[held_rows])

  probs = confident.out_of_sample_probabilities(noisy, 3, 4, 0, fit_predict)
  assert seen == [0, 1, 2, 3] and np.all(np.isfinite(probs))
  flagged, quality = confident.label_issues(noisy, probs)
  truth = noisy != y
  assert truth.sum() == 60
  tp = np.sum(flagged & truth)
  assert tp / truth.sum() > 0.8 and tp / flagged.sum() > 0.8, (tp, flagged.sum())
  # The quality score ranks the planted errors low: their mean is far below the clean points'.
  assert quality[truth].mean() < 0.3 < 0.7 < quality[~truth].mean()


def test_fit_predict_of_the_wrong_shape_is_an_error():
  labels = np.array([0, 1] * 10)
  with pytest.raises(ValueError, match="fold 0: fit_predict returned shape"):
    confident.out_of_sample_probabilities(labels, 2, 2, 0, lambda k, tr, h: np.ones((1, 2)))


def test_detection_metrics_match_scikit_learn_on_fixed_inputs():
  from sklearn import metrics as skm
  from common import metrics
  rng = np.random.default_rng(3)
  corrupted = rng.random(200) < 0.3
  weights = np.where(corrupted, rng.uniform(0, 0.7, 200), rng.uniform(0.3, 1, 200))
  got = metrics.detection(weights, corrupted, threshold=0.45)
  flags = weights <= 0.45
  assert got["flagged"] == flags.sum() and got["corrupted"] == corrupted.sum()
  assert got["precision"] == pytest.approx(skm.precision_score(corrupted, flags), abs=1e-12)
  assert got["recall"] == pytest.approx(skm.recall_score(corrupted, flags), abs=1e-12)
  assert got["f1"] == pytest.approx(skm.f1_score(corrupted, flags), abs=1e-12)
  assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(corrupted, -weights), abs=1e-12)
  assert got["average_precision"] == pytest.approx(
      skm.average_precision_score(corrupted, -weights), abs=1e-12)
  assert 0.5 < got["roc_auc"] < 1 and 0.3 < got["f1"] < 1
  # A method's own flags replace the threshold; the score metrics do not change.
  mask = rng.random(200) < 0.5
  own = metrics.detection(weights, corrupted, flagged=mask)
  assert own["f1"] == pytest.approx(skm.f1_score(corrupted, mask), abs=1e-12)
  assert own["roc_auc"] == got["roc_auc"]
