"""common.metrics.detection and roc_auc on fixed inputs: by hand and against scikit-learn."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from common import metrics

# Ties in the weights (three points at 0.5, exactly the threshold), a mix of clean and
# corrupted points; low weight = suspicious.
WEIGHTS = np.array([0.1, 0.5, 0.5, 0.2, 0.9, 0.5, 0.7, 0.0])
CORRUPTED = np.array([True, True, False, False, True, False, False, True])


def test_flags_precision_recall_f1_by_hand_with_a_point_at_the_threshold():
  out = metrics.detection(WEIGHTS, CORRUPTED, threshold=0.5)
  # weight <= 0.5 flags points 0, 1, 2, 3, 5, 7 (1, 2 and 5 sit exactly at the threshold);
  # corrupted among them: 0, 1, 7.
  assert out["flagged"] == 6 and out["corrupted"] == 4
  assert out["precision"] == pytest.approx(3 / 6)
  assert out["recall"] == pytest.approx(3 / 4)
  assert out["f1"] == pytest.approx(2 * 0.5 * 0.75 / 1.25)        # 0.6
  # Just below the tie the three points at 0.5 are not flagged.
  below = metrics.detection(WEIGHTS, CORRUPTED, threshold=0.5 - 1e-12)
  assert below["flagged"] == 3
  assert below["precision"] == pytest.approx(2 / 3) and below["recall"] == pytest.approx(2 / 4)


def test_roc_auc_and_average_precision_by_hand_and_against_sklearn():
  out = metrics.detection(WEIGHTS, CORRUPTED, threshold=0.5)
  # AUC = P(corrupted weight < clean weight) + 1/2 P(tie) over the 4 x 4 pairs:
  # 0.1 -> 4, 0.5 -> 1 + 2 ties, 0.9 -> 0, 0.0 -> 4: (4 + 2 + 0 + 4) / 16.
  assert out["roc_auc"] == pytest.approx(10 / 16)
  assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(CORRUPTED, -WEIGHTS))
  # AP = sum over thresholds (ascending weight) of (recall gain) * precision:
  # 0.0 -> 1/4 * 1, 0.1 -> 1/4 * 1, 0.5 (tie of 3) -> 1/4 * 3/6, 0.9 -> 1/4 * 4/8.
  assert out["average_precision"] == pytest.approx(0.75)
  assert out["average_precision"] == pytest.approx(
      skm.average_precision_score(CORRUPTED, -WEIGHTS))
  # The ROC AUC helper: higher score = more likely positive.
  assert metrics.roc_auc(CORRUPTED, -WEIGHTS) == pytest.approx(10 / 16)
  assert metrics.roc_auc(CORRUPTED, WEIGHTS) == pytest.approx(6 / 16)
  assert metrics.roc_auc(~CORRUPTED, WEIGHTS) == pytest.approx(10 / 16)


def test_perfect_and_reversed_scores():
  weights = np.array([0.0, 0.1, 0.2, 0.8, 0.9, 1.0])
  corrupted = np.array([True, True, True, False, False, False])
  good = metrics.detection(weights, corrupted, threshold=0.2)
  assert (good["precision"], good["recall"], good["f1"]) == (1.0, 1.0, 1.0)
  assert good["roc_auc"] == 1.0 and good["average_precision"] == pytest.approx(1.0)
  bad = metrics.detection(weights, ~corrupted, threshold=0.2)
  assert (bad["precision"], bad["recall"]) == (0.0, 0.0) and math.isnan(bad["f1"])
  assert bad["roc_auc"] == 0.0
  assert bad["average_precision"] == pytest.approx(
      skm.average_precision_score(~corrupted, -weights))


def test_all_flagged_and_none_flagged():
  every = metrics.detection(WEIGHTS, CORRUPTED, threshold=0.9)      # 0.9 itself flagged
  assert every["flagged"] == 8
  assert every["precision"] == pytest.approx(4 / 8) and every["recall"] == 1.0
  assert every["f1"] == pytest.approx(2 * 0.5 / 1.5)
  none = metrics.detection(WEIGHTS, CORRUPTED, threshold=-0.1)
  assert none["flagged"] == 0
  assert math.isnan(none["precision"]) and none["recall"] == 0.0 and math.isnan(none["f1"])
  # The ranking metrics do not depend on the threshold.
  for out in (every, none):
    assert out["roc_auc"] == pytest.approx(10 / 16)
    assert out["average_precision"] == pytest.approx(0.75)


def test_no_corrupted_points_and_all_corrupted():
  clean = metrics.detection(WEIGHTS, np.zeros(8, bool), threshold=0.5)
  assert clean["corrupted"] == 0 and clean["flagged"] == 6
  assert clean["precision"] == 0.0 and math.isnan(clean["recall"]) and math.isnan(clean["f1"])
  assert math.isnan(clean["roc_auc"]) and math.isnan(clean["average_precision"])
  dirty = metrics.detection(WEIGHTS, np.ones(8, bool), threshold=0.5)
  assert dirty["corrupted"] == 8 and dirty["flagged"] == 6
  assert dirty["precision"] == 1.0 and dirty["recall"] == pytest.approx(6 / 8)
  assert dirty["f1"] == pytest.approx(2 * 0.75 / 1.75)
  assert math.isnan(dirty["roc_auc"]) and math.isnan(dirty["average_precision"])
  assert math.isnan(metrics.roc_auc(np.zeros(8, bool), WEIGHTS))
  assert math.isnan(metrics.roc_auc(np.ones(8, bool), WEIGHTS))


def test_own_flags_replace_the_threshold_but_not_the_ranking():
  flagged = np.array([False, True, False, False, True, False, True, False])
  out = metrics.detection(WEIGHTS, CORRUPTED, threshold=0.5, flagged=flagged)
  # Flags 1, 4, 6; corrupted among them 1 and 4.
  assert out["flagged"] == 3
  assert out["precision"] == pytest.approx(2 / 3) and out["recall"] == pytest.approx(2 / 4)
  assert out["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
  assert out["roc_auc"] == pytest.approx(10 / 16)
  assert out["average_precision"] == pytest.approx(0.75)
