"""importance_learning/run.py through its real command line."""

import json
import re

import numpy as np
import pytest

from tests import cli

TINY = "--config=importance_learning/configs/default.py:tiny"
# For the tests about something else: the extra baselines (tested in the end-to-end, resume and
# L2RW runs) double a tiny run's time.
NO_EXTRAS = "--config.baselines.run=()"


def _run(*args, timeout=300):
  return cli.run("importance_learning/run.py", *args, timeout=timeout)


_ok = cli.ok


@pytest.mark.slow
def test_tiny_run_end_to_end(tmp_path):
  proc = _ok(_run(TINY, f"--workdir={tmp_path}"))
  assert "baseline: train on noisy data" in proc.stdout
  assert "ROC AUC" in proc.stdout and "confident learning (cleanlab flags)" in proc.stdout
  assert "traced" not in proc.stdout, "every phase's step must trace once"
  res = json.loads((tmp_path / "results.json").read_text())
  for key in ("baseline_test_accuracy", "bilevel_model_test_accuracy",
              "retrained_test_accuracy", "detection"):
    assert key in res
  assert res["data"]["scaled"] and "scaled by 0.25" in res["data"]["note"]
  assert res["num_corrupted"] == 625   # floor(0.5 * 1250)
  assert "scaled by 0.25" in proc.stdout
  assert np.load(tmp_path / "importances.npy").shape == (1250,)
  assert (tmp_path / "importances.png").stat().st_size > 10_000
  recs = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()]
  cl_phases = {f"confident_learning{v}_{p}" for v in ("", "_trusted")
               for p in ("f0", "f1", "retrain")}       # tiny: 2 folds
  assert {r["phase"] for r in recs} == {"baseline", "pretrain", "bilevel", "retrain",
                                        "clean_only", "oracle"} | cl_phases
  assert any("test_accuracy" in r for r in recs if r["phase"] == "bilevel")
  assert (tmp_path / "config.json").exists() and list((tmp_path / "checkpoints").iterdir())
  # Each baseline row comes from its own training: the clean split alone, the true labels of
  # train + val, and for confident learning the points cleanlab kept + val.
  rows = res["baselines"]
  assert rows["clean_only"]["train_points"] == 1250 and rows["oracle"]["train_points"] == 2500
  accs = [res["baseline_test_accuracy"]] + [rows[k]["test_accuracy"] for k in rows]
  assert len(set(accs)) == len(accs), accs     # five different trainings, five accuracies
  for name in ("confident_learning", "confident_learning_trusted"):
    det = rows[name]["detection"]
    assert rows[name]["train_points"] == 1250 - det["flagged"] + 1250
    assert set(det) >= {"precision", "recall", "f1", "roc_auc", "average_precision"}
    quality = np.load(tmp_path / f"{name}_quality.npy")
    assert quality.shape == (1250,) and 0 <= quality.min() and quality.max() <= 1
  # Re-running the same command resumes a finished run: every phase is skipped, and the
  # cached confident-learning folds are not trained again.
  again = _ok(_run(TINY, f"--workdir={tmp_path}"))
  assert again.stdout.count("already complete") == 6
  assert json.loads((tmp_path / "results.json").read_text())["baselines"] == res["baselines"]


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_results(tmp_path):
  ref = tmp_path / "ref"
  _ok(_run(TINY, f"--workdir={ref}"))
  out = tmp_path / "resumed"
  # Tiny: baseline 12 steps, pretrain 6, bilevel 12, retrain 13. Stop mid-bilevel, then
  # mid-retrain, then finish.
  first = _ok(_run(TINY, f"--workdir={out}", "--config.runner.max_steps_per_invocation=23"))
  assert "Re-run the same command" in first.stdout and not (out / "results.json").exists()
  _ok(_run(TINY, f"--workdir={out}", "--config.runner.max_steps_per_invocation=14"))
  _ok(_run(TINY, f"--workdir={out}"))
  a = json.loads((ref / "results.json").read_text())
  b = json.loads((out / "results.json").read_text())
  for key in ("baseline_test_accuracy", "bilevel_model_test_accuracy",
              "retrained_test_accuracy", "detection", "retrain_selected", "baselines"):
    assert a[key] == b[key], key
  np.testing.assert_array_equal(np.load(ref / "importances.npy"),
                                np.load(out / "importances.npy"))


@pytest.mark.slow
def test_user_model_per_example_state_and_approxgrad_with_its_schedule(tmp_path):
  proc = _ok(_run(TINY, f"--workdir={tmp_path}", NO_EXTRAS,
                  "--config.model=tests.common.user_model:tiny_mlp",
                  "--config.per_example_state=True", "--config.retrain.enabled=False",
                  "--config.method=approxgrad", "--config.approxgrad.lr_decay_every_epochs=1"))
  res = json.loads((tmp_path / "results.json").read_text())
  assert res["model"] == "tests.common.user_model:tiny_mlp" and res["method"] == "approxgrad"
  assert "retrained_test_accuracy" not in res and "bilevel classifier" in proc.stdout
  # Halving after every epoch (6 steps each): lr_u 1 in epoch 1, 0.5 in epoch 2; lr_p stays.
  recs = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()]
  lr_u = {r["step"]: r["lr_u"] for r in recs if r["phase"] == "bilevel" and "lr_u" in r}
  assert [lr_u[s] for s in (1, 6, 7, 12)] == [1.0, 1.0, 0.5, 0.5]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gd", "rmd"])
def test_gd_and_rmd_run_importance_learning(tmp_path, method):
  _ok(_run(TINY, f"--workdir={tmp_path}", NO_EXTRAS, f"--config.method={method}",
           "--config.baseline.enabled=False", "--config.retrain.enabled=False"))
  assert json.loads((tmp_path / "results.json").read_text())["method"] == method
  a = np.load(tmp_path / "importances.npy")
  levels = len(np.unique(np.round(a, 5)))
  if method == "gd":
    # f does not depend on the importances: GD never moves them, only the epoch-end
    # renormalisation rescales the two initial levels.
    assert levels == 2
  else:
    assert levels > 100     # RMD's hypergradient reaches every point of every batch


@pytest.mark.parametrize("args, message", [
    (["--config.dataset=mnistt"], "Unknown dataset 'mnistt'"),
    (["--config.noise=1.5"], "noise must be a fraction in [0, 1], got 1.5"),
    (["--config.nosie=0.5"], "nosie"),
    (["--config.method=plain"], "learns no importances"),
    (["--config.method=newton"], "Unknown method 'newton'"),
    (["--config.model=resnet9000"], "Unknown model 'resnet9000'"),
    (["--config.source=files", "--config.data_dir=/nonexistent/mnist"],
     "train-images-idx3-ubyte.gz"),
    (["--config.baselines.run=('oracle','small_loss')"], "Unknown baseline(s) ['small_loss']"),
    (["--config.baselines.folds=1"], "baselines.folds must be >= 2"),
    (["--config.method=rmd", "--config.rmd.inner_optimizer=lbfgs"],
     "rmd.inner_optimizer must be 'gd' or one of"),
    (["--config.runner.steps_per_call=0"], "runner.steps_per_call must be >= 1"),
    (["--config.runner.checkpoint_every=0"], "runner.checkpoint_every must be >= 1, got 0"),
    (["--config.retrain.threshold=5"], "retrain.threshold must lie in (0, 1)"),
    (["--config.model=tests.common.user_model:ends_in_softmax"],
     "ends in a softmax: return logits instead"),
    (["--config.batch_size=5000"], "batch_size=5000 is larger than the 1250 training points"),
    (["--config.evaluators=('accuracy','temperatures')"],
     "importance learning cannot run 'temperatures'; it offers importance_stats, accuracy"),
])
def test_bad_input_fails_fast_with_a_clear_message(tmp_path, args, message):
  workdir = tmp_path / "w"
  proc = _run(TINY, f"--workdir={workdir}", *args, timeout=120)
  assert proc.returncode != 0
  assert message in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-2000:]
  assert not workdir.exists(), "nothing may be written before the input is validated"


@pytest.mark.parametrize("case", ["missing", "broken", "misspelt", "unknown", "ranking",
                                  "workdir_file", "workdir_under_file"])
def test_config_file_and_workdir_errors_are_one_line(tmp_path, case):
  (tmp_path / "broken.py").write_text("def get_config(:\n")
  (tmp_path / "afile").write_text("not a folder")
  workdir = tmp_path / "w"
  args, expected = {
      "missing": ([f"--config={tmp_path / 'nope.py'}", f"--workdir={workdir}"],
                  f"error (config): cannot load the config file {tmp_path / 'nope.py'}: "),
      "broken": ([f"--config={tmp_path / 'broken.py'}", f"--workdir={workdir}"],
                 f"error (config): the config file {tmp_path / 'broken.py'} has a syntax error "
                 "at line 1"),
      "misspelt": ([TINY, "--config.nosie=0.5", f"--workdir={workdir}"],
                   "error (config): the config has no field 'nosie'; Did you mean \"noise\""),
      "unknown": ([TINY, "--config.data_parameters.lr=0.1", f"--workdir={workdir}"],
                  "error (config): the config has no field 'data_parameters'; --help lists the "
                  "fields of this config."),
      "ranking": (["--config=importance_learning/configs/custom.py:tiny",
                   f"--config.custom.train={tmp_path / 'afile'}",
                   "--config.label_issues_ranking=bogus", f"--workdir={workdir}"],
                  "error (ConfigError): label_issues_ranking='bogus' is not a ranking a penalty "
                  "run offers; choose one of ['auto', 'penalty', "),
      "workdir_file": ([TINY, f"--workdir={tmp_path / 'afile'}"],
                       f"error (workdir): --workdir={tmp_path / 'afile'} is a file, not a folder"),
      "workdir_under_file": ([TINY, f"--workdir={tmp_path / 'afile' / 'w'}"],
                             f"error (workdir): --workdir={tmp_path / 'afile' / 'w'} cannot be "
                             f"created: {tmp_path / 'afile'} is a file"),
  }[case]
  proc = _run(*args, timeout=120)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines()[-1].startswith(expected), proc.stderr[-500:]
  # Only that line: TensorFlow's C++ start-up lines are silenced during its import.
  assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
  assert not workdir.exists() and (tmp_path / "afile").read_text() == "not a folder"


@pytest.mark.parametrize("config, message", [
    ("importance_learning/configs/default.py:0.25:tiny", "separate arguments with commas"),
    ("importance_learning/configs/default.py:tiny,banana",
     "'banana' is not one this config takes; it takes a number (e.g. 0.25), 'tiny'"),
])
def test_a_bad_config_argument_is_one_line_without_a_traceback(tmp_path, config, message):
  workdir = tmp_path / "w"
  proc = _run(f"--config={config}", f"--workdir={workdir}", timeout=120)
  assert proc.returncode != 0
  err = proc.stdout + proc.stderr
  assert message in err and "Traceback" not in err, err[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error")]
  assert len(lines) == 1 and lines[0].startswith("error (flags): flag --config="), err[-2000:]
  assert not workdir.exists()


@pytest.mark.slow
def test_non_finite_loss_stops_with_the_step_and_keeps_the_checkpoint(tmp_path):
  proc = _run(TINY, f"--workdir={tmp_path}", "--config.pretrain.lr=1e38")
  assert proc.returncode != 0
  err = proc.stdout + proc.stderr
  assert re.search(r"NonFiniteError.*\[pretrain\] non-finite g=nan at step \d+; every metric was "
                   r"finite up to step \d+", err), err[-2000:]
  assert "Traceback" not in err
  assert "last good checkpoint" in err and "fresh --workdir" in err
  assert (tmp_path / "checkpoints").is_dir()   # the finished baseline phase is kept
  assert not (tmp_path / "results.json").exists()
  # Another learning rate on the same workdir is refused in one line, the switch too: the
  # finished baseline phase and the rest would come from two configs.
  for extra in ((), ("--config.runner.allow_config_change=True",)):
    refused = _run(TINY, f"--workdir={tmp_path}", "--config.pretrain.lr=1e-4", *extra)
    assert refused.returncode == 1 and "ConfigMismatchError" in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert "['pretrain.lr'] would change the data" in last and "Start a new --workdir" in last


@pytest.mark.slow
def test_l2rw_reweights_per_step_without_pretraining(tmp_path):
  proc = _ok(_run(TINY, f"--workdir={tmp_path}", "--config.method=l2rw",
                  "--config.baseline.enabled=False", "--config.retrain.enabled=False"))
  assert "[pretrain] not part of this run" in proc.stdout
  assert "l2rw (weight <= 0.5)" in proc.stdout
  res = json.loads((tmp_path / "results.json").read_text())
  assert res["method"] == "l2rw" and res["detection_threshold"] == 0.5
  w = np.load(tmp_path / "importances.npy")
  # Last weight x batch size: every batch's weights average 1 unless all are zero.
  assert w.shape == (1250,) and (w >= 0).all() and 0.5 < w.mean() <= 1.0 + 1e-6
  assert (w == 0).sum() > 50 and len(np.unique(np.round(w, 5))) > 100
  recs = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()]
  assert not any(r["phase"] == "pretrain" for r in recs)


@pytest.mark.slow
def test_proximal_uses_class_matched_noisy_splits_and_a_uniform_weight_baseline(tmp_path):
  proc = _ok(_run(TINY.replace(":tiny", ":0.4,tiny"), f"--workdir={tmp_path}", NO_EXTRAS,
                  "--config.method=proximal", "--config.noise_type=per_class"))
  assert "proximal (bilevel classifier)" in proc.stdout
  assert "proximal (retrained" not in proc.stdout
  assert "per_class noise" in proc.stdout
  res = json.loads((tmp_path / "results.json").read_text())
  # per_class: int(0.4 * n_c) in every class of the 1250 training points.
  assert 450 <= res["num_corrupted"] <= 500 and "retrained_test_accuracy" not in res
  w = np.load(tmp_path / "importances.npy")
  # Weights are per split: 8 splits of 25 rows, split 0 (validation) unweighted, so one batch
  # writes at most 7 distinct values; they are signed.
  assert w.shape == (1250,) and len(np.unique(np.round(w, 6))) > 7
  recs = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()]
  bil = [r for r in recs if r["phase"] == "bilevel" and r["kind"] == "step"]
  assert bil and all("negative_weight_fraction" in r for r in bil)
  # The baseline is the method's optimiser with uniform weights: momentum SGD at its lr,
  # trained on the noisy set only (1250 / 200 = 6 steps per epoch, 2 epochs).
  base = [r for r in recs if r["phase"] == "baseline" and r["kind"] == "step"]
  assert max(r["step"] for r in base) == 12 and all(r["lr"] == pytest.approx(1e-3) for r in base)


@pytest.mark.slow
def test_imbalance_experiment_end_to_end_and_resume(tmp_path):
  args = ("--config=importance_learning/configs/mnist_imbalance.py:small,tiny",
          f"--workdir={tmp_path}")
  proc = _ok(_run(*args))
  assert "NOTE: embedded MNIST holds 500 images per digit" in proc.stdout
  assert "| 0.98 |" in proc.stdout and "± " in proc.stdout
  res = json.loads((tmp_path / "results.json").read_text())
  assert set(res["table"]["0.98"]) == {"l2rw", "plain", "random"}
  assert len(res["table"]["0.98"]["l2rw"]["values"]) == 2
  runs = {(r["method"], r["seed"]): r for r in res["runs"]}
  # L2RW takes its 10 clean images out of the training budget; the baselines do not.
  assert runs[("l2rw", 0)]["counts"]["train_4"] == 3
  assert runs[("plain", 0)]["counts"]["train_4"] == 8
  assert (tmp_path / "runs" / "p0.98" / "l2rw" / "seed0" / "weights.npy").exists()
  assert (tmp_path / "accuracy_vs_proportion.png").stat().st_size > 10_000
  assert "| proportion of 9s |" in (tmp_path / "results.md").read_text()
  # Re-running skips finished runs; adding a seed reuses them (the sweep may grow).
  again = _ok(_run(*args))
  assert "[train]" not in again.stdout
  more = _ok(_run(*args, "--config.imbalance.num_seeds=3", "--config.imbalance.methods=('plain',)"))
  # Two seeds of plain were run before; only the third trains.
  assert len(re.findall(r"seed \d+: test accuracy", more.stdout)) == 3
  assert more.stdout.count("(cached)") == 2
  changed = _run(*args, "--config.imbalance.n_train=300")
  assert changed.returncode != 0 and "different config" in changed.stdout + changed.stderr


def _write_t10k(folder, per_digit=100):
  """t10k IDX files holding ``per_digit`` images of each digit (random pixels): with the
  embedded 5,000 images, a pool of 500 + per_digit 4s and 9s."""
  from tests.common.test_data import _write_idx
  from common.data import mnist
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(10), per_digit)
  _write_idx(folder / mnist.TEST_IMAGES,
             rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8), 2051)
  _write_idx(folder / mnist.TEST_LABELS, labels, 2049)


@pytest.mark.slow
def test_imbalance_default_sweep_tiny_counts_cache_and_diagnostics(tmp_path):
  """The default (all-nines) sweep through the command line on a 6,000-image pool: 600 4s and
  600 9s, 250 + 250 held out for testing, 5 + 5 for validation."""
  data_dir = tmp_path / "mnist"
  data_dir.mkdir()
  _write_t10k(data_dir)
  work = tmp_path / "work"
  args = ("--config=importance_learning/configs/mnist_imbalance.py:tiny",
          f"--config.data_dir={data_dir}", f"--workdir={work}")
  missing = _run(*args[:1], f"--workdir={work}")
  assert missing.returncode != 0 and "t10k-images-idx3-ubyte.gz" in missing.stdout + missing.stderr
  assert not work.exists()                        # refused before anything is written
  proc = _ok(_run(*args))
  assert "MNIST pool of 6000 images" in proc.stdout
  res = json.loads((work / "results.json").read_text())
  assert set(res["table"]) == {"0.9", "0.995"}
  runs = {(r["proportion"], r["method"], r["seed"]): r for r in res["runs"]}
  assert len(runs) == 2 * 3 * 2
  nines = 600 - 250 - 5
  for p in (0.9, 0.995):
    fours = int(round(nines * (1 - p) / p))      # 38 at 0.9, 2 at 0.995
    for seed in (0, 23456789 % 100000):
      assert runs[(p, "l2rw", seed)]["counts"] == {
          "train_4": fours, "train_9": nines, "val_4": 5, "val_9": 5, "test_4": 250,
          "test_9": 250}
      for m in ("plain", "random"):            # the baselines train on the clean images too
        assert runs[(p, m, seed)]["counts"]["train_4"] == fours + 5
        assert runs[(p, m, seed)]["counts"]["train_9"] == nines + 5
      l2rw = runs[(p, "l2rw", seed)]
      assert 0.0 <= l2rw["all_zero_weight_batch_fraction"] <= 1.0
      assert l2rw["mean_weight_share_on_4s"] is None or 0 <= l2rw["mean_weight_share_on_4s"] <= 1
    for m in ("l2rw", "plain", "random"):
      values = [runs[(p, m, s)]["test_accuracy"] for s in (0, 23456789 % 100000)]
      cell = res["table"][str(p)][m]
      assert cell["values"] == values and cell["mean"] == pytest.approx(np.mean(values))
      # Accuracy on the 500 test images is a multiple of 1/500.
      assert all(abs(v * 500 - round(v * 500)) < 1e-6 for v in values)
  md = (work / "results.md").read_text()
  assert f"L2RW 38 + 5 clean / {nines} + 5 clean; baselines 43 / {nines + 5}" in md
  assert "all-zero batches" in md
  assert (work / "accuracy_vs_proportion.png").stat().st_size > 10_000
  assert (work / "accuracy_vs_step.png").stat().st_size > 10_000
  # The per-step curves are the seeds' mean of each run's evaluations (steps 3 and 6).
  from importance_learning import imbalance
  folder = lambda key: work / "runs" / f"p{key[0]}" / key[1] / f"seed{key[2]}"  # noqa: E731
  panels = imbalance.step_curves(folder, res["runs"])
  steps, mean = panels["p = 0.995"]["plain"]
  assert list(steps) == [3, 6]
  assert mean[-1] == pytest.approx(res["table"]["0.995"]["plain"]["mean"])
  # A per-run results.json is the cache: a second invocation trains nothing, a wider one only
  # the new cells.
  again = _ok(_run(*args))
  assert "[train]" not in again.stdout and again.stdout.count("(cached)") == 12
  wider = _ok(_run(*args, "--config.imbalance.proportions=(0.9,0.95,0.995)"))
  assert wider.stdout.count("(cached)") == 12 and len(re.findall(r"p=0.95 \w+ seed \d+: test "
                                                                  r"accuracy", wider.stdout)) == 6


CIFAR = __import__("pathlib").Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10"


@pytest.fixture(scope="module")
def cifar_subset(tmp_path_factory):
  """A smaller CIFAR-10 folder of the real images (links into ../shared/data/cifar10): the
  first 200 training and 50 test images of each class, so the rows' runs take a minute."""
  root = tmp_path_factory.mktemp("cifar10")
  for part, count in (("train", 200), ("test", 50)):
    for folder in sorted((CIFAR / part).iterdir()):
      (root / part / folder.name).mkdir(parents=True)
      for image in sorted(folder.iterdir())[:count]:
        (root / part / folder.name / image.name).symlink_to(image)
  return root


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR.is_dir(), reason="needs ../shared/data/cifar10 (CIFAR-10 subset)")
@pytest.mark.parametrize("config, extra", [
    ("l2rw_cifar_background.py:tiny", ()),
    ("proximal_cifar10.py:tiny", ("--config.proximal.splits=4",)),
])
def test_reweighting_cifar_rows_run_on_real_images(tmp_path, cifar_subset, config, extra):
  proc = _ok(_run(f"--config=importance_learning/configs/{config}", f"--workdir={tmp_path}",
                  NO_EXTRAS, f"--config.data_dir={cifar_subset}", "--config.batch_size=16",
                  "--config.val_batch_size=4", *extra, timeout=600))
  assert "bilevel classifier" in proc.stdout and "ROC AUC" in proc.stdout
  res = json.loads((tmp_path / "results.json").read_text())
  assert res["data"]["scaled"] and res["num_corrupted"] > 0
  actual = res["data"]["actual"]
  # The subset's 2,000 training images, less what scaling the split rounds off.
  assert 1990 <= actual["train"] + actual["val"] <= 2000 and actual["test"] == 500
  recs = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()]
  assert max(r["step"] for r in recs if r["phase"] == "bilevel") == 4   # tiny: 4 steps


MIRRORED = ("--config.runner.distribute.strategy=mirrored",
            "--config.runner.distribute.cpu_devices=2")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["penalty", "approxgrad", "l2rw"])
def test_mirrored_over_two_cpu_devices_gives_the_single_device_results(tmp_path, method):
  """The whole protocol (baseline, pretraining, bilevel, retraining) replicated over two
  logical CPU devices reproduces the one-device run's results."""
  results = {}
  for name, extra in (("one", ()), ("two", MIRRORED)):
    proc = _ok(_run(TINY, NO_EXTRAS, f"--config.method={method}", f"--workdir={tmp_path / name}",
                    *extra))
    results[name] = json.loads((tmp_path / name / "results.json").read_text())
    if extra:
      assert "Data-parallel over 2 replicas (MirroredStrategy)" in proc.stdout
  one, two = results["one"], results["two"]
  for key in ("baseline_test_accuracy", "bilevel_model_test_accuracy", "method_test_accuracy",
              "mean_importance_clean", "mean_importance_corrupted"):
    assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-6), key
  np.testing.assert_allclose(np.load(tmp_path / "two" / "importances.npy"),
                             np.load(tmp_path / "one" / "importances.npy"), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_mixed_bfloat16_run_and_unsupported_setups_fail_fast(tmp_path):
  proc = _ok(_run(TINY, NO_EXTRAS, f"--workdir={tmp_path / 'bf16'}",
                  "--config.runner.precision=mixed_bfloat16"))
  res = json.loads((tmp_path / "bf16" / "results.json").read_text())
  assert 0.0 < res["bilevel_model_test_accuracy"] <= 1.0
  assert "traced" not in proc.stdout
  proc = _run(TINY, f"--workdir={tmp_path / 'px'}", "--config.method=proximal",
              "--config.proximal.splits=5", *MIRRORED)
  assert proc.returncode == 1 and "proximal.splits = 5 must be a multiple of the 2" in proc.stderr
  assert not (tmp_path / "px").exists()
  proc = _run(TINY, f"--workdir={tmp_path / 'odd'}", "--config.batch_size=25", *MIRRORED)
  assert proc.returncode == 1 and "batch_size = 25 cannot be split evenly" in proc.stderr


@pytest.mark.slow
def test_two_worker_processes_multi_worker_mirrored_give_the_single_device_results(tmp_path):
  """MultiWorkerMirroredStrategy as on two machines: two processes on localhost with the
  usual TF_CONFIG, one CPU device each, each with its own workdir."""
  import socket
  import subprocess
  import sys
  ports = []
  for _ in range(2):
    with socket.socket() as s:
      s.bind(("localhost", 0))
      ports.append(s.getsockname()[1])
  cluster = {"worker": [f"localhost:{p}" for p in ports]}
  procs = []
  for i in range(2):
    env = cli.run_env(
        TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
    procs.append(subprocess.Popen(
        [sys.executable, "importance_learning/run.py", TINY, NO_EXTRAS,
         f"--workdir={tmp_path / str(i)}",
         "--config.runner.distribute.strategy=multi_worker_mirrored"],
        cwd=cli.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  for p in procs:
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, out[-2000:] + err[-2000:]
  single = _ok(_run(TINY, NO_EXTRAS, f"--workdir={tmp_path / 'single'}"))
  del single
  ref = json.loads((tmp_path / "single" / "results.json").read_text())
  for i in range(2):
    res = json.loads((tmp_path / str(i) / "results.json").read_text())
    for key in ("bilevel_model_test_accuracy", "method_test_accuracy", "mean_importance_clean"):
      assert res[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), (i, key)


COMPARE = "--config=importance_learning/configs/compare.py:tiny"


@pytest.mark.slow
def test_comparison_end_to_end_resumes_and_widens_in_place(tmp_path):
  proc = _ok(_run(COMPARE, f"--workdir={tmp_path}", "--config.compare.methods=('penalty',)",
                  "--config.compare.noise=(0.5,)"))
  assert "confident learning (cleanlab)" in proc.stdout and "avg precision" in proc.stdout
  out = json.loads((tmp_path / "comparison.json").read_text())
  approaches = [r["approach"] for r in out["rows"]]
  assert approaches[0] == "noisy data (baseline)" and approaches[-1] == "penalty"
  assert len(approaches) == 6 and "oracle: true training labels (ceiling)" in approaches
  # Each row carries its own cell's numbers: the penalty row is the cell's method result.
  cell = json.loads((tmp_path / "cells" / "noise0.5" / "penalty" / "results.json").read_text())
  assert out["rows"][-1]["test_accuracy"] == cell["method_test_accuracy"]
  assert out["rows"][-1]["detection"] == cell["detection"]
  assert "| 0.5 | penalty |" in (tmp_path / "comparison.md").read_text()
  for name in ("accuracy.png", "detection_noise0.5.png"):
    assert (tmp_path / name).stat().st_size > 10_000
  # Re-run: every cell cached; widen: a second method is the only thing trained.
  again = _ok(_run(COMPARE, f"--workdir={tmp_path}", "--config.compare.methods=('penalty',)",
                   "--config.compare.noise=(0.5,)"))
  assert "cached in" in again.stdout and "[bilevel]" not in again.stdout
  wide = _ok(_run(COMPARE, f"--workdir={tmp_path}",
                  "--config.compare.methods=('penalty','l2rw')", "--config.compare.noise=(0.5,)"))
  assert wide.stdout.count("cached in") == 1          # penalty's cell: not trained again
  assert "importances initialised" not in wide.stdout and "[bilevel] epoch 2/2" in wide.stdout
  out = json.loads((tmp_path / "comparison.json").read_text())
  assert [r["approach"] for r in out["rows"]][-3:] == ["penalty",
                                                        "l2rw: its trainer, uniform weights",
                                                        "l2rw"]
  # The L2RW cell skipped the noise level's baselines (the penalty cell trained them).
  l2rw = json.loads((tmp_path / "cells" / "noise0.5" / "l2rw" / "results.json").read_text())
  assert l2rw["baselines"] == {}
  changed = _run(COMPARE, f"--workdir={tmp_path}", "--config.batch_size=100")
  assert changed.returncode != 0 and "different config" in changed.stdout + changed.stderr


@pytest.mark.parametrize("args, message", [
    (["--config.compare.methods=('penalty','newton')"], "compare.methods names ['newton']"),
    (["--config.compare.noise=(0.5,1.5)"], "compare.noise holds 1.5"),
    (["--config.compare.methods=()"], "must each name at least one value"),
])
def test_comparison_bad_input_is_one_line_before_anything_is_written(tmp_path, args, message):
  proc = _run(COMPARE, f"--workdir={tmp_path / 'w'}", *args, timeout=120)
  assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr and not (tmp_path / "w").exists()


def _cifar_folder(root, empty_class=None, bad_image=False):
  """A CIFAR-10 image folder: one 32x32 PNG per class in train/ and test/."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from common.data.cifar10 import CANONICAL_CLASSES  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  for part in ("train", "test"):
    for name in CANONICAL_CLASSES:
      folder = root / part / name
      folder.mkdir(parents=True)
      if name != empty_class:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "0.png")
  if bad_image:
    (root / "train" / "cat" / "1.jpg").write_bytes(b"\xff\xd8\xff truncated jpeg")
  return root


@pytest.mark.parametrize("case", ["mnist_html", "cifar_empty_class", "cifar_bad_image"])
def test_damaged_data_is_one_line_naming_the_file(tmp_path, case):
  if case == "mnist_html":
    data = tmp_path / "mnist"
    data.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
      (data / name).write_bytes(b"<html>404</html>")
    args = [TINY, "--config.source=files"]
    expected = f"{data / 'train-images-idx3-ubyte.gz'}: cannot read it as a gzip file"
  else:
    data = _cifar_folder(tmp_path / "cifar", empty_class="frog" if case.endswith("class")
                         else None, bad_image=case.endswith("image"))
    args = ["--config=importance_learning/configs/cifar10.py:tiny", "--config.source=files"]
    expected = (f"{data / 'train' / 'frog'} holds no" if case.endswith("class")
                else f"cannot use {data / 'train' / 'cat' / '1.jpg'}")
  workdir = tmp_path / "w"
  proc = _run(*args, f"--config.data_dir={data}", f"--workdir={workdir}", timeout=120)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error (DataError): ") and expected in last, last
  assert not workdir.exists()


@pytest.mark.slow
def test_l2rw_clean_only_steps_and_finetune_rows(tmp_path):
  """The official L2RW rows: clean only for its own step count, and the method's model
  fine-tuned on the clean split (starting from that model, not from scratch)."""
  proc = _ok(_run(TINY, "--config.method=l2rw", "--config.baselines.run=('clean_only','finetune')",
                  "--config.steps=30", "--config.l2rw.lr=0.1",
                  "--config.baselines.clean_only_steps=3", "--config.baselines.finetune_steps=2",
                  f"--workdir={tmp_path}"))
  assert "the method's model fine-tuned on the clean split" in proc.stdout
  res = json.loads((tmp_path / "results.json").read_text())
  recs = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()]
  last = {}
  for r in recs:
    last[r["phase"]] = max(last.get(r["phase"], 0), r["step"])
  assert last["clean_only"] == 3 and last["finetune"] == 2
  rows = res["baselines"]
  assert rows["finetune"]["train_points"] == rows["clean_only"]["train_points"] == 1250
  # Fine-tuning starts from the L2RW model: its first clean-split loss is far below that of
  # the clean-only row's fresh model (measured 1.16 against 2.39).
  first = {r["phase"]: r["mean_loss"] for r in recs if r["step"] == 1 and r["kind"] == "step"}
  assert first["finetune"] < first["clean_only"] - 0.5, first
  assert 0.0 < rows["finetune"]["test_accuracy"] <= 1.0


@pytest.mark.slow
def test_a_resume_with_other_noise_is_refused_even_with_the_switch(tmp_path):
  # Stopped mid-way at noise 0.5, resumed at 0.3: the baseline and pretraining would have used
  # the 0.5 labels and the rest the 0.3 labels. Refused, nothing rewritten.
  _ok(_run(TINY, NO_EXTRAS, "--config.runner.max_steps_per_invocation=3",
           f"--workdir={tmp_path}"))
  files = lambda: {p.name: p.read_bytes() for p in tmp_path.iterdir()
                   if p.is_file() and p.name != ".lock"}   # the lock holds the pid
  before = files()
  proc = _run(TINY, NO_EXTRAS, "--config.noise=0.3", "--config.runner.allow_config_change=True",
              f"--workdir={tmp_path}")
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith(
      f"error (ConfigMismatchError): {tmp_path} holds a run made with a different config: "
      "['noise'] would change the data, the labels or the results"), proc.stderr
  assert files() == before
  # The same command, sliced differently, continues the run to its end.
  _ok(_run(TINY, NO_EXTRAS, "--config.runner.max_steps_per_invocation=0",
           f"--workdir={tmp_path}"))
  assert json.loads((tmp_path / "results.json").read_text())["noise"] == 0.5


@pytest.mark.slow
def test_a_sliced_job_ends_as_one_uninterrupted_run(tmp_path):
  # The README's advice for time-limited jobs: the same command with max_steps_per_invocation
  # until it finishes. One slice is killed mid-write of metrics.jsonl (a partial last line).
  ref, out = tmp_path / "ref", tmp_path / "sliced"
  _ok(_run(TINY, NO_EXTRAS, f"--workdir={ref}"))
  invocations = 0
  while not (out / "results.json").exists():
    invocations += 1
    assert invocations < 12, "the sliced job does not finish"
    proc = _ok(_run(TINY, NO_EXTRAS, "--config.runner.max_steps_per_invocation=7",
                    f"--workdir={out}"))
    if invocations == 2:
      with (out / "metrics.jsonl").open("a") as fh:
        fh.write('{"phase": "pretrain", "step": 3, "lo')
    if invocations == 3:
      assert "unreadable line(s) (line " in proc.stdout and "dropped" in proc.stdout
  assert invocations >= 5           # 5-6 slices of at most 7 steps (the tiny run: 36-43 steps)
  a = json.loads((ref / "results.json").read_text())
  b = json.loads((out / "results.json").read_text())
  for key in set(a) | set(b):
    if key not in ("label_issues", "wall_seconds_this_invocation",
                   "phase_seconds_this_invocation", "phase_seconds"):
      assert a.get(key) == b.get(key), key
  # The seconds of every phase count every slice: the phases that ran only in earlier slices
  # are there, with their time.
  assert set(b["phase_seconds"]) == set(a["phase_seconds"])
  earlier = set(b["phase_seconds"]) - set(b["phase_seconds_this_invocation"])
  assert earlier and all(b["phase_seconds"][k] > 0 for k in earlier)
  for k, v in b["phase_seconds_this_invocation"].items():
    assert b["phase_seconds"][k] >= v
  without_time = lambda d: [{k: v for k, v in json.loads(l).items() if k != "time"}
                            for l in (d / "metrics.jsonl").open()]
  assert without_time(ref) == without_time(out)
  # The same checkpoints are kept (max_to_keep 2), whatever existed at each resume.
  names = lambda d: sorted(p.name for p in (d / "checkpoints").iterdir())
  assert names(ref) == names(out) and len(names(out)) == 5    # 2 x (index, data) + index


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_sigterm_and_ctrl_c_save_a_checkpoint_at_a_step_boundary(tmp_path, sig):
  import signal  # pylint: disable=import-outside-toplevel
  import time  # pylint: disable=import-outside-toplevel
  args = (TINY, NO_EXTRAS, "--config.epochs=300", "--config.runner.checkpoint_every=1000",
          f"--workdir={tmp_path}")
  proc = cli.start("importance_learning/run.py", *args)
  metrics = tmp_path / "metrics.jsonl"
  deadline = time.monotonic() + 240
  while not (metrics.exists() and '"phase": "bilevel"' in metrics.read_text()):
    assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
    time.sleep(0.2)
  proc.send_signal(getattr(signal, sig))
  done = cli.communicate(proc, timeout=120)
  assert done.returncode == 128 + getattr(signal, sig), done.stderr[-2000:]
  assert "Traceback" not in done.stderr
  stopped = re.search(rf"\[bilevel\] stopped by {sig} at step (\d+) of 1800; checkpoint saved "
                      r"in .*Re-run the same command to continue\.", done.stdout)
  assert stopped, done.stdout[-2000:]
  step = int(stopped.group(1))
  assert 0 < step < 1800 and not (tmp_path / "results.json").exists()
  # The checkpoint holds exactly that step (no checkpoint was due: checkpoint_every 1000).
  resumed = _ok(_run(*args[:-1], "--config.runner.max_steps_per_invocation=1",
                     f"--workdir={tmp_path}"))
  assert f"'bilevel': {step}" in resumed.stdout, resumed.stdout[-2000:]
