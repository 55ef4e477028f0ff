"""Mixed precision: Keras dtype policies for the models, and loss scaling for float16.

``runner.precision`` is ``float32`` (default), ``mixed_bfloat16`` or ``mixed_float16``. Models
built inside ``policy(name)`` compute in 16 bits and keep float32 weights (Keras' mixed
policies); ``models.forward`` casts their logits to float32, so every cost, gradient,
optimiser state and bilevel variable stays float32. bfloat16 has float32's exponent range and
needs nothing more. float16 does not: small gradients underflow, so every gradient taken
through ``distribute.gradients`` is computed from the cost times a constant loss scale
(``runner.loss_scale``) and divided by it afterwards; inside the compiled step the scale is
set by ``loss_scale(...)``. The scale is static: a bilevel step applies several updates and
cannot be skipped whole the way Keras' dynamic scaling skips one optimizer step, so an
overflow shows up as a non-finite metric and the runner stops with its step number (lower
the scale, or use bfloat16).
"""

import contextlib
import contextvars

import keras
import tensorflow as tf

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")

_loss_scale = contextvars.ContextVar("loss_scale", default=1.0)


def check(name):
  if name not in PRECISIONS:
    raise ValueError(f"Unknown runner.precision {name!r}; choose from {list(PRECISIONS)}.")
  return name


@contextlib.contextmanager
def policy(name):
  """Build models inside this block to give them the ``name`` dtype policy."""
  check(name)
  if name == "float32":
    yield
    return
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(name)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def loss_scale(scale):
  """Gradients taken (traced) inside this block scale the cost by ``scale``."""
  token = _loss_scale.set(float(scale))
  try:
    yield
  finally:
    _loss_scale.reset(token)


def current_loss_scale():
  return _loss_scale.get()


def to_float32(logits):
  """Logits of a 16-bit model as float32 (unchanged for float32 / float64 models)."""
  if logits.dtype in (tf.float16, tf.bfloat16):
    return tf.cast(logits, tf.float32)
  return logits
