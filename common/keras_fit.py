"""Per-step methods (L2RW, proximal reweighting, the rule weights, data parameters) through
``keras.Model.fit``: callbacks, History, ``validation_data`` and the Keras progress bar as usual.

  problem = ExampleReweighting(model, batch_size, num_train=n)
  method = bilevel.build_method("l2rw", problem, bilevel.L2RW.default_config())
  trainer = MethodTrainer(model, problem, method, clean=clean_ds)
  history = trainer.fit(noisy_ds, epochs=10, validation_data=val_ds)   # or fit(x, y, ...)
  weights = problem.scores()           # each point's mean weight over the run

``noisy_ds`` yields the method's training batch, ``{"x", "y", "index"}`` (``index``: each row's
position in the training set); ``fit(x, y)`` with arrays builds those batches itself (the
problem's batch size, reshuffled every epoch, the last partial batch dropped). ``clean_ds``
(L2RW only) yields clean ``{"x", "y"}`` batches and is repeated. ``fit`` steps the method
exactly as ``bilevel.combined_step`` would (a test pins this), applies the method's epoch
schedule after every epoch, and evaluates ``validation_data`` (``{"x", "y"}`` or ``(x, y)``
batches) with the model alone: ``val_loss`` and ``val_accuracy``. The method, not a Keras
optimiser, updates the weights; the trainer's ``optimizer`` is a view of the method's learning
rate, so ``ReduceLROnPlateau`` and ``LearningRateScheduler`` change the rate the method steps
with. Logs are epoch means of the method's metrics, with ``loss`` its training objective.

Every training batch is checked inside the compiled step (labels in the model's classes,
``index`` within the problem's training set, the problem's batch size, finite inputs), and a
non-finite loss stops ``fit``: each is one ConfigError / NonFiniteError line that says what the
trainer expects, not an error from inside TensorFlow's graph.
"""

import math
import re

import keras
import numpy as np
import tensorflow as tf

from common import bilevel
from common.errors import ConfigError, NonFiniteError
from common.problems import cross_entropy


class _MethodRate(keras.optimizers.SGD):
  """What Keras' learning-rate callbacks read and set: the method's own rate(s). Setting a
  value scales every rate of the method by new / current (the first rate is the one read)."""

  def __init__(self, rates):
    super().__init__(learning_rate=float(rates[0].numpy()), name="method_rate")
    self._method_rates = list(rates)

  @property
  def learning_rate(self):
    return self._method_rates[0]

  @learning_rate.setter
  def learning_rate(self, value):
    if not hasattr(self, "_method_rates"):    # Keras' own __init__ sets it first
      keras.optimizers.SGD.learning_rate.fset(self, value)
      return
    current = float(self._method_rates[0].numpy())
    factor = float(value) / current if current else 0.0
    for rate in self._method_rates:
      rate.assign(float(value) if not current else rate * factor)


def _objective(metrics):
  """The method's training objective among its step metrics (the one logged as ``loss``)."""
  for key in ("loss", "weighted_loss", "mean_loss"):
    if key in metrics:
      return metrics[key]
  raise ValueError(f"the method's step returns no loss among {sorted(metrics)}")


class _Means:
  """The epoch means of the logs, held outside Keras' state tracking (their names are known
  only once the method's step has been traced, after the trainer is built)."""

  def __init__(self):
    self.train = {}
    self.val = {"loss": keras.metrics.Mean(name="loss"),
                "accuracy": keras.metrics.Mean(name="accuracy")}


class MethodTrainer(keras.Model):
  """Wraps ``model`` so that ``fit`` runs ``method`` on ``problem``."""

  def __init__(self, model, problem, method, clean=None, seed=0):
    super().__init__()
    if not isinstance(method, bilevel.Method) or method.needs_outer_variables:
      raise ValueError("MethodTrainer runs per-step methods (l2rw, proximal, the rule weights, "
                       "data_parameters); importance-variable methods need the two-level "
                       "protocol of importance_learning.")
    if isinstance(method, bilevel.L2RW) and clean is None:
      raise ValueError("L2RW weighs each batch against a clean one: pass clean=<dataset of "
                       "{'x', 'y'} batches>.")
    if not model.built or not model.weights:
      raise ValueError("the model has no weights yet: call it on a batch first "
                       "(model(x[:1])), then build the problem and the method.")
    self.inner = model
    self.problem, self.method = problem, method
    self.seed = int(seed)
    self._step = bilevel.combined_step(problem, method)
    self._clean = iter(clean.repeat()) if clean is not None else None
    self._clean_spec = clean.element_spec if clean is not None else None
    self._logs = _Means()
    rates = list(method.scheduled_rates())
    # The method's own compiled step, as the runner's.
    self.compile(optimizer=_MethodRate(rates) if rates else None, jit_compile=False)
    shape = model.inputs[0].shape if getattr(model, "inputs", None) else None
    if shape is not None:       # built now, so that callbacks can save its weights at once
      self(tf.zeros((1, *shape[1:]), model.inputs[0].dtype))

  @property
  def metrics(self):
    return [*self._logs.train.values(), *self._logs.val.values()]

  def call(self, x, training=False):
    return self.inner(x, training=training)

  def _check_batch(self, data):
    """Assertions on a training batch, compiled into the step; their messages start with
    ``fit:`` and ``fit`` turns a failed one into a ConfigError."""
    x, y, index = data["x"], data["y"], data["index"]
    checks = []
    size = getattr(self.problem, "batch_size", None)
    if size is not None:
      checks.append(tf.debugging.assert_equal(
          tf.shape(y)[0], int(size), message=f"fit: every batch must hold {int(size)} rows, the "
          "batch size the problem was built for (batch with drop_remainder=True)"))
    outputs = self.inner.outputs[0].shape[-1] if getattr(self.inner, "outputs", None) else None
    if outputs and outputs > 1:
      checks.append(tf.debugging.assert_less(
          tf.cast(tf.reduce_max(y), tf.int64), tf.constant(outputs, tf.int64),
          message=f"fit: labels 'y' must be class ids 0..{outputs - 1} for the model's "
          f"{outputs} outputs"))
    checks.append(tf.debugging.assert_non_negative(
        tf.cast(y, tf.int64), message="fit: labels 'y' must be class ids >= 0"))
    limit = self._index_limit()
    if limit is not None:
      checks.append(tf.debugging.assert_less(
          tf.cast(tf.reduce_max(index), tf.int64), tf.constant(limit, tf.int64),
          message=f"fit: 'index' must be 0..{limit - 1}, each row's position in the {limit} "
          "training points the problem was built for"))
      checks.append(tf.debugging.assert_non_negative(
          tf.cast(index, tf.int64), message="fit: 'index' must be >= 0"))
    if x.dtype.is_floating:
      checks.append(tf.debugging.assert_all_finite(
          x, message="fit: a batch holds NaN or infinite inputs; impute or drop those rows"))
    return checks

  def _index_limit(self):
    stored = getattr(self.problem, "weights_all", None)
    if stored is not None:
      return int(stored.shape[0])
    params = getattr(self.problem, "data_params", None)
    if params is not None:
      return int(params.inst_parameters.shape[0])
    return None

  def train_step(self, data):
    with tf.control_dependencies(self._check_batch(data)):
      data = tf.nest.map_structure(tf.identity, data)
    batch = {"train": data}
    if self._clean is not None:
      batch["val"] = next(self._clean)
    out = dict(self._step(batch))
    out["loss"] = _objective(out)
    for key, mean in self._logs.train.items():
      mean.update_state(out[key])
    return {key: mean.result() for key, mean in self._logs.train.items()}

  def test_step(self, data):
    x, y = (data["x"], data["y"]) if isinstance(data, dict) else data[:2]
    logits = tf.cast(self.inner(x, training=False), tf.float32)
    y = tf.cast(tf.reshape(y, [-1]), tf.int64)
    predicted = (tf.argmax(logits, -1) if logits.shape[-1] > 1
                 else tf.cast(logits[:, 0] > 0, tf.int64))
    n = tf.shape(y)[0]
    val = self._logs.val
    val["loss"].update_state(tf.reduce_mean(cross_entropy(logits, y)), sample_weight=n)
    val["accuracy"].update_state(
        tf.reduce_mean(tf.cast(tf.equal(predicted, y), tf.float32)), sample_weight=n)
    return {key: mean.result() for key, mean in val.items()}

  # -- the inputs ------------------------------------------------------------------------------

  def _batch_size(self, requested):
    own = getattr(self.problem, "batch_size", None)
    if own is not None and requested is not None and int(requested) != int(own):
      raise ConfigError(f"fit(batch_size={requested}) differs from the problem's batch size "
                        f"{own}: the method's step is built for batches of {own}.")
    return int(own or requested or 32)

  def _dataset(self, x, y, batch_size):
    """The ``{"x", "y", "index"}`` batches of arrays ``x``, ``y`` (ConfigError, one line, for
    labels that are not whole numbers or sizes that disagree)."""
    x = np.asarray(x)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
      raise ConfigError(f"fit(x, y) needs one integer label per row: x has {len(x)} rows, y "
                        f"has shape {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
      if not (np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y))
              and np.all(y == np.round(y))):
        raise ConfigError("fit(x, y): the labels must be class ids (whole numbers 0..K-1), "
                          f"got values such as {y[~(y == np.round(y))][:3].tolist()}.")
      y = y.astype(np.int64)
    outputs = self.inner.outputs[0].shape[-1] if getattr(self.inner, "outputs", None) else None
    if outputs and outputs > 1 and (y.min() < 0 or y.max() >= outputs):
      raise ConfigError(f"fit(x, y): labels must be 0..{outputs - 1} for the model's {outputs} "
                        f"outputs, got {int(y.min())}..{int(y.max())}.")
    if np.issubdtype(x.dtype, np.floating):
      bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
      if bad.any():
        raise ConfigError(f"fit(x, y): {int(bad.sum())} rows of x hold NaN or infinite values "
                          f"(the first: row {int(np.flatnonzero(bad)[0])}); impute or drop "
                          "them first.")
    n = len(y)
    size = self._batch_size(batch_size)
    if n < size:
      raise ConfigError(f"fit(x, y): {n} rows are fewer than one batch of {size}.")
    ds = tf.data.Dataset.from_tensor_slices({"x": x, "y": y, "index": np.arange(n)})
    return ds.shuffle(n, seed=self.seed, reshuffle_each_iteration=True).batch(
        size, drop_remainder=True)

  def _check_dataset(self, ds):
    spec = getattr(ds, "element_spec", None)
    if not isinstance(spec, dict) or not {"x", "y", "index"} <= set(spec):
      got = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
      raise ConfigError("fit needs batches of {'x', 'y', 'index'} ('index': each row's "
                        f"position in the training set), got {got}; or pass arrays, "
                        "fit(x, y).")
    if not spec["y"].dtype.is_integer:
      raise ConfigError(f"fit: the batches' labels 'y' are {spec['y'].dtype.name}; give class "
                        "ids as integers (ds.map(lambda b: {**b, 'y': tf.cast(b['y'], "
                        "tf.int64)}) if they are whole numbers).")

  def fit(self, x=None, y=None, batch_size=None, callbacks=None, **kwargs):  # pylint: disable=arguments-differ
    if y is not None:
      x = self._dataset(x, y, batch_size)
    else:
      if batch_size is not None:
        raise ConfigError("fit(dataset, batch_size=...): a dataset is batched already; "
                          "batch_size applies to arrays, fit(x, y).")
      self._check_dataset(x)
    if not self._logs.train:
      spec = {"train": x.element_spec}
      if self._clean_spec is not None:
        spec["val"] = self._clean_spec
      keys = ["loss", *tf.function(self._step).get_concrete_function(spec).structured_outputs]
      self._logs.train = {k: keras.metrics.Mean(name=k) for k in dict.fromkeys(keys)}
    schedule = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: self.method.end_epoch(epoch + 1))
    kwargs.setdefault("shuffle", False)   # a tf.data pipeline shuffles itself
    try:
      return super().fit(x, callbacks=[schedule, _NonFiniteGuard(), *(callbacks or [])],
                         **kwargs)
    except tf.errors.InvalidArgumentError as e:
      # The assertion's message, as TF quotes it: "[fit: ...]" or "fit: ... : Tensor had NaN".
      found = re.search(r"(fit: .*?)(?:\]| : Tensor |\n|$)", e.message)
      if not found:
        raise
      raise ConfigError(found.group(1).replace("\\'", "'").rstrip(" .") + ".") from None


class _NonFiniteGuard(keras.callbacks.Callback):
  """Stops ``fit`` at the first step whose loss is NaN or infinite (the runner's guard)."""

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    loss = float((logs or {}).get("loss", 0.0))
    if not math.isfinite(loss):
      raise NonFiniteError(
          f"fit: the loss became {loss} at step {batch + 1} of epoch {self.epoch + 1}: the "
          "method diverged (lower its learning rate); the model's weights are not finite.")
