"""curriculum/run.py through its real command line, and the training step it runs."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from curriculum import experiment as curriculum_experiment
from curriculum.configs import base as curriculum_base
from tests import cli

TINY = "--config=curriculum/configs/default.py:tiny"


def _run(*args, timeout=300):
  return cli.run("curriculum/run.py", *args, timeout=timeout)


def test_training_step_is_coupled_l2_momentum_sgd_plus_sparse_data_parameters():
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((3,), dtype="float64"),
                            keras.layers.Dense(4, dtype="float64")])
  cfg = curriculum_base.base().training
  cfg.update(dict(lr=0.1, momentum=0.9, weight_decay=0.01))
  cfg.data_params.update(dict(learn_inst_parameters=True, lr_inst_param=0.2))
  method = curriculum_experiment._method(model, cfg, 4, 6)
  dp = method.problem.data_params
  # float64 model, float32 data parameters (as the original's tensors).
  x = tf.constant(np.random.default_rng(1).normal(size=(3, 3)))
  y, index = tf.constant([0, 2, 2]), tf.constant([1, 4, 4], tf.int64)
  v0 = [w.numpy().copy() for w in model.trainable_variables]
  s0 = dp.inst_parameters.numpy().copy()
  v = [tf.convert_to_tensor(w) for w in model.trainable_variables]
  with tf.GradientTape() as tape:
    tape.watch(v)
    logits = tf.matmul(x, v[0]) + v[1]
    sigma = tf.cast(tf.exp(tf.gather(dp.inst_parameters, index)), tf.float64)
    ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=y, logits=logits / sigma[:, None]))
  g = tape.gradient(ce, v)
  method.step({"train": {"x": x, "y": y, "index": index}})
  for w, w0, gw in zip(model.trainable_variables, v0, g):
    np.testing.assert_allclose(w.numpy(), w0 - 0.1 * (gw.numpy() + 0.01 * w0), rtol=1e-10)
  s = dp.inst_parameters.numpy()
  # Only the rows in the batch move; the duplicate row 4 moved once with the summed gradient.
  np.testing.assert_array_equal(s[[0, 2, 3, 5]], s0[[0, 2, 3, 5]])
  assert s[1] != s0[1] and s[4] != s0[4]
  # Epoch schedule: x0.1 after the milestone epochs.
  method.end_epoch(80)
  assert float(method.opt.learning_rate) == pytest.approx(0.01)
  method.end_epoch(81)
  assert float(method.opt.learning_rate) == pytest.approx(0.01)


@pytest.mark.slow
def test_tiny_run_end_to_end_and_resume(tmp_path):
  proc = cli.ok(_run(TINY, f"--workdir={tmp_path}"))
  assert "baseline (no data parameters)" in proc.stdout and "ROC AUC of sigma" in proc.stdout
  assert "scaled by 0.25" in proc.stdout
  res = json.loads((tmp_path / "results.json").read_text())
  assert res["num_train"] == 2500 and 0 < res["num_corrupted"] <= 1000
  for key in ("baseline_test_accuracy", "data_parameters_test_accuracy",
              "data_parameters_test_accuracy_at_report_epoch", "inst_sigma_roc_auc"):
    assert key in res, key
  sig = np.load(tmp_path / "sigmas_instance.npy")
  assert sig.shape == (2500,) and (sig >= 0.05 - 1e-6).all() and (sig <= 20 + 1e-4).all()
  # The instance temperature is scored by the same detection metrics as every other method:
  # flagged where sigma rose above its initial 1, ROC AUC of sigma.
  det = res["inst_sigma_detection"]
  assert det["flagged"] == int((sig > 1.0).sum()) and det["roc_auc"] == res["inst_sigma_roc_auc"]
  assert "sigma above its initial value flags" in proc.stdout
  assert (tmp_path / "data_parameters.png").stat().st_size > 10_000
  recs = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()]
  ep = [r for r in recs if r["phase"] == "data_parameters" and r["kind"] == "epoch"]
  assert len(ep) == 2 and all("inst_sigma_corrupted_mean" in r and "inst_sigma_highest" in r
                              for r in ep)
  events = list((tmp_path / "tensorboard").glob("events.*"))
  assert events and sum(e.stat().st_size for e in events) > 1000
  again = cli.ok(_run(TINY, f"--workdir={tmp_path}"))
  assert again.stdout.count("already complete") == 2


@pytest.mark.parametrize("args, message", [
    (["--config.noise=1.5"], "noise must be a fraction in [0, 1], got 1.5"),
    (["--config.noise_type=gaussian"], "Unknown noise_type 'gaussian'"),
    (["--config.training.data_params.learn_inst_parameters=False"], "learns nothing"),
    (["--config.training.data_params.init_inst_param=0.0"], "must be > 0"),
    (["--config.dataset=cifar100", "--config.split=all_train", "--config.source=files",
      "--config.data_dir=/nonexistent"], "does not exist"),
    (["--config.dataset=cifar100"], "Unknown source 'embedded' for dataset 'cifar100'"),
    (["--config.report_epoch=50"], "report_epoch must lie in [0, epochs = 2] (0: none), got 50"),
    (["--config.batch_size=100000"], "error (ConfigError): train: 2500 examples are fewer than "
     "one batch of 100000; lower the config's batch size"),
])
def test_bad_input_fails_fast(tmp_path, args, message):
  workdir = tmp_path / "w"
  proc = _run(TINY, f"--workdir={workdir}", *args, timeout=120)
  assert proc.returncode != 0 and message in proc.stdout + proc.stderr, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert not workdir.exists()


def _fake_imagenet(root):
  """3 classes in the ILSVRC folder layout, JPEGs of assorted sizes, 6 training and 2
  validation images per class."""
  rng = np.random.default_rng(0)
  for split, n in (("training", 6), ("validation", 2)):
    for c, wnid in enumerate(("n01440764", "n01443537", "n01484850")):
      for i in range(n):
        h, w = rng.integers(36, 80, 2)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img[..., c] = 220
        path = root / split / wnid / f"{wnid}_{i}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        tf.io.write_file(str(path), tf.io.encode_jpeg(img))
  return root


@pytest.mark.slow
def test_imagenet_joint_row_end_to_end_on_an_image_folder(tmp_path):
  data = _fake_imagenet(tmp_path / "ilsvrc")
  work = tmp_path / "w"
  proc = cli.ok(_run("--config=curriculum/configs/imagenet.py:joint,tiny",
                     f"--config.data_dir={data}", f"--workdir={work}"))
  assert "top-5 (final)" in proc.stdout and "train 18 (0 labels corrupted" in proc.stdout
  res = json.loads((work / "results.json").read_text())
  for name in ("baseline", "data_parameters"):
    assert 0 <= res[f"{name}_test_accuracy"] <= res[f"{name}_test_top5_accuracy"] == 1.0
  # Joint recipe: sigma_inst starts at 0.001, below the floor, so the clamp lifts every entry
  # to 0.05 after step 1; 8 steps of lr 0.8 then move only the entries that were in batches.
  inst, cls = np.load(work / "sigmas_instance.npy"), np.load(work / "sigmas_class.npy")
  assert inst.shape == (18,) and cls.shape == (3,)
  assert (inst >= 0.05 - 1e-6).all() and np.isclose(inst, 0.05, rtol=1e-5).any()
  assert not np.allclose(cls, 1.0)
  recs = [json.loads(l) for l in (work / "metrics.jsonl").open()]
  ep = [r for r in recs if r["phase"] == "data_parameters" and r["kind"] == "epoch"]
  assert len(ep) == 2 and all("test_top5_accuracy" in r and "class_sigma_mean" in r for r in ep)


def test_imagenet_without_data_dir_fails_fast(tmp_path):
  workdir = tmp_path / "w"
  proc = _run("--config=curriculum/configs/imagenet.py:tiny", f"--workdir={workdir}",
              timeout=120)
  assert proc.returncode != 0
  assert "data_dir is empty" in proc.stdout + proc.stderr and "training/" in proc.stderr + \
      proc.stdout
  assert not workdir.exists()


def test_inference_ignores_data_parameters():
  """The run's test evaluation uses the bare model's unscaled logits: moving the class and
  instance parameters anywhere (which does change the training loss) leaves every prediction,
  and the evaluated accuracy, exactly as it was."""
  from common import models
  from curriculum import experiment
  from curriculum.configs import default

  config = default.get_config("tiny")
  config.training.data_params.learn_class_parameters = True
  data = experiment._load_data(config, log=lambda *_: None)
  keras.utils.set_random_seed(0)
  model = models.build(config.model, data.input_shape, data.num_classes)
  method = curriculum_experiment._method(model, config.training, data.num_classes, data.n)
  for s in range(5):
    method.step({"train": data.batcher.epoch_batch(s)})
  batch = {"train": data.batcher.epoch_batch(5)}
  x_probe = batch["train"]["x"]
  before_logits = model.predict_on_batch(x_probe)
  before = data.test.evaluate(model)
  dp = method.problem.data_params
  loss_before = float(_loss_only(method, batch))
  rng = np.random.default_rng(3)
  dp.class_parameters.assign(rng.uniform(-3, 3, dp.class_parameters.shape).astype(np.float32))
  dp.inst_parameters.assign(rng.uniform(-3, 3, dp.inst_parameters.shape).astype(np.float32))
  assert abs(float(_loss_only(method, batch)) - loss_before) > 1e-3   # they matter in training
  np.testing.assert_array_equal(model.predict_on_batch(x_probe), before_logits)
  assert data.test.evaluate(model) == before
  assert 0.0 < before[1] < 1.0


def _loss_only(method, batch):
  b = batch["train"]
  y = tf.cast(b["y"], tf.int32)
  logits = method.problem.model(b["x"], training=False)
  scaled = method.problem.data_params.scale_logits(logits, y, b["index"])
  ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=scaled))
  return ce + method.problem.data_params.penalty(y, b["index"])
