"""few_shot/run.py through its real command line, on small files written in the real formats."""

import json
import pickle

import numpy as np
import pytest

from tests import cli

OMNIGLOT = "--config=few_shot/configs/omniglot.py"
MINI = "--config=few_shot/configs/miniimagenet.py"


def _run(*args, timeout=600):
  return cli.run("few_shot/run.py", *args, timeout=timeout)


def _omniglot_npz(root, seed=0):
  """images_background.npz / images_evaluation.npz with 16 + 8 characters of random strokes
  (True = white background, as in the release)."""
  rng = np.random.default_rng(seed)
  root.mkdir(parents=True, exist_ok=True)
  for name, count in (("images_background", 16), ("images_evaluation", 8)):
    ink = np.zeros((count, 20, 105, 105), bool)
    for c in range(count):
      r, col = rng.integers(10, 80, 2)
      ink[c, :, r:r + 20, col:col + 5] = True           # a character-specific bar
      ink[c] |= rng.random((20, 105, 105)) < 0.02        # per-drawing speckle
    np.savez(root / f"{name}.npz", images=~ink,
             labels=np.repeat(np.arange(count)[:, None], 20, 1))
  return root


def _mini_pickles(root, per_class=20):
  rng = np.random.default_rng(1)
  root.mkdir(parents=True, exist_ok=True)
  for split, classes in (("train", 6), ("val", 2), ("test", 5)):
    images = rng.integers(0, 256, (classes * per_class, 84, 84, 3), dtype=np.uint8)
    names = {f"n{c:08d}": list(range(c * per_class, (c + 1) * per_class))
             for c in range(classes)}
    (root / f"mini-imagenet-cache-{split}.pkl").write_bytes(
        pickle.dumps({"image_data": images, "class_dict": names}, protocol=2))
  return root


@pytest.mark.slow
@pytest.mark.parametrize("method", ["penalty", "approxgrad"])
def test_omniglot_tiny_end_to_end_and_resume(tmp_path, method):
  data = _omniglot_npz(tmp_path / "omniglot")
  work = tmp_path / "w"
  args = (f"{OMNIGLOT}:5way,1shot,{method},tiny", f"--config.data_dir={data}",
          f"--workdir={work}")
  proc = cli.ok(_run(*args))
  assert "meta-train 68 classes, meta-test 28 classes" in proc.stdout
  assert "conv4 (111,424 parameters)" in proc.stdout
  res = json.loads((work / "results.json").read_text())
  assert res["method"] == method and res["eval_tasks"] == 4 and res["meta_iterations"] == 2
  assert res["eval_fresh_tasks"] is True
  assert 0.0 <= res["test_accuracy"] <= 1.0 and res["test_accuracy_ci95"] >= 0.0
  accs = np.load(work / "task_accuracies.npy")
  assert accs.shape == (4,) and np.isclose(accs.mean(), res["test_accuracy"])
  assert (work / "accuracy.png").stat().st_size > 5_000
  recs = [json.loads(l) for l in (work / "metrics.jsonl").open()]
  steps = [r for r in recs if r["kind"] == "step"]
  assert [r["step"] for r in steps] == [1, 2] and all(np.isfinite(r["f"]) for r in steps)
  again = cli.ok(_run(*args))
  assert "already complete" in again.stdout
  assert json.loads((work / "results.json").read_text())["test_accuracy"] == res["test_accuracy"]


@pytest.mark.slow
def test_miniimagenet_tiny_end_to_end(tmp_path):
  data = _mini_pickles(tmp_path / "mini")
  work = tmp_path / "w"
  proc = cli.ok(_run(f"{MINI}:5way,1shot,tiny", f"--config.data_dir={data}",
                     "--config.images_per_class=20", f"--workdir={work}"))
  assert "meta-train 6 classes, meta-test 5 classes" in proc.stdout
  assert "resnet_mini (3,543,424 parameters)" in proc.stdout
  assert json.loads((work / "results.json").read_text())["eval_tasks"] == 4


def test_more_ways_than_classes_is_one_line_before_anything_is_written(tmp_path):
  data = _omniglot_npz(tmp_path / "omniglot")
  work = tmp_path / "w"
  proc = _run(f"{OMNIGLOT}:50way,1shot,tiny", f"--config.data_dir={data}", f"--workdir={work}",
              timeout=120)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "error (ConfigError): omniglot: num_ways=50 but the pool holds only")
  assert not work.exists()
  # One call for an encoder with batch norm: one line, nothing written; a per-image one runs.
  one_call = (f"{OMNIGLOT}:5way,1shot,tiny", f"--config.data_dir={data}", f"--workdir={work}",
              "--config.encoder_one_call=True")
  proc = _run(*one_call, "--config.encoder=tests.few_shot.test_models:user_encoder")
  assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith(
      "error (ConfigError): encoder_one_call=True needs an encoder whose layers"), proc.stderr
  assert not work.exists()
  proc = cli.ok(_run(*one_call, "--config.encoder=few_shot.speed:conv4_plain"))
  assert 0.0 <= json.loads((work / "results.json").read_text())["test_accuracy"] <= 1.0


@pytest.mark.parametrize("args, message", [
    ([f"{OMNIGLOT}:5way,1shot,tiny", "--config.data_dir=/nonexistent"], "github.com/brendenlake"),
    ([f"{MINI}:tiny"], "mini-imagenet-cache-train.pkl"),
    ([f"{OMNIGLOT}:tiny", "--config.method=plain"], "learns no outer variables"),
    ([f"{OMNIGLOT}:tiny", "--config.eval_tasks=5"], "must be a multiple of meta_batch"),
    ([f"{OMNIGLOT}:tiny", "--config.dataset=cifar"], "Unknown dataset 'cifar'"),
    ([f"{OMNIGLOT}:3way,tiny,approxgrad", "--config.approxgrad.correction=task0"],
     "approxgrad.correction must be"),
    ([f"{OMNIGLOT}:1way,1shot,tiny"], "ways must be >= 2 (a 1-way task is always answered"),
])
def test_bad_input_fails_fast(tmp_path, args, message):
  work = tmp_path / "w"
  proc = _run(*args, f"--workdir={work}", timeout=120)
  assert proc.returncode != 0 and message in proc.stdout + proc.stderr, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert not work.exists()


@pytest.mark.slow
def test_two_fresh_runs_of_one_seed_log_the_same_numbers(tmp_path, shared_data):
  # Op determinism (config.deterministic, the default): without it the meta-train records of
  # two runs of one seed on the real Omniglot differ from step 1 (3e-4 relative, measured;
  # this synthetic-free check fails with --config.deterministic=False).
  if not (shared_data / "omniglot").is_dir():
    pytest.skip("no Omniglot in ../shared/data")
  logs = []
  for name in ("a", "b"):
    cli.ok(_run(f"{OMNIGLOT}:tiny", f"--config.data_dir={shared_data / 'omniglot'}",
                f"--workdir={tmp_path / name}"))
    logs.append([{k: v for k, v in json.loads(l).items() if k != "time"}
                 for l in (tmp_path / name / "metrics.jsonl").open()])
  assert logs[0] == logs[1] and len(logs[0]) >= 2
