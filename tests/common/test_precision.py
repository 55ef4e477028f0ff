"""Mixed precision: the dtype policy, float32 costs, float16 loss scaling, sane training."""

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from common import models, precision
from common import runner as runnerlib
from common.bilevel import ApproxGrad, Penalty, Plain, base
from common.config_checks import ConfigError
from common.problems import Classification
from common.problems import (DataParameters, ExampleReweighting, ImportanceProblem,
                             TemperatureScaledClassification)
from common import bilevel
from tests.quadratic import Quadratic

D, K, N = 20, 4, 64


def _model(name="float32", seed=0):
  keras.utils.set_random_seed(seed)
  with precision.policy(name):
    return keras.Sequential([keras.Input((D,)), keras.layers.Dense(32, activation="relu"),
                             keras.layers.Dense(K)])


def _data(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(N, D)).astype(np.float32)
  w = rng.normal(size=(D, K))
  return {"train": {"x": tf.constant(x), "y": tf.constant(np.argmax(x @ w, 1)),
                    "index": tf.range(N)},
          "val": {"x": tf.constant(x[::-1].copy()), "y": tf.constant(np.argmax(x[::-1] @ w, 1)),
                  "index": tf.range(N)}}


@pytest.mark.parametrize("name,compute", [("mixed_bfloat16", "bfloat16"),
                                          ("mixed_float16", "float16")])
def test_policy_gives_16_bit_compute_float32_weights_and_float32_costs(name, compute):
  before = keras.config.dtype_policy().name
  model = _model(name)
  assert keras.config.dtype_policy().name == before            # restored after the block
  assert model.layers[0].compute_dtype == compute
  assert all(v.dtype == "float32" for v in model.weights)
  v = base.values(model.trainable_variables)
  logits = models.forward(model, v, _data()["train"]["x"])
  assert logits.dtype == tf.float32


@pytest.mark.parametrize("name", ["mixed_bfloat16", "mixed_float16"])
def test_training_in_mixed_precision_tracks_float32(name):
  """100 Adam steps: the 16-bit run learns as the float32 run does (loss within 0.05)."""
  batch = _data()
  losses = {}
  for policy in ("float32", name):
    model = _model(policy)
    method = Plain(Classification(model), Plain.default_config())
    cfg = ml_collections.ConfigDict(runnerlib.default_config())
    cfg.precision = policy
    step = tf.function(runnerlib.Setup(cfg).wrap(base.combined_step(method.problem, method)))
    out = [float(step(batch)["g"]) for _ in range(100)]
    losses[policy] = out
  assert losses[name][-1] < 0.7 * losses[name][0]
  assert abs(losses[name][-1] - losses["float32"][-1]) < 0.05


def test_float16_loss_scale_rescues_gradients_that_underflow():
  model = _model("mixed_float16")
  batch = _data()
  v = base.values(model.trainable_variables)

  def grads(scale):
    with tf.GradientTape() as tape:
      tape.watch(v)
      logits = models.forward(model, v, batch["train"]["x"])
      # A tiny cost: its float16 backward pass underflows without scaling.
      cost = 1e-6 * tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          batch["train"]["y"], logits))
    with precision.loss_scale(scale):
      from common import distribute
      return [g.numpy() for g in distribute.gradients(tape, cost, v)]

  reference_model = _model("float32")
  reference_model.set_weights(model.get_weights())
  rv = base.values(reference_model.trainable_variables)
  with tf.GradientTape() as tape:
    tape.watch(rv)
    cost = 1e-6 * tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        batch["train"]["y"], models.forward(reference_model, rv, batch["train"]["x"])))
  exact = tape.gradient(cost, rv)[0].numpy()
  unscaled, scaled = grads(1.0)[0], grads(2.0**14)[0]
  lost = lambda g: np.mean((g == 0) & (exact != 0))
  assert lost(unscaled) > 0.5                     # most of the first kernel's gradient is gone
  assert lost(scaled) < 0.05
  cos = np.sum(scaled * exact) / np.linalg.norm(scaled) / np.linalg.norm(exact)
  assert cos > 0.99


def test_penalty_hypergradient_in_bfloat16_points_where_float32_does():
  batch = _data()
  hyper = {}
  for policy in ("float32", "mixed_bfloat16"):
    model = _model(policy)
    problem = ImportanceProblem(model, N, N)
    problem.z.assign(tf.linspace(-1.0, 1.0, N))
    hyper[policy] = Penalty(problem, Penalty.default_config()).hypergradient(batch)[0].numpy()
  a, b = hyper["float32"], hyper["mixed_bfloat16"]
  assert np.all(np.isfinite(b)) and np.abs(a).max() > 0
  assert np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b) > 0.98


def test_setup_errors_are_config_errors():
  cfg = ml_collections.ConfigDict(runnerlib.default_config())
  cfg.precision = "float8"
  with pytest.raises(ConfigError, match="Unknown runner.precision 'float8'"):
    runnerlib.Setup(cfg)
  cfg.precision = "mixed_float16"
  setup = runnerlib.Setup(cfg)
  problem = Quadratic()     # a problem whose costs do not declare they go through the helpers
  with pytest.raises(ConfigError, match="Quadratic take gradients without the float16 loss"):
    setup.check(problem, ApproxGrad(problem, ApproxGrad.default_config()))
  cfg.precision = "float32"
  with pytest.raises(ConfigError, match="does not support runner.precision"):
    runnerlib.Runner("/nonexistent/never/created", dict_to_runner(cfg, "mixed_bfloat16"), {},
                     ("a",))


def dict_to_runner(cfg, precision_name):
  out = ml_collections.ConfigDict(cfg)
  out.precision = precision_name
  return out


def _problem_for(name, model):
  interface = bilevel.get_method(name).problem_interface
  if name == "plain":
    return Classification(model)
  if interface is bilevel.ReweightingProblem:
    return ExampleReweighting(model, N, weight_decay=1e-3, num_train=N)
  if interface is bilevel.TemperatureProblem:
    cfg = DataParameters.default_config()
    cfg.learn_class_parameters = cfg.learn_inst_parameters = True
    return TemperatureScaledClassification(model, DataParameters.from_config(cfg, K, N))
  problem = ImportanceProblem(model, N, N, per_example_state=True)
  problem.z_all.assign(tf.linspace(-1.0, 1.0, N))
  return problem


@pytest.mark.parametrize("name", sorted(bilevel.METHODS))
def test_every_method_steps_in_mixed_bfloat16_as_in_float32(name):
  """Three steps of every registered method under mixed_bfloat16: float32 weights and state,
  finite metrics, and the model where the float32 run takes it (bfloat16 keeps 8 bits of
  mantissa, hence the loose match)."""
  batch = _data()
  runs = {}
  for policy in ("float32", "mixed_bfloat16"):
    model = _model(policy)
    problem = _problem_for(name, model)
    cfg = bilevel.get_method(name).default_config()
    bilevel.shrink_for_tiny({name: cfg})
    if name == "class_ratio":
      cfg.class_weights = (0.1, 0.2, 0.3, 0.4)
    method = bilevel.build_method(name, problem, cfg)
    step = tf.function(base.combined_step(problem, method))
    start = [w.numpy().copy() for w in model.trainable_variables]
    for _ in range(3):
      metrics = step(batch)
    assert all(np.isfinite(float(v)) for v in metrics.values()), (policy, metrics)
    assert all(v.dtype == tf.float32 for v in method.variables if v.dtype.is_floating), policy
    runs[policy] = [w.numpy() - w0 for w, w0 in zip(model.trainable_variables, start)]
  moved32 = np.concatenate([d.ravel() for d in runs["float32"]])
  moved16 = np.concatenate([d.ravel() for d in runs["mixed_bfloat16"]])
  assert np.linalg.norm(moved32) > 0
  cos = np.sum(moved32 * moved16) / np.linalg.norm(moved32) / np.linalg.norm(moved16)
  assert cos > 0.9, cos
