"""The curriculum family under tf.distribute: the ``data_parameters`` method's step (class and
instance temperatures with their penalty, duplicate indices within and across the replicas'
rows) over two logical CPU devices (conftest splits the CPU) equals the one-device step in
float64, every variable's copies included, also under float16's loss scale (divided out of the
temperatures' sparse gradients); the command line runs mirrored; a model whose batch norm or
dropout would differ per replica is refused in one line."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import distribute
from common import precision
from tests import replication
from common import runner as runnerlib
from common.errors import ConfigError
from curriculum import experiment
from curriculum.configs import base as curriculum_base
from curriculum.configs import default as curriculum_default
from tests import cli

N, D, K, NUM_TRAIN = 8, 5, 3, 12
TINY = "--config=curriculum/configs/default.py:tiny"


def _batches(steps=3):
  rng = np.random.default_rng(0)
  out = []
  for _ in range(steps):
    # Index 5 twice in replica 0's rows, index 1 in both replicas' rows.
    index = np.concatenate([[5, 5, 1], rng.choice([0, 2, 3, 4], 1),
                            [1], rng.choice(np.arange(6, NUM_TRAIN), 3, replace=False)])
    out.append({"train": {"x": rng.normal(size=(N, D)), "y": rng.integers(0, K, N),
                          "index": index.astype(np.int64)}})
  return out


def _build(kind):
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((D,), dtype="float64"),
                            keras.layers.Dense(6, activation="tanh", dtype="float64"),
                            keras.layers.Dense(K, dtype="float64")])
  cfg = curriculum_base.base().training
  cfg.update(dict(lr=0.3, momentum=0.9, weight_decay=0.01))
  learn = kind == "data_parameters"
  cfg.data_params.update(dict(learn_class_parameters=learn, learn_inst_parameters=learn,
                              lr_class_param=0.5, lr_inst_param=0.8, wd_class_param=0.1,
                              wd_inst_param=0.05, init_inst_param=0.5))
  dp = experiment.problemlib.DataParameters.from_config(cfg.data_params, K, NUM_TRAIN,
                                                        dtype=tf.float64)
  problem = experiment.problemlib.TemperatureScaledClassification(model, dp)
  method = experiment.bilevel.build_method("data_parameters", problem, cfg)
  return model, problem, method


def _run(kind, strategy):
  with distribute.scope(strategy):
    model, problem, method = _build(kind)
  distribute.check_supported(strategy, problem, method)
  step = method.step if strategy is None else distribute.replicated(strategy, method.step)
  step = tf.function(step)
  metrics = [{k: float(v) for k, v in step(b).items()} for b in _batches()]
  variables = list(model.weights) + list(problem.data_params.variables) + list(method.variables)
  return metrics, {f"{i}:{v.name}": replication.copies(v) for i, v in enumerate(variables)}


@pytest.mark.parametrize("kind", ["data_parameters", "baseline"])
def test_data_parameters_over_two_replicas_equal_one_device(kind):
  one_metrics, one_state = _run(kind, None)
  two_metrics, two_state = _run(kind, replication.mirrored())
  replication.assert_same_run(one_metrics, one_state, two_metrics, two_state, kind)
  if kind == "data_parameters":       # the temperatures moved, in the batches' rows only
    inst = next(v for k, v in one_state.items() if "inst_parameters" in k)[0]
    seen = np.unique(np.concatenate([b["train"]["index"] for b in _batches()]))
    assert not np.allclose(inst[seen], np.log(0.5))
    unseen = np.setdiff1d(np.arange(NUM_TRAIN), seen)
    np.testing.assert_array_equal(inst[unseen], np.float64(np.log(0.5)))


def test_batch_norm_and_dropout_are_refused_in_one_line():
  bn = keras.Sequential([keras.Input((D,)), keras.layers.Dense(4),
                         keras.layers.BatchNormalization(), keras.layers.Dropout(0.5),
                         keras.layers.Dense(K)])
  with pytest.raises(ConfigError, match="has batch normalisation and dropout layers, whose "
                                        "batch statistics or masks would differ per replica"):
    experiment.check_replicable("wrn28_10_dp", bn, 2)
  experiment.check_replicable("wrn28_10_dp", bn, 1)        # one device: nothing to refuse


@pytest.mark.parametrize("replicated", [False, True])
def test_float16_loss_scale_is_divided_out_of_the_sparse_temperature_gradients(replicated):
  """Under the loss scale (a power of 2, so exact in float64) the step is the unscaled one:
  the temperatures' tf.IndexedSlices gradients are unscaled too."""
  runner = runnerlib.default_config()
  runner.precision = "mixed_float16"
  _, problem, method = _build("data_parameters")
  runnerlib.Setup(runner).check(method, problem)           # accepted
  want_metrics, want_state = _run("data_parameters", None)
  with precision.loss_scale(1024.0):
    got_metrics, got_state = _run("data_parameters",
                                  replication.mirrored() if replicated else None)
  for want, got in zip(want_metrics, got_metrics):
    for k in want:
      np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-12, err_msg=k)
  for k, (want,) in want_state.items():
    for copy in got_state[k]:
      np.testing.assert_allclose(copy, want, rtol=1e-9, atol=1e-12, err_msg=k)


@pytest.mark.slow
def test_tiny_run_mirrored_gives_the_one_device_results(tmp_path):
  """The tiny job's data-parameters phase mirrored over two logical CPUs through the command
  line, beside the same job on one device in this process (float32: the same up to summation
  order). Op determinism stays off: in this process it would outlive the test."""
  two = cli.start("curriculum/run.py", TINY, "--config.baseline_enabled=False",
                  "--config.deterministic=False", f"--workdir={tmp_path / 'two'}", *cli.MIRRORED)
  config = curriculum_default.get_config("tiny")
  config.baseline_enabled, config.deterministic = False, False
  one = experiment.run(config, str(tmp_path / "one"), log=lambda *_: None)
  assert "Data-parallel over 2 replicas (MirroredStrategy)" in cli.finish(two)
  two = json.loads((tmp_path / "two" / "results.json").read_text())
  for key in ("data_parameters_test_accuracy", "inst_sigma_corrupted_mean",
              "inst_sigma_clean_mean", "inst_sigma_roc_auc"):
    assert np.isfinite(two[key]) and two[key] == pytest.approx(one[key], rel=1e-4), key
  np.testing.assert_allclose(np.load(tmp_path / "two" / "sigmas_instance.npy"),
                             np.load(tmp_path / "one" / "sigmas_instance.npy"), rtol=1e-4)
