"""keras.Model.fit through MethodTrainer equals the method's own steps on the same batches."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import bilevel
from common import problems
from common.keras_fit import MethodTrainer

N, BATCH = 240, 40


def _data(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(N, 3)).astype(np.float32)
  y = np.where(rng.random(N) < 0.3, 1 - (x[:, 0] > 0), x[:, 0] > 0).astype(np.int64)
  noisy = tf.data.Dataset.from_tensor_slices({"x": x, "y": y, "index": np.arange(N)}).batch(BATCH)
  clean = tf.data.Dataset.from_tensor_slices({"x": x[:BATCH], "y": (x[:BATCH, 0] > 0)
                                              .astype(np.int64)}).batch(BATCH)
  return noisy, clean


def _build(name):
  keras.utils.set_random_seed(1)
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu"),
                            keras.layers.Dense(2)])
  if name == "data_parameters":
    dp_cfg = problems.DataParameters.default_config()
    dp_cfg.update({"learn_class_parameters": True, "learn_inst_parameters": True})
    problem = problems.TemperatureScaledClassification(
        model, problems.DataParameters.from_config(dp_cfg, 2, N))
    cfg = bilevel.DataParameterDescent.default_config()
    cfg.update({"lr": 0.05, "lr_milestones_epochs": (1,)})   # the schedule acts after epoch 1
    cfg.data_params = dp_cfg
  else:
    problem = problems.ExampleReweighting(model, BATCH, num_train=N)
    cfg = bilevel.get_method(name).default_config()
    cfg.update({"lr": 0.05, "lr_decay_every_epochs": 1})
  return model, problem, bilevel.build_method(name, problem, cfg)


def _state(model, problem):
  out = [v.numpy() for v in model.trainable_variables]
  if isinstance(problem, problems.ExampleReweighting):
    out.append(problem.scores())
  else:
    out += [problem.data_params.inst_parameters.numpy(),
            problem.data_params.class_parameters.numpy()]
  return out


@pytest.mark.parametrize("name", ["l2rw", "uniform", "data_parameters"])
def test_fit_equals_the_methods_own_steps(name):
  noisy, clean = _data()
  model, problem, method = _build(name)
  step = tf.function(bilevel.combined_step(problem, method))
  clean_batch = next(iter(clean))
  for epoch in range(2):
    for batch in noisy:
      step({"train": batch, "val": clean_batch})
    method.end_epoch(epoch + 1)
  expected = _state(model, problem)

  model, problem, method = _build(name)
  trainer = MethodTrainer(model, problem, method, clean=clean if name == "l2rw" else None)
  history = trainer.fit(noisy, epochs=2, verbose=0, validation_data=clean)
  for got, want in zip(_state(model, problem), expected):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  assert {"val_loss", "val_accuracy"} <= set(history.history)
  assert len(history.history["val_loss"]) == 2
  x, y = next(iter(clean.map(lambda b: (b["x"], b["y"]))))
  acc = float(np.mean(np.argmax(model(x), -1) == y.numpy()))
  assert history.history["val_accuracy"][-1] == pytest.approx(acc)


def test_importance_methods_and_missing_clean_batches_are_refused():
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  imp = problems.ImportanceProblem(model, N, BATCH)
  with pytest.raises(ValueError, match="per-step methods"):
    MethodTrainer(model, imp, bilevel.build_method("penalty", imp,
                                                   bilevel.Penalty.default_config()))
  rw = problems.ExampleReweighting(model, BATCH, num_train=N)
  with pytest.raises(ValueError, match="pass clean="):
    MethodTrainer(model, rw, bilevel.build_method("l2rw", rw, bilevel.L2RW.default_config()))
