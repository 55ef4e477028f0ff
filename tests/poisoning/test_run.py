"""poisoning/run.py through its real command line: every attack, resume, bad input."""

import json

import numpy as np
import pytest

from tests import cli

UNTARGETED = "--config=poisoning/configs/mnist_untargeted.py:tiny"
TARGETED = "--config=poisoning/configs/mnist_targeted.py:tiny"
CIFAR = "--config=poisoning/configs/cifar10_clean_label.py:tiny"
DOGFISH = "--config=poisoning/configs/dogfish_clean_label.py:tiny"


def _run(*args, timeout=600):
  return cli.run("poisoning/run.py", *args, timeout=timeout)


@pytest.mark.slow
def test_untargeted_tiny_end_to_end_and_resume(tmp_path):
  work = tmp_path / "run"
  proc = cli.ok(_run(UNTARGETED, f"--workdir={work}"))
  res = json.loads((work / "results.json").read_text())
  names = [r["poisons"] for r in res["rows"]]
  assert names == ["none (clean training set)", "penalty", "approxgrad", "random_label", "fgsm",
                   "pgd"]
  for row in res["rows"]:
    assert 0.0 <= row["test"] <= 1.0 and np.isfinite(row["val_loss"])
  for name in names[1:]:
    poisons = np.load(work / f"poisons_{name}.npy")
    assert poisons.shape == (6, 28, 28, 1) and poisons.min() >= 0.0 and poisons.max() <= 1.0
  # The random-label poisons are the starting images; the attacks moved theirs.
  np.testing.assert_array_equal(np.load(work / "poisons_random_label.npy"),
                                np.load(work / "poison_start.npy"))
  assert res["rows"][1]["mean_l2_change"] > 0
  assert (work / "poison_grid.png").stat().st_size > 1000
  assert "test accuracy" in proc.stdout and "penalty" in proc.stdout
  # A second invocation resumes: every phase is complete, the table is the same.
  again = cli.ok(_run(UNTARGETED, f"--workdir={work}"))
  assert "already complete" in again.stdout
  assert json.loads((work / "results.json").read_text())["rows"] == res["rows"]


@pytest.mark.slow
def test_targeted_tiny_reports_success_rate(tmp_path):
  work = tmp_path / "run"
  proc = cli.ok(_run(TARGETED, f"--workdir={work}", "--config.baselines=random_label"))
  res = json.loads((work / "results.json").read_text())
  assert res["attack"] == "targeted" and res["data"]["target_class"] == 3
  assert [r["poisons"] for r in res["rows"]][1:] == ["penalty", "approxgrad", "random_label"]
  for row in res["rows"]:
    assert 0.0 <= row["test"] <= 1.0 and 0.0 <= row["overall_accuracy"] <= 1.0
  assert "attack success" in proc.stdout


def _dogfish_npz(path, train=12, test=6, size=16, seed=0):
  """A file in the dog/fish format: X in [-1, 1], 0/1 labels; dogs bright, fish dark."""
  rng = np.random.default_rng(seed)

  def part(n):
    y = np.arange(n) % 2
    x = rng.uniform(-0.3, 0.3, (n, size, size, 3)).astype(np.float32)
    x += np.where(y == 0, 0.5, -0.5)[:, None, None, None].astype(np.float32)
    return np.clip(x, -1, 1), y

  x_train, y_train = part(train)
  x_test, y_test = part(test)
  np.savez(path, X_train=x_train, Y_train=y_train, X_test=x_test, Y_test=y_test)


@pytest.mark.slow
def test_clean_label_dogfish_format_with_a_user_extractor(tmp_path):
  data = tmp_path / "dogfish"
  data.mkdir()
  _dogfish_npz(data / "dataset_dog-fish_train-900_test-300.npz")
  work = tmp_path / "run"
  proc = cli.ok(_run(DOGFISH, f"--workdir={work}", f"--config.data_dir={data}",
                     "--config.extractor=tests.poisoning.user_extractor:tiny"))
  res = json.loads((work / "results.json").read_text())
  assert res["targets"] == 2 and len(res["outcomes"]) == 2
  for o in res["outcomes"]:
    # The base comes from the other class, and is its nearest training image in features.
    assert o["base_label"] != o["target_label"]
    with np.load(work / "targets" / f"t{o['slot']}.npz") as r:
      # The poison stays inside the data's pixel box.
      assert r["poison"].shape == (16, 16, 3)
      assert -1.0 <= r["poison"].min() and r["poison"].max() <= 1.0
  # Targets are taken in test order, each after the previous one.
  assert res["outcomes"][0]["target_index"] < res["outcomes"][1]["target_index"]
  assert np.load(work / "features_train.npz")["features"].shape == (12, 4)
  assert "targets misclassified" in proc.stdout


@pytest.mark.slow
def test_clean_label_cifar10_demo_trains_its_extractor(tmp_path, shared_data):
  work = tmp_path / "run"
  cli.ok(_run(CIFAR, f"--workdir={work}", f"--config.data_dir={shared_data / 'cifar10'}"))
  res = json.loads((work / "results.json").read_text())
  assert res["data"]["classes"] == ["dog", "frog"] and res["targets"] == 2
  assert "dog" not in res["data"]["extractor_classes"]
  assert np.load(work / "features_train.npz")["features"].shape == (2000, 128)


def test_bad_input_is_a_clear_error_before_any_file_is_written(tmp_path):
  work = tmp_path / "run"
  cases = [
      (("--config.attack=backdoor",), "Unknown attack"),
      (("--config.fgsm.eps=2.0",), "fgsm.eps"),
      (("--config.attackers=plain",), "learns no outer variables"),
      (("--config.baselines=gaussian",), "Unknown baseline"),
      (("--config.box=(1.0, 0.0)",), "low < high"),
  ]
  for args, message in cases:
    proc = _run(UNTARGETED, f"--workdir={work}", *args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert message in proc.stderr, proc.stderr[-2000:]
  # The targeted attack: the class pair, and more poisons than the data holds (one line).
  for args, message in ((("--config.source_class=12",),
                         "error (ConfigError): source_class and target_class must be two "
                         "different digits 0-9, got 12 and 3."),
                        (("--config.num_poisons=100000",),
                         "error (ConfigError): num_poisons=100000 needs 50000 training images "
                         "of each of 3 and 8")):
    proc = _run(TARGETED, f"--workdir={work}", *args)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr[-500:]
  assert not work.exists()
  # The clean-label attack without its data: where the file is expected and where to get it.
  proc = _run(DOGFISH, f"--workdir={work}", f"--config.data_dir={tmp_path / 'nothing'}")
  assert proc.returncode == 1
  assert "dataset_dog-fish_train-900_test-300.npz" in proc.stderr
  assert "codalab" in proc.stderr
