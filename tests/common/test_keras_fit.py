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


def test_reduce_lr_on_plateau_changes_the_rate_the_method_steps_with():
  noisy, clean = _data()
  model, problem, method = _build("uniform")
  method.config.lr_decay_every_epochs = 0       # only the callback moves the rate
  trainer = MethodTrainer(model, problem, method)
  rate = method.scheduled_rates()[0]
  assert float(trainer.optimizer.learning_rate.numpy()) == pytest.approx(0.05)
  # monitor a metric that never improves: every epoch after the first is a plateau.
  history = trainer.fit(noisy, epochs=3, verbose=0, callbacks=[
      keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: logs.update(zero=1.0)),
      keras.callbacks.ReduceLROnPlateau(monitor="zero", patience=0, factor=0.5,
                                        min_delta=1.0, mode="min")])
  assert float(rate.numpy()) == pytest.approx(0.05 * 0.5 ** 2)
  assert history.history["lr"][-1] == pytest.approx(0.05 * 0.5)   # epoch 3 stepped at 0.025
  sched = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 * (epoch + 1))
  trainer.fit(noisy, epochs=2, verbose=0, callbacks=[sched])
  assert float(rate.numpy()) == pytest.approx(0.02)


def test_logs_are_epoch_means_with_the_methods_loss():
  noisy, clean = _data()
  model, problem, method = _build("l2rw")
  step = tf.function(bilevel.combined_step(problem, method))
  clean_batch = next(iter(clean))
  per_batch = [step({"train": b, "val": clean_batch}) for b in noisy]
  expected = np.mean([float(m["weighted_loss"]) for m in per_batch])
  model, problem, method = _build("l2rw")
  trainer = MethodTrainer(model, problem, method, clean=clean)
  history = trainer.fit(noisy, epochs=1, verbose=0, validation_data=noisy)
  assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)
  assert history.history["weighted_loss"][0] == pytest.approx(expected, rel=1e-5)
  # Validation over all six batches, not the last one.
  x = np.concatenate([b["x"].numpy() for b in noisy])
  y = np.concatenate([b["y"].numpy() for b in noisy])
  acc = float(np.mean(np.argmax(model(x), -1) == y))
  assert history.history["val_accuracy"][0] == pytest.approx(acc)


def test_arrays_fit_and_bad_inputs_are_one_line_errors(tmp_path):
  from common.errors import ConfigError  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  x = rng.normal(size=(N, 3)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int64)
  model, problem, method = _build("uniform")
  method.config.lr_decay_every_epochs = 0
  trainer = MethodTrainer(model, problem, method)
  # Built at construction: a checkpoint callback can save the weights from the first epoch.
  path = str(tmp_path / "w.weights.h5")
  history = trainer.fit(x, y, epochs=10, verbose=0, callbacks=[
      keras.callbacks.ModelCheckpoint(path, save_weights_only=True)])
  assert (tmp_path / "w.weights.h5").exists()
  assert history.history["loss"][-1] < history.history["loss"][0]
  assert np.mean(np.argmax(model(x), -1) == y) > 0.9
  assert problem.scores().shape == (N,)
  trainer.fit(x, y.astype(np.float32), epochs=1, verbose=0)     # whole numbers: accepted
  with pytest.raises(ConfigError, match=r"class ids .* such as \[[01]\.5"):
    trainer.fit(x, np.where(y == 1, 1.5, 0.5), epochs=1, verbose=0)
  with pytest.raises(ConfigError, match=r"labels must be 0..1 for the model's 2 outputs, got "
                                        r"0..2"):
    trainer.fit(x, np.where(y == 1, 2, 0), epochs=1, verbose=0)
  nan = x.copy()
  nan[7, 2] = np.nan
  with pytest.raises(ConfigError, match=r"1 rows of x hold NaN .* row 7"):
    trainer.fit(nan, y, epochs=1, verbose=0)
  with pytest.raises(ConfigError, match="differs from the problem's batch size 40"):
    trainer.fit(x, y, batch_size=32, epochs=1, verbose=0)
  no_index = tf.data.Dataset.from_tensor_slices({"x": x, "y": y}).batch(BATCH)
  with pytest.raises(ConfigError, match=r"batches of \{'x', 'y', 'index'\}.*got \['x', 'y'\]"):
    trainer.fit(no_index, epochs=1, verbose=0)
  floats = tf.data.Dataset.from_tensor_slices({"x": x, "y": y.astype(np.float32),
                                               "index": np.arange(N)}).batch(BATCH)
  with pytest.raises(ConfigError, match="labels 'y' are float32"):
    trainer.fit(floats, epochs=1, verbose=0)


def test_softmax_and_unbuilt_models_are_refused_with_what_to_do():
  from common.errors import ConfigError  # pylint: disable=import-outside-toplevel
  soft = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
  rw = problems.ExampleReweighting(soft, BATCH, num_train=N)
  with pytest.raises(ConfigError, match="ends in a softmax: return logits"):
    bilevel.build_method("uniform", rw, bilevel.UniformWeights.default_config())

  class Net(keras.Model):
    def __init__(self):
      super().__init__()
      self.dense = keras.layers.Dense(2)

    def call(self, x):
      return self.dense(x)

  net = Net()
  rw = problems.ExampleReweighting(net, BATCH, num_train=N)
  with pytest.raises(ConfigError, match=r"call it on a batch \(model\(x\[:1\]\)\)"):
    bilevel.build_method("uniform", rw, bilevel.UniformWeights.default_config())


def test_bad_batches_of_a_dataset_are_one_line_errors_at_the_step():
  from common.errors import ConfigError, NonFiniteError  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  x = rng.normal(size=(N, 3)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int64)

  def ds(x=x, y=y, index=np.arange(N), batch=BATCH):
    return tf.data.Dataset.from_tensor_slices({"x": x, "y": y, "index": index}).batch(batch)
  model, problem, method = _build("uniform")
  trainer = MethodTrainer(model, problem, method)
  trainer.fit(ds(), epochs=1, verbose=0)          # the checks pass on good batches
  late = y.copy()
  late[-1] = 2                                    # in the last batch only
  cases = [
      (ds(y=late), r"^fit: labels 'y' must be class ids 0..1 for the model's 2 outputs\.$"),
      (ds(y=np.where(y == 1, 1, -1)), r"^fit: labels 'y' must be class ids >= 0\.$"),
      (ds(index=np.arange(N) + 1), r"^fit: 'index' must be 0..239, each row's position in the "
                                   r"240 training points the problem was built for\.$"),
      (ds(batch=30), r"^fit: every batch must hold 40 rows, the batch size the problem was "
                     r"built for \(batch with drop_remainder=True\)\.$"),
      (ds(batch=50), r"^fit: every batch must hold 40 rows"),   # the last, partial batch too
  ]
  nan = x.copy()
  nan[200, 1] = np.nan
  cases.append((ds(x=nan), r"^fit: a batch holds NaN or infinite inputs; impute or drop those "
                           r"rows\.$"))
  for data, message in cases:
    with pytest.raises(ConfigError, match=message):
      trainer.fit(data, epochs=1, verbose=0)
  model2, problem2, method2 = _build("uniform")
  method2.opt.learning_rate.assign(1e30)          # a diverging step: the loss turns NaN
  with pytest.raises(NonFiniteError, match=r"^fit: the loss became (nan|inf) at step \d+ of "
                                           r"epoch 1: the method diverged"):
    MethodTrainer(model2, problem2, method2).fit(ds(x=x * 1e3), epochs=3, verbose=0)
