"""Per-step methods (L2RW, proximal reweighting, the rule weights, data parameters) through
``keras.Model.fit``: callbacks, History, ``validation_data`` and the Keras progress bar as usual.

  problem = ExampleReweighting(model, batch_size, num_train=n)
  method = bilevel.build_method("l2rw", problem, bilevel.L2RW.default_config())
  trainer = MethodTrainer(model, problem, method, clean=clean_ds)
  history = trainer.fit(noisy_ds, epochs=10, validation_data=val_ds)
  weights = problem.scores()           # each point's mean weight over the run

``noisy_ds`` yields the method's training batch, ``{"x", "y", "index"}`` (``index``: each row's
position in the training set); ``clean_ds`` (L2RW only) yields clean ``{"x", "y"}`` batches and
is repeated. ``fit`` steps the method exactly as ``bilevel.combined_step`` would (a test pins
this), applies the method's epoch schedule after every epoch, and evaluates
``validation_data`` (``{"x", "y"}`` or ``(x, y)`` batches) with the model alone: ``val_loss``
and ``val_accuracy``. The method, not a Keras optimiser, updates the weights.
"""

import keras
import tensorflow as tf

from common import bilevel
from common.problems import cross_entropy


class MethodTrainer(keras.Model):
  """Wraps ``model`` so that ``fit`` runs ``method`` on ``problem``."""

  def __init__(self, model, problem, method, clean=None):
    super().__init__()
    if not isinstance(method, bilevel.Method) or method.needs_outer_variables:
      raise ValueError("MethodTrainer runs per-step methods (l2rw, proximal, the rule weights, "
                       "data_parameters); importance-variable methods need the two-level "
                       "protocol of importance_learning.")
    if isinstance(method, bilevel.L2RW) and clean is None:
      raise ValueError("L2RW weighs each batch against a clean one: pass clean=<dataset of "
                       "{'x', 'y'} batches>.")
    self.inner = model
    self.problem, self.method = problem, method
    self._step = bilevel.combined_step(problem, method)
    self._clean = iter(clean.repeat()) if clean is not None else None
    self.compile(jit_compile=False)    # the method's own compiled step, as the runner's

  def call(self, x, training=False):
    return self.inner(x, training=training)

  def train_step(self, data):
    batch = {"train": data}
    if self._clean is not None:
      batch["val"] = next(self._clean)
    return self._step(batch)

  def test_step(self, data):
    x, y = (data["x"], data["y"]) if isinstance(data, dict) else data[:2]
    logits = tf.cast(self.inner(x, training=False), tf.float32)
    y = tf.cast(tf.reshape(y, [-1]), tf.int64)
    predicted = (tf.argmax(logits, -1) if logits.shape[-1] > 1
                 else tf.cast(logits[:, 0] > 0, tf.int64))
    return {"loss": tf.reduce_mean(cross_entropy(logits, y)),
            "accuracy": tf.reduce_mean(tf.cast(tf.equal(predicted, y), tf.float32))}

  def fit(self, *args, callbacks=None, **kwargs):  # pylint: disable=arguments-differ
    schedule = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: self.method.end_epoch(epoch + 1))
    kwargs.setdefault("shuffle", False)   # a tf.data pipeline shuffles itself
    return super().fit(*args, callbacks=[schedule, *(callbacks or [])], **kwargs)
