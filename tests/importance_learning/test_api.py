"""importance_learning.api.learn_importances: the command line's protocol on arrays in memory."""

import csv
import json

import numpy as np
import pytest

from common.data.splits import fixed_permutation
from common.errors import ConfigError
from importance_learning import api
from tests import cli

SHORT = {"epochs": 2, "pretrain.epochs": 3, "retrain.epochs": 1, "baseline.epochs": 1,
         "baselines.run": (), "batch_size": 20, "val_batch_size": 10, "model": "mnist_logreg",
         "penalty.lr_u": 1.0}


def _images(rng, n):
  """uint8 4x4 greyscale images whose mean brightness band is the class (3 classes)."""
  y = rng.integers(0, 3, n)
  x = (rng.integers(0, 60, (n, 4, 4, 1)) + 80 * y[:, None, None, None]).astype(np.uint8)
  return x, y


@pytest.mark.slow
def test_api_equals_the_command_line_on_the_same_data(tmp_path):
  rng = np.random.default_rng(0)
  (x, y), (xt, yt), (xs, ys) = _images(rng, 100), _images(rng, 30), _images(rng, 40)
  np.savez(tmp_path / "train.npz", x=x, y=y)
  np.savez(tmp_path / "trusted.npz", x=xt, y=yt)
  np.savez(tmp_path / "test.npz", x=xs, y=ys)
  flags = [f"--config.{k}={v}" for k, v in SHORT.items()]
  cli.ok(cli.run("importance_learning/run.py", "--config=importance_learning/configs/custom.py:0.3",
                 f"--config.custom.train={tmp_path / 'train.npz'}",
                 f"--config.custom.trusted={tmp_path / 'trusted.npz'}",
                 f"--config.custom.test={tmp_path / 'test.npz'}", *flags,
                 f"--workdir={tmp_path / 'cli'}"))
  # The command line puts the pool in its fixed class-mixed order; give the API that order.
  perm = fixed_permutation(100)
  out = api.learn_importances(x[perm], y[perm], xt, yt, xs, ys, noise=0.3,
                              ids=perm, workdir=tmp_path / "api", log=lambda s: None,
                              overrides={k: v for k, v in SHORT.items() if k != "epochs"},
                              epochs=SHORT["epochs"])
  np.testing.assert_allclose(out.importances, np.load(tmp_path / "cli" / "importances.npy"),
                             atol=1e-6)
  with open(tmp_path / "cli" / "label_issues.csv", newline="") as fh:
    cli_rows = list(csv.DictReader(fh))
  assert [r["id"] for r in out.label_issues] == [r["id"] for r in cli_rows]
  cli_res = json.loads((tmp_path / "cli" / "results.json").read_text())
  assert out.results["method_test_accuracy"] == pytest.approx(cli_res["method_test_accuracy"])
  assert out.results["num_corrupted"] == 30 and out.importances.shape == (100,)
  # Low importance = suspicious: the flagged rows come first and carry the lowest scores.
  scores = [r["score"] for r in out.label_issues]
  assert scores == sorted(scores) and scores[0] == pytest.approx(min(out.importances), abs=1e-6)
  assert [r["rank"] for r in out.label_issues] == list(range(1, 101))
  flagged = [r["flagged"] for r in out.label_issues]
  assert sum(flagged) == out.results["detection"]["flagged"] and flagged == sorted(flagged)[::-1]


def test_api_bad_input_is_a_config_error(tmp_path):
  x = np.zeros((10, 3), np.float32)
  with pytest.raises(ConfigError, match="y must be 10 integer class ids"):
    api.learn_importances(x, np.zeros(9, int), x, np.zeros(10, int), workdir=tmp_path)
  with pytest.raises(ConfigError, match=r"x_trusted has inputs of shape \(4,\)"):
    api.learn_importances(x, np.zeros(10, int), np.zeros((5, 4)), np.zeros(5, int),
                          workdir=tmp_path)
  with pytest.raises(ConfigError, match="no field 'penalty.lr_x'"):
    api.learn_importances(x, np.arange(10) % 2, x, np.arange(10) % 2,
                          overrides={"penalty.lr_x": 1}, workdir=tmp_path)
  assert not any(tmp_path.iterdir())      # nothing written


def test_api_refuses_what_the_command_line_refuses_and_leaves_no_folder(tmp_path,
                                                                        monkeypatch):
  monkeypatch.setattr(api.tempfile, "tempdir", str(tmp_path))
  x = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
  y = np.arange(12) % 3
  with pytest.raises(ConfigError, match=r"y_trusted holds labels outside the 3 classes 0..2 of "
                                        r"y \(e.g. 9\)"):
    api.learn_importances(x, y, x[:4], np.array([0, 1, 2, 9]))
  with pytest.raises(ConfigError, match="y holds one class"):
    api.learn_importances(x, np.zeros(12, int), x[:4], np.zeros(4, int))
  bad = x.copy()
  bad[5, 1] = np.nan
  with pytest.raises(ConfigError, match=r"x: 1 rows hold NaN .* row 5"):
    api.learn_importances(bad, y, x[:4], y[:4])
  with pytest.raises(ConfigError, match="no field"):
    api.learn_importances(x, y, x[:4], y[:4], overrides={"penalty.nope": 1})
  assert not list(tmp_path.iterdir())     # no temporary workdir left behind


@pytest.mark.slow
def test_api_greyscale_arrays_silent_and_cleaned_up(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(api.tempfile, "tempdir", str(tmp_path))
  rng = np.random.default_rng(0)
  y = np.arange(60) % 2
  x = (rng.random((60, 6, 6)) * 0.3 + y[:, None, None] * 0.6).astype(np.float32)  # [N, H, W]
  out = api.learn_importances(x, y, x[:20], y[:20], epochs=1, log=None,
                              overrides={"batch_size": 20, "val_batch_size": 10, "pretrain.epochs": 2,
                               "baseline.epochs": 1, "baselines.run": (), "retrain.epochs": 1})
  assert out.workdir is None and not list(tmp_path.iterdir())
  assert out.importances.shape == (60,) and len(out.label_issues) == 60
  captured = capsys.readouterr()
  assert captured.out == "" and "step/s" not in captured.err and "bilevel" not in captured.err
