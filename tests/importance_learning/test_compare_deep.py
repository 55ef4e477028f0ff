"""The deep-network comparison (importance_learning/approaches.py): its data, its scores and
``compare_deep_mnist.py:tiny`` through the real command line."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from importance_learning import approaches
from importance_learning.configs import compare_deep_cifar10
from importance_learning.configs import compare_deep_mnist
from tests import cli
from tests.importance_learning.test_run import CIFAR, _write_t10k
from tests.importance_learning.test_run import cifar_subset  # noqa: F401 (a fixture)


def _pool(per_class=40, k=10, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.permutation(np.repeat(np.arange(k), per_class))
  x = np.arange(len(y), dtype=np.float32).reshape(-1, 1, 1, 1)      # pixel = pool row
  names = tuple(str(i) for i in range(k))
  return x[:-50], y[:-50], x[-50:], y[-50:], names, "synthetic"


def _t10k_dir(tmp_path):
  """A folder holding a small t10k IDX pair (the MNIST source of the tiny configs)."""
  data_dir = tmp_path / "mnist"
  data_dir.mkdir()
  _write_t10k(data_dir)
  return data_dir


def _config(**deep):
  c = compare_deep_mnist.get_config()
  c.deep.update(dict(clean_max_per_class=10, **deep))
  return c


def test_deep_data_splits_are_disjoint_balanced_and_nested():
  pool = _pool()
  c = _config()
  big = approaches.deep_data(c, pool, "uniform", 0.7, 10, seed=0)
  small = approaches.deep_data(c, pool, "uniform", 0.7, 3, seed=0)
  assert np.bincount(big.y_clean, minlength=10).tolist() == [10] * 10
  assert np.bincount(small.y_clean, minlength=10).tolist() == [3] * 10
  ids = lambda x: set(x.ravel().astype(int))  # noqa: E731
  assert ids(small.x_clean) <= ids(big.x_clean)          # the small clean split is nested
  assert not ids(big.x_clean) & ids(big.x_noisy)
  assert not ids(big.x_test) & (ids(big.x_noisy) | ids(big.x_clean))
  # Both clean sizes train on the same noisy images; the labels follow the pool.
  assert ids(big.x_noisy) == ids(small.x_noisy) and len(big.y_noisy) == 350 - 100
  pool_y = np.concatenate([pool[1], pool[3]])
  np.testing.assert_array_equal(pool_y[big.x_noisy.ravel().astype(int)], big.y_true)
  # 70% uniform flips, guaranteed: every corrupted label differs from the truth.
  assert big.corrupted.sum() == int(0.7 * len(big.y_true))
  assert (big.y_noisy[big.corrupted] != big.y_true[big.corrupted]).all()
  assert (big.y_noisy[~big.corrupted] == big.y_true[~big.corrupted]).all()
  # Another seed corrupts other images; the same seed the same ones.
  other = approaches.deep_data(c, pool, "uniform", 0.7, 10, seed=1)
  again = approaches.deep_data(c, pool, "uniform", 0.7, 10, seed=0)
  flipped = lambda d: ids(d.x_noisy[d.corrupted])  # noqa: E731
  assert flipped(other) != flipped(big) and flipped(again) == flipped(big)


def test_background_flips_send_every_corrupted_label_to_one_other_class():
  c = compare_deep_cifar10.get_config()
  c.deep.clean_max_per_class = 10
  d = approaches.deep_data(c, _pool(), "background", 0.4, 10, seed=3)
  # The CIFAR config keeps the source's test set: the pool's 50 test images, untouched.
  assert len(d.y_test) == 50 and len(d.y_noisy) == 350 - 100
  assert d.corrupted.sum() == int(0.4 * len(d.y_true))
  background = set(d.y_noisy[d.corrupted].tolist())
  assert len(background) == 1
  assert (d.y_true[d.corrupted] != background.pop()).all()
  assert (d.y_noisy[~d.corrupted] == d.y_true[~d.corrupted]).all()


def test_early_stopping_scores_the_best_clean_epoch_and_last_scores_the_end():
  # The clean split peaks at epoch 3 (the first of two ties), the test set at epoch 2.
  rec = {"test_curve": [0.5, 0.8, 0.7, 0.6, 0.65], "clean_curve": [0.4, 0.9, 0.95, 0.5, 0.95],
         "test_accuracy": 0.65}
  assert approaches.early_stopped(rec) == {"test_accuracy": 0.7, "epoch": 3,
                                           "clean_accuracy": 0.95}
  assert approaches.last_epoch(rec) == {"test_accuracy": 0.65, "epoch": 5}


def test_instance_temperatures_rank_the_hottest_examples_as_corrupted():
  from common import metrics as metriclib
  from common import problems
  dp = problems.DataParameters(3, 5, learn_inst_parameters=True)
  dp.inst_parameters.assign(np.log([1.0, 4.0, 0.5, 2.5, 1.2]).astype(np.float32))
  trust = approaches.instance_trust(dp)
  np.testing.assert_allclose(trust, -np.array([1.0, 4.0, 0.5, 2.5, 1.2]), rtol=1e-6)
  corrupted = np.array([False, True, False, True, False])
  assert metriclib.detection(trust, corrupted, np.median(trust))["roc_auc"] == 1.0


def test_bad_comparisons_are_one_line_config_errors():
  c = compare_deep_mnist.get_config()
  c.compare.approaches = ("finetune", "l2rw")
  with pytest.raises(approaches.ConfigError, match="starts from the noisy cell"):
    approaches.validate(c)
  c = compare_deep_mnist.get_config()
  c.compare.headline = "uniform,0.5,10"
  with pytest.raises(approaches.ConfigError, match="is not one of the settings"):
    approaches.validate(c)
  c = compare_deep_mnist.get_config()
  c.compare.approaches = ("noisy_last", "cleanlab")
  with pytest.raises(approaches.ConfigError, match=r"names \['cleanlab'\]"):
    approaches.validate(c)
  c = compare_deep_mnist.get_config()
  c.penalty_run.batch_size = 200
  with pytest.raises(approaches.ConfigError, match="smallest clean split"):
    approaches.check_sizes(c, 10)


@pytest.mark.slow
def test_tiny_deep_comparison_through_the_command_line(tmp_path):
  data_dir = _t10k_dir(tmp_path)
  work = tmp_path / "work"
  args = ("--config=importance_learning/configs/compare_deep_mnist.py:tiny",
          f"--config.data_dir={data_dir}", f"--workdir={work}",
          # Fine-tuning at rate 0 keeps the noisy model: its accuracy must be the noisy one's.
          "--config.deep.finetune_lr=0.0")
  proc = cli.ok(cli.run("importance_learning/run.py", *args, timeout=900))
  res = json.loads((work / "comparison.json").read_text())
  rows = {(r["setting"], r["approach"]): r for r in res["rows"]}
  assert {s for s, _ in rows} == {"uniform0.7_clean10", "uniform0.7_clean5"}
  assert len(rows) == 2 * len(compare_deep_mnist.APPROACHES)
  # The headline setting has two seeds, the other one.
  assert rows[("uniform0.7_clean10", "l2rw")]["seeds"] == 2
  assert rows[("uniform0.7_clean5", "l2rw")]["seeds"] == 1
  for seed in (0, 1):
    cell = work / "cells" / "uniform0.7_clean10"
    noisy = json.loads((cell / "noisy" / f"seed{seed}" / "record.json").read_text())
    assert len(noisy["test_curve"]) == 2 and len(noisy["clean_curve"]) == 2
    best = int(np.argmax(noisy["clean_curve"]))
    es = rows[("uniform0.7_clean10", "noisy_early_stopped")]
    assert es["epochs"][seed] == best + 1
    assert es["test_accuracy"]["values"][seed] == noisy["test_curve"][best]
    assert rows[("uniform0.7_clean10", "noisy_last")]["test_accuracy"]["values"][seed] == \
        noisy["test_accuracy"] == noisy["test_curve"][-1]
    fine = json.loads((cell / "finetune" / f"seed{seed}" / "record.json").read_text())
    assert fine["start_weights"].endswith(f"noisy/seed{seed}/final_weights.npz")
    assert fine["test_accuracy"] == pytest.approx(noisy["test_accuracy"])
    cl = json.loads((cell / "confident_learning" / f"seed{seed}" / "record.json").read_text())
    assert 0 < cl["kept"] <= 512 and cl["detection"]["corrupted"] == int(0.7 * 512)
  for name in ("confident_learning", "l2rw", "proximal", "dp_instance", "penalty"):
    auc = rows[("uniform0.7_clean10", name)]["roc_auc"]
    assert all(0.0 <= v <= 1.0 for v in auc["values"]) and len(auc["values"]) == 2
  for name in ("noisy_last", "clean_only", "oracle", "dp_class"):
    assert "roc_auc" not in rows[("uniform0.7_clean10", name)]
  # Accuracy on the 500 test images is a multiple of 1/500, and every row has a wall time.
  for r in rows.values():
    assert all(abs(v * 500 - round(v * 500)) < 1e-6 for v in r["test_accuracy"]["values"])
    assert r["seconds"] > 0
  md = (work / "comparison.md").read_text()
  assert "## uniform0.7_clean10" in md and "noisy labels, early-stopped on the clean split" in md
  assert (work / "curves_uniform0.7_clean10.png").stat().st_size > 20_000
  assert "test accuracy" in proc.stdout
  # A second invocation trains nothing; a second seed of one approach everywhere trains only
  # its new cell.
  again = cli.ok(cli.run("importance_learning/run.py", *args, timeout=900))
  assert "(cached)" in again.stdout and "epoch 1/" not in again.stdout
  wider = cli.ok(cli.run("importance_learning/run.py", *args, "--config.compare.seeds=2",
                         "--config.compare.approaches=('noisy_last',)", timeout=900))
  trained = [line for line in wider.stdout.splitlines()
             if line.startswith("[compare]") and "test accuracy" in line
             and "(cached)" not in line]
  assert len(trained) == 1 and "uniform0.7_clean5 noisy seed 1" in trained[0]
  table = json.loads((work / "comparison.json").read_text())["rows"]
  assert [(r["setting"], r["approach"], r["seeds"]) for r in table] == [
      ("uniform0.7_clean10", "noisy_last", 2), ("uniform0.7_clean5", "noisy_last", 2)]


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR.is_dir(), reason="needs ../shared/data/cifar10 (CIFAR-10 subset)")
def test_tiny_cifar10_comparison_through_the_command_line(tmp_path, cifar_subset):  # noqa: F811
  work = tmp_path / "work"
  cli.ok(cli.run("importance_learning/run.py",
                 "--config=importance_learning/configs/compare_deep_cifar10.py:tiny",
                 f"--config.data_dir={cifar_subset}", f"--workdir={work}", timeout=900))
  res = json.loads((work / "comparison.json").read_text())
  rows = {(r["setting"], r["approach"]): r for r in res["rows"]}
  assert {s for s, _ in rows} == {"uniform0.4_clean10", "background0.4_clean10"}
  assert len(rows) == 2 * len(compare_deep_cifar10.APPROACHES)
  assert rows[("uniform0.4_clean10", "oracle")]["seeds"] == 2
  assert rows[("background0.4_clean10", "oracle")]["seeds"] == 1
  for setting in ("uniform0.4_clean10", "background0.4_clean10"):
    cl = json.loads((work / "cells" / setting / "confident_learning" / "seed0" /
                     "record.json").read_text())
    assert cl["detection"]["corrupted"] == int(0.4 * 512)
    # The test set is the source's own: 50 images of each class, so accuracy is k / 500.
    for r in (rows[(setting, a)] for a in compare_deep_cifar10.APPROACHES):
      assert all(abs(v * 500 - round(v * 500)) < 1e-6 for v in r["test_accuracy"]["values"])
  assert "compact_cnn" in (work / "comparison.md").read_text()
  assert (work / "curves_background0.4_clean10.png").stat().st_size > 20_000


@pytest.mark.slow
def test_a_confident_learning_cell_resumed_inside_a_fold_equals_an_uninterrupted_one(tmp_path):
  # Tiny cell: 3 folds of 2 steps each, then 8 retraining steps. A first invocation limited to
  # 3 steps stops inside fold 1; the second must start fold 2 and the retraining from the
  # cell's initial weights, as the uninterrupted run does, not from the restored fold-1 state.
  data_dir = _t10k_dir(tmp_path)
  args = ("--config=importance_learning/configs/compare_deep_mnist.py:tiny",
          f"--config.data_dir={data_dir}", "--config.compare.approaches=('confident_learning',)",
          "--config.compare.clean_per_class=(10,)", "--config.compare.headline_seeds=1")
  whole, sliced = tmp_path / "whole", tmp_path / "sliced"
  cli.ok(cli.run("importance_learning/run.py", *args, f"--workdir={whole}", timeout=900))
  first = cli.ok(cli.run("importance_learning/run.py", *args, f"--workdir={sliced}",
                         "--config.runner.max_steps_per_invocation=3", timeout=900))
  assert "[fold1] stopped after 3 steps" in first.stdout
  second = cli.ok(cli.run("importance_learning/run.py", *args, f"--workdir={sliced}",
                          timeout=900))
  assert "'fold0': 2, 'fold1': 1, 'fold2': 0" in second.stdout
  cell = pathlib.Path("cells") / "uniform0.7_clean10" / "confident_learning" / "seed0"
  a, b = (json.loads((w / cell / "record.json").read_text()) for w in (whole, sliced))
  a.pop("seconds"), b.pop("seconds")
  assert a == b
  for k in range(3):
    with np.load(whole / cell / f"fold{k}.npz") as x, np.load(sliced / cell / f"fold{k}.npz") as y:
      np.testing.assert_array_equal(x["probs"], y["probs"])


@pytest.mark.slow
def test_the_comparison_turns_on_op_determinism_before_its_first_cell(tmp_path):
  # A penalty cell turns op determinism on for the rest of its process; the cells before it
  # must not run without it (measured: data parameters, class level, MNIST 40% noise, seed 0:
  # 0.631 without, 0.648 with). Here no penalty cell runs, in a fresh interpreter.
  data_dir = _t10k_dir(tmp_path)
  code = "\n".join([
      "from tensorflow.python.framework import config as tf_config",  # is_op_determinism_enabled
      "from importance_learning import approaches",
      "from importance_learning.configs import compare_deep_mnist",
      "c = compare_deep_mnist.get_config('tiny')",
      f"c.data_dir = {str(data_dir)!r}",
      "c.compare.approaches = ('noisy_last',)",
      "c.compare.clean_per_class = (10,)",
      "c.compare.headline_seeds = 1",
      "before = tf_config.is_op_determinism_enabled()",
      f"approaches.run(c, {str(tmp_path / 'work')!r}, log=lambda m: None)",
      "print('determinism', before, tf_config.is_op_determinism_enabled())"])
  proc = subprocess.run([sys.executable, "-c", code], cwd=cli.ROOT, env=cli.run_env(),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "determinism False True" in proc.stdout
