"""The own-data ranking (label_issues.csv's default) against cleanlab on a logistic
regression, and the ranking study's command, on data with planted flips."""

import csv
import json

import numpy as np
import pytest
from sklearn import metrics as skmetrics

from importance_learning import experiment
from importance_learning import ranking_study
from importance_learning.configs import custom
from tests import cli


def _cleanlab_logreg_auc(x, y_noisy, corrupted):
  """Independently of the study's code: cleanlab's label quality on 5-fold probabilities of a
  scaled logistic regression."""
  from cleanlab.rank import get_label_quality_scores  # pylint: disable=import-outside-toplevel
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  from sklearn.model_selection import StratifiedKFold, cross_val_predict  # pylint: disable=import-outside-toplevel
  from sklearn.pipeline import make_pipeline  # pylint: disable=import-outside-toplevel
  from sklearn.preprocessing import StandardScaler  # pylint: disable=import-outside-toplevel
  probs = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                            x.reshape(len(x), -1), y_noisy,
                            cv=StratifiedKFold(5, shuffle=True, random_state=0),
                            method="predict_proba")
  return skmetrics.roc_auc_score(corrupted, -get_label_quality_scores(y_noisy, probs))


@pytest.mark.slow
def test_the_default_ranking_beats_cleanlab_on_a_logistic_regression(tmp_path):
  paths = ranking_study.write_dataset("cancer_csv", tmp_path / "data")
  work = tmp_path / "run"
  proc = cli.ok(cli.run("importance_learning/run.py",
                        "--config=importance_learning/configs/custom.py:0.4",
                        *(f"--config.custom.{k}={v}" for k, v in paths.items()),
                        f"--workdir={work}", timeout=900))
  rows = list(csv.DictReader((work / "label_issues.csv").open()))
  res = json.loads((work / "results.json").read_text())
  # Pretraining draws its batches from the 60 trusted points: both batch sizes follow them.
  assert "NOTE: batch_size lowered from 100 to 60" in proc.stdout
  saved = json.loads((work / "config.json").read_text())
  assert saved["batch_size"] == saved["val_batch_size"] == 60
  assert res["label_issues"]["ranked_by"] == "rank_average(penalty, cl_trusted)"
  assert f"label issues: {work / 'label_issues.csv'}" in proc.stdout
  # Every score is a column; the rows follow the default (the rank average of two of them).
  assert {"penalty", "confident_learning", "confident_learning_trusted"} <= set(rows[0])
  ranks = {}
  for col in ("penalty", "confident_learning_trusted"):
    values = np.array([float(r[col]) for r in rows])
    ranks[col] = np.argsort(np.argsort(values, kind="stable"), kind="stable") / (len(rows) - 1)
  mean = (ranks["penalty"] + ranks["confident_learning_trusted"]) / 2
  np.testing.assert_allclose([float(r["score"]) for r in rows], mean, atol=1e-6)
  assert np.all(np.diff(mean) >= -1e-9)
  # The flags: as many as cleanlab flags with trusted folds, the top of the ranking.
  flagged = [r["flagged"] == "True" for r in rows]
  n = res["baselines"]["confident_learning_trusted"]["detection"]["flagged"]
  assert sum(flagged) == n == res["label_issues"]["flagged"] and flagged == sorted(flagged)[::-1]
  corrupted = np.array([r["corrupted"] == "True" for r in rows])
  ours = skmetrics.roc_auc_score(corrupted, -np.arange(len(rows)))   # rank 1 = most suspicious
  config = custom.get_config("0.4")
  config.custom.update(paths)
  data = experiment.training_data(config)
  theirs = _cleanlab_logreg_auc(data.ds.x_train, data.y_noisy, data.corrupted)
  # Measured: 0.979 against 0.842.
  assert ours >= theirs and ours > 0.95
  precision = corrupted[np.array(flagged)].mean()
  assert precision > 0.8


@pytest.mark.slow
def test_tiny_ranking_study_through_the_command_line(tmp_path):
  proc = cli.ok(cli.run("importance_learning/run.py",
                        "--config=importance_learning/configs/ranking_study.py:tiny",
                        f"--workdir={tmp_path}", timeout=900))
  res = json.loads((tmp_path / "ranking.json").read_text())
  rows = {r["ranking"]: r for r in res["rows"]}
  assert set(rows) == {"penalty", "confident_learning", "confident_learning_trusted",
                       "rank_average(cl, cl_trusted)", "rank_average(penalty, cl_trusted)",
                       "rank_average(penalty, cl, cl_trusted)", "cleanlab_logreg"}
  assert [r["ranking"] for r in res["rows"] if r.get("default")] == \
      ["rank_average(penalty, cl_trusted)"]
  # The study's cleanlab row is cleanlab on a logistic regression, recomputed here.
  config = ranking_study.cell_config(
      __import__("importance_learning.configs.ranking_study", fromlist=["x"]).get_config("tiny"),
      ranking_study.write_dataset("cancer_csv", tmp_path / "again"), 0.3)
  data = experiment.training_data(config)
  assert rows["cleanlab_logreg"]["roc_auc"] == pytest.approx(
      _cleanlab_logreg_auc(data.ds.x_train, data.y_noisy, data.corrupted), abs=1e-9)
  # The penalty row is the cell's importances against its corrupted labels.
  cell = tmp_path / "cells" / "cancer_csv_0.3"
  a, corrupted = np.load(cell / "importances.npy"), np.load(cell / "corrupted.npy")
  assert rows["penalty"]["roc_auc"] == pytest.approx(
      skmetrics.roc_auc_score(corrupted, -a), abs=1e-9)
  assert "| cancer_csv | 0.3 | cleanlab_logreg |" in proc.stdout
  again = cli.ok(cli.run("importance_learning/run.py",
                         "--config=importance_learning/configs/ranking_study.py:tiny",
                         f"--workdir={tmp_path}", timeout=900))
  assert "[bilevel]" not in again.stdout          # cached: nothing trained again
