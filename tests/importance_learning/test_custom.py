"""importance_learning/configs/custom.py through the real command line: your own image folder,
a trusted id list, label_issues.csv and the contact sheet; bad input stops in one line before
anything is written."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from tests import cli

CUSTOM = "--config=importance_learning/configs/custom.py"


def _write_folder(root, per_class, seed):
  """Three classes of 8x8 images, each a noisy primary colour: easy to tell apart."""
  rng = np.random.default_rng(seed)
  for k, name in enumerate(("blue", "green", "red")[::-1]):
    (root / name).mkdir(parents=True)
    for i in range(per_class):
      a = rng.integers(0, 60, (8, 8, 3)).astype(np.uint8)
      a[..., k] += 160
      Image.fromarray(a).save(root / name / f"{i:02d}.png")


@pytest.mark.slow
def test_image_folder_run_writes_ranked_label_issues(tmp_path):
  _write_folder(tmp_path / "train", 40, 0)
  _write_folder(tmp_path / "test", 10, 1)
  trusted = [f"{c}/{i:02d}.png" for c in ("blue", "green", "red") for i in range(8)]
  (tmp_path / "trusted.txt").write_text("\n".join(trusted))
  work = tmp_path / "run"
  proc = cli.ok(cli.run("importance_learning/run.py", f"{CUSTOM}:0.25,tiny",
                        f"--config.custom.train={tmp_path / 'train'}",
                        f"--config.custom.test={tmp_path / 'test'}",
                        f"--config.custom.trusted_ids={tmp_path / 'trusted.txt'}",
                        "--config.batch_size=16", "--config.val_batch_size=8",
                        "--config.baselines.run=()", f"--workdir={work}"))
  assert "custom (folder): train 96 (24 labels corrupted" in proc.stdout
  res = json.loads((work / "results.json").read_text())
  assert res["data"]["actual"] == {"train": 96, "val": 24, "test": 30}
  rows = list(csv.DictReader((work / "label_issues.csv").open()))
  a = np.load(work / "importances.npy")
  corrupted = np.load(work / "corrupted.npy")
  # Every training point once (none of the trusted ones), ranked by ascending importance.
  ids = [r["id"] for r in rows]
  assert len(ids) == 96 and len(set(ids)) == 96 and not set(ids) & set(trusted)
  np.testing.assert_allclose([float(r["score"]) for r in rows], np.sort(a), atol=1e-6)
  assert [int(r["rank"]) for r in rows] == list(range(1, 97))
  assert sum(r["flagged"] == "True" for r in rows) == res["detection"]["flagged"]
  assert sum(r["corrupted"] == "True" for r in rows) == int(corrupted.sum()) == 24
  for r in rows:     # the given label of an uncorrupted point is its folder
    assert (r["given_label"] == r["id"].split("/")[0]) == (r["corrupted"] == "False")
    assert r["true_label"] == r["id"].split("/")[0]
  assert (work / "label_issues.png").stat().st_size > 10_000


@pytest.mark.slow
def test_bad_custom_data_stops_in_one_line_before_writing(tmp_path):
  _write_folder(tmp_path / "train", 4, 0)
  (tmp_path / "train" / "violet").mkdir()
  (tmp_path / "ids.txt").write_text("red/00.png\n")
  work = tmp_path / "run"
  proc = cli.run("importance_learning/run.py", f"{CUSTOM}:tiny",
                 f"--config.custom.train={tmp_path / 'train'}",
                 f"--config.custom.trusted_ids={tmp_path / 'ids.txt'}", f"--workdir={work}")
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and "violet holds no images" in lines[0], proc.stderr
  assert not work.exists()
  # A method that learns from trusted data, without any: refused before reading the data.
  proc = cli.run("importance_learning/run.py", f"{CUSTOM}:tiny",
                 f"--config.custom.train={tmp_path / 'train'}", f"--workdir={work}")
  assert proc.returncode == 1 and "learns from a trusted subset" in proc.stderr
  assert not work.exists()


def _run_on_table(tmp_path, *flags):
  """The own-data command at 30% flips on the ranking study's breast-cancer CSV (400 training
  rows, 60 trusted, the rest test), without baselines. Returns (workdir, process)."""
  from importance_learning import ranking_study  # pylint: disable=import-outside-toplevel
  paths = ranking_study.write_dataset("cancer_csv", tmp_path / "data")
  work = tmp_path / "run"
  proc = cli.ok(cli.run("importance_learning/run.py", f"{CUSTOM}:0.3",
                        *(f"--config.custom.{k}={v}" for k, v in paths.items()),
                        *flags, "--config.baselines.run=()", f"--workdir={work}"))
  return work, proc


@pytest.mark.slow
def test_data_parameters_on_own_data_scores_labels_by_temperature(tmp_path):
  work, proc = _run_on_table(tmp_path, "--config.method=data_parameters", "--config.epochs=60")
  # The 60-point trusted set caps the batches (100 by default): a note, not an error.
  assert "NOTE: batch_size lowered from 100 to" not in proc.stdout   # no pretraining here
  res = json.loads((work / "results.json").read_text())
  trust = np.load(work / "importances.npy")
  corrupted = np.load(work / "corrupted.npy")
  assert corrupted.sum() == 120 == res["num_corrupted"]
  # Each point's score is 1 / sigma; corrupted labels raise their temperature (measured AUC
  # 0.97 at 60 epochs on this table).
  assert (trust > 0).all() and res["detection_threshold"] == 1.0
  assert res["detection"]["flagged"] == int((trust <= 1.0).sum())
  assert res["detection"]["roc_auc"] > 0.9
  assert trust[corrupted].mean() < 1.0 < trust[~corrupted].mean()
  rows = list(csv.DictReader((work / "label_issues.csv").open()))
  assert set(rows[0]) >= {"data_parameters", "score", "flagged"}
  assert res["label_issues"]["ranked_by"] == "data_parameters"
  assert "label issues: " in proc.stdout


@pytest.mark.slow
def test_small_own_data_runs_l2rw_with_the_defaults(tmp_path):
  # 400 training rows and a trusted set of 60: smaller than the default batches of 100.
  work, proc = _run_on_table(tmp_path, "--config.method=l2rw")
  assert "NOTE: val_batch_size lowered from 100 to 60" in proc.stdout
  # 400 // 100 = 4 steps an epoch: 500 epochs reach the 2,000 steps L2RW needs.
  assert "NOTE: epochs raised from 15 to 500" in proc.stdout
  res = json.loads((work / "results.json").read_text())
  saved = json.loads((work / "config.json").read_text())
  assert saved["epochs"] == 500 and saved["val_batch_size"] == 60
  # Measured: the noisy baseline memorises the flips over the 2,000 steps (0.743), L2RW does not
  # (0.936).
  assert res["method_test_accuracy"] > 0.85 > res["baseline_test_accuracy"]
  assert res["detection"]["roc_auc"] > 0.6      # measured 0.688: better than chance
  assert isinstance(res["warnings"], list)
  assert ("WARNING" in proc.stdout) == bool(res["warnings"])


@pytest.mark.slow
def test_without_a_test_set_the_run_says_so_and_records_null(tmp_path):
  from importance_learning import ranking_study  # pylint: disable=import-outside-toplevel
  paths = ranking_study.write_dataset("cancer_csv", tmp_path / "data")
  work = tmp_path / "run"
  proc = cli.ok(cli.run("importance_learning/run.py", f"{CUSTOM}:0.3,tiny",
                        f"--config.custom.train={paths['train']}",
                        f"--config.custom.trusted_ids={paths['trusted_ids']}",
                        "--config.custom.id_column=id", "--config.custom.test_fraction=0",
                        "--config.baselines.run=()", f"--workdir={work}"))
  hint = "(give custom.test, or custom.test_fraction > 0 to hold out part of custom.train)"
  assert f"NOTE: no test set {hint}: no test accuracy is measured" in proc.stdout
  assert f"no test set {hint}: no test accuracy for the " in proc.stdout
  assert "nan" not in proc.stdout.split("Results written to")[-1]
  res = json.loads((work / "results.json").read_text())
  assert res["bilevel_model_test_accuracy"] is None and res["data"]["actual"]["test"] == 0
  assert res["detection"]["roc_auc"] > 0.5      # the ranking is still the output
