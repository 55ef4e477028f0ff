"""The detection study: its measurements against direct computations, and the command end to
end (cached variants, a bad variant refused in one line)."""

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from common import metrics as metriclib
from importance_learning import study
from importance_learning.configs import detection_study
from tests import cli

TINY = "--config=importance_learning/configs/detection_study.py:tiny"


def test_best_threshold_is_the_best_f1_over_all_thresholds():
  rng = np.random.default_rng(0)
  corrupted = rng.random(200) < 0.4
  scores = np.where(corrupted, rng.normal(0.3, 0.3, 200), rng.normal(0.7, 0.3, 200))
  f1, t = study.best_threshold(scores, corrupted)
  brute = max((skm.f1_score(corrupted, scores <= s), s) for s in np.unique(scores))
  assert f1 == pytest.approx(brute[0]) and t == brute[1]


def test_measure_reads_a_run_folder(tmp_path):
  rng = np.random.default_rng(1)
  corrupted = rng.random(100) < 0.5
  init = np.where(rng.random(100) < 0.8, np.where(corrupted, 0.4, 0.6), 0.5)
  final = np.clip(init + rng.normal(0, 0.4, 100), 0.0, 1.0)
  np.save(tmp_path / "corrupted.npy", corrupted)
  np.save(tmp_path / "importances_init.npy", init)
  np.save(tmp_path / "importances.npy", final)
  (tmp_path / "results.json").write_text(json.dumps({"bilevel_model_test_accuracy": 0.7}))
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
      {"phase": "pretrain", "kind": "epoch", "step": 1, "test_accuracy": 0.5},
      {"phase": "pretrain", "kind": "epoch", "step": 2, "test_accuracy": 0.6},
      {"phase": "bilevel", "kind": "epoch", "step": 3, "test_accuracy": 0.9})))
  m = study.measure(tmp_path)
  assert m["pretrain_test_accuracy"] == 0.6 and m["bilevel_model_test_accuracy"] == 0.7
  assert m["init"]["roc_auc"] == pytest.approx(skm.roc_auc_score(corrupted, -init))
  assert m["final"]["roc_auc"] == pytest.approx(skm.roc_auc_score(corrupted, -final))
  det = metriclib.detection(final, corrupted, 0.5)
  assert m["final"]["precision"] == pytest.approx(det["precision"])
  assert m["changed_side"] == pytest.approx(np.mean((init > 0.5) != (final > 0.5)))
  assert m["at_clips"] == pytest.approx(np.mean((final < 0.01) | (final > 0.99)))


def test_a_variant_changes_exactly_its_fields():
  config = detection_study.get_config()
  cell = study._cell_config(config, "pretrain_500_lr_u_0_3")
  assert cell.pretrain.epochs == 500 and cell.penalty.lr_u == 0.3
  assert cell.penalty.lr_v == config.penalty.lr_v and cell.epochs == config.epochs
  assert not cell.baseline.enabled and not cell.retrain.enabled and cell.baselines.run == ()
  with config.unlocked():
    config.study.variants["bad"] = {"penalty": {"lr_w": 1.0}}
  with pytest.raises(ValueError, match="'penalty.lr_w', which is not a field"):
    study._cell_config(config, "bad")


@pytest.mark.slow
def test_the_study_command_end_to_end(tmp_path):
  workdir = tmp_path / "s"
  proc = cli.ok(cli.run("importance_learning/run.py", TINY, f"--workdir={workdir}"))
  res = json.loads((workdir / "study.json").read_text())
  assert [r["variant"] for r in res["rows"]] == ["default", "init_uniform"]
  for row in res["rows"]:
    assert row == {"variant": row["variant"], "changes": row["changes"],
                   **json.loads(json.dumps(study.measure(workdir / "cells" / row["variant"])))}
  uniform = np.load(workdir / "cells" / "init_uniform" / "importances_init.npy")
  assert np.all(uniform == 0.5) and res["rows"][1]["init"]["roc_auc"] == 0.5
  assert (workdir / "study.png").stat().st_size > 0 and "final ROC AUC" in proc.stdout
  again = cli.ok(cli.run("importance_learning/run.py", TINY, f"--workdir={workdir}"))
  assert again.stdout.count("cached in") == 2 and "[bilevel]" not in again.stdout
  bad = cli.run("importance_learning/run.py", TINY, f"--workdir={tmp_path / 'bad'}",
                "--config.study.variants={'x': {'epochz': 3}}")
  assert bad.returncode == 1 and "Traceback" not in bad.stderr
  assert "'epochz', which is not a field" in bad.stderr.strip().splitlines()[-1]
  assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("config", ["importance_learning/configs/compare_cifar10.py:tiny",
                                    "importance_learning/configs/detection_study.py:tiny"])
def test_a_sweep_without_its_data_writes_nothing(tmp_path, config):
  workdir = tmp_path / "w"
  proc = cli.run("importance_learning/run.py", f"--config={config}", "--config.source=files",
                 f"--config.data_dir={tmp_path / 'nowhere'}", f"--workdir={workdir}")
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith(
      f"error (DataNotFoundError): data_dir {tmp_path / 'nowhere'} does not exist")
  assert not workdir.exists()
