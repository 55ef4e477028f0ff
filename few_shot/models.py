"""The penalty paper's few-shot encoders and its scaled-cosine head.

Encoders map a stack of image sets ``[G, B, H, W, C]`` (G sets: one task's support or query
images each) to features ``[G, B, d]``. Their batch norm always normalises with the statistics
of the set it is given, computed per set, as the original's ``tf.contrib.layers.batch_norm``
(``is_training`` left at True, moving averages never used) applied to each task's support and
each task's query batch separately: training and test alike. So the encoders hold no moving
statistics, and their parameter counts are the original's:

  conv4          Omniglot: 4 x [conv3x3 64, no bias, Xavier -> BN (beta only, eps 1e-3) ->
                 ReLU (not in block 4) -> max-pool 2x2 valid]; 28 -> 14 -> 7 -> 3 -> 1, 64-d;
                 111,424 parameters
  resnet_mini    Mini-ImageNet: 4 residual blocks of widths 64, 96, 128, 256, each the sum of a
                 1x1 conv with bias (the skip) and 3 x [conv3x3 no bias -> BN (beta) ->
                 LeakyReLU 0.1], then max-pool 2x2 SAME; 84 -> 42 -> 21 -> 11 -> 6; then a 1x1
                 conv to 2048 (bias, ReLU), 6x6 average pool, a 1x1 conv to 384 (bias); 384-d;
                 3,543,424 parameters

A user's own encoder is any Keras model mapping ``[B, H, W, C]`` images to ``[B, d]`` (or
``[B, ..., d]``, flattened), named in the config as ``module.path:function`` taking
``input_shape``. The problem applies it to every set separately, so its batch norm (called
with ``training=True``) sees per-set statistics too. When every layer acts on each image alone
(``acts_per_image``: Keras' convolution, dense, pooling, activation, reshaping and per-example
normalisation layers; no batch norm, dropout or other random layer, Lambda or layer of the
user's own), ``encoder_one_call=True`` encodes all sets of a meta-batch in one call on
``[G B, H, W, C]`` instead, with the same features.

The head of a task (``cosine_logits``) is the original's ``top_layer`` with the bias folded
into the cosine: logits_k = 10 (x . W_k + 0.001 b_k) / (sqrt(|x|^2 + 0.001^2)
sqrt(|W_k|^2 + b_k^2)), W ~ N(0, 0.01^2) [d, N], b = 0.001 [N].
"""

import importlib

import keras
from keras import layers, ops

HEAD_SCALE = 10.0
HEAD_BIAS_SCALE = 0.001
HEAD_W_STDDEV = 0.01
HEAD_B_INIT = 0.001


class Grouped(layers.Layer):
  """Applies a layer made for ``[N, ...]`` inputs to ``[G, B, ...]`` (G x B examples at once)."""

  def __init__(self, layer, **kwargs):
    super().__init__(**kwargs)
    self.layer = layer

  def build(self, input_shape):
    self.layer.build((None,) + tuple(input_shape[2:]))

  def call(self, x):
    shape = ops.shape(x)
    flat = ops.reshape(x, (-1,) + tuple(x.shape[2:]))
    out = self.layer(flat)
    return ops.reshape(out, (shape[0], shape[1]) + tuple(out.shape[1:]))

  def compute_output_shape(self, input_shape):
    inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
    return tuple(input_shape[:2]) + tuple(inner[1:])


class SetBatchNorm(layers.Layer):
  """Batch norm of ``[G, B, h, w, c]`` with the statistics of each set g (over B, h, w), beta
  only (``center=True, scale=False``), TF1's eps 1e-3, no moving statistics."""

  def __init__(self, epsilon=1e-3, **kwargs):
    super().__init__(**kwargs)
    self.epsilon = epsilon

  def build(self, input_shape):
    self.beta = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="beta")

  def call(self, x):
    mean, var = ops.moments(x, axes=(1, 2, 3), keepdims=True)
    return (x - mean) * ops.rsqrt(var + self.epsilon) + self.beta


def conv4(input_shape=(28, 28, 1)):
  """The Omniglot encoder (``encoder`` / ``conv_block_new`` of the original)."""
  inputs = keras.Input((None,) + tuple(input_shape))
  x = inputs
  for block in range(4):
    x = Grouped(layers.Conv2D(64, 3, padding="same", use_bias=False,
                              kernel_initializer="glorot_uniform"))(x)
    x = SetBatchNorm()(x)
    if block < 3:
      x = layers.ReLU()(x)
    x = Grouped(layers.MaxPooling2D(2, strides=2, padding="valid"))(x)
  features = layers.Reshape((-1, _flat_size(x.shape[2:])))(x)
  return keras.Model(inputs, features, name="conv4")


def resnet_mini(input_shape=(84, 84, 3)):
  """The Mini-ImageNet encoder (``make_resnet_filter`` of the original)."""
  inputs = keras.Input((None,) + tuple(input_shape))
  x = inputs
  for width in (64, 96, 128, 256):
    skip = Grouped(layers.Conv2D(width, 1, use_bias=True))(x)
    for _ in range(3):
      x = Grouped(layers.Conv2D(width, 3, padding="same", use_bias=False))(x)
      x = layers.LeakyReLU(negative_slope=0.1)(SetBatchNorm()(x))
    x = layers.Add()([x, skip])
    x = Grouped(layers.MaxPooling2D(2, strides=2, padding="same"))(x)
  x = Grouped(layers.Conv2D(2048, 1, activation="relu"))(x)
  x = Grouped(layers.AveragePooling2D(x.shape[2], padding="valid"))(x)
  x = Grouped(layers.Conv2D(384, 1))(x)
  features = layers.Reshape((-1, 384))(x)
  return keras.Model(inputs, features, name="resnet_mini")


def _flat_size(shape):
  size = 1
  for d in shape:
    size *= int(d)
  return size


ENCODERS = {"conv4": conv4, "resnet_mini": resnet_mini}


def build_encoder(name, input_shape):
  """(encoder, set_aware): a built-in by name, or a user's ``module.path:function``.

  ``set_aware`` encoders take ``[G, B, H, W, C]``; a user's takes ``[B, H, W, C]`` and is
  applied set by set.
  """
  if name in ENCODERS:
    return ENCODERS[name](input_shape), True
  if ":" not in name:
    raise ValueError(f"Unknown encoder {name!r}; built-ins: {sorted(ENCODERS)}, or give your "
                     f"own as 'module.path:function' (a function of input_shape returning a "
                     f"Keras model from [B, H, W, C] images to [B, d] features).")
  module, fn = name.split(":", 1)
  try:
    builder = getattr(importlib.import_module(module), fn)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"Cannot load encoder {name!r}: {e}") from None
  model = builder(tuple(input_shape))
  if not isinstance(model, keras.Model):
    raise ValueError(f"Encoder {name!r} returned {type(model).__name__}, not a keras.Model.")
  if len(model.inputs[0].shape) != 4:
    raise ValueError(f"Encoder {name!r} must take [B, H, W, C] images; its input has shape "
                     f"{model.inputs[0].shape}.")
  return model, False


# Keras layers whose training-mode output for an image depends on the other images of the call
# (batch statistics) or on random draws (which one call would draw differently from G calls).
_BATCH_OR_RANDOM = ("BatchNormalization", "Lambda")


def acts_per_image(model):
  """Whether ``model`` in training mode maps each image of a batch on its own, deterministically:
  every layer (nested models included) is one of Keras' own, not batch norm, not a Lambda and
  holds no random seed generator (dropout, noise, random augmentation)."""
  for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
    if isinstance(layer, keras.Model):
      continue                      # a nested model: its layers are visited too
    if (not type(layer).__module__.startswith("keras.") or type(layer).__name__ in _BATCH_OR_RANDOM
        or getattr(layer, "seed_generator", None) is not None):
      return False
  return True


def cosine_logits(features, w, b):
  """Scaled-cosine logits [..., B, N] of features [..., B, d] with W [..., d, N], b [..., N]."""
  dot = ops.matmul(features, w) + HEAD_BIAS_SCALE * b[..., None, :]
  x_norm = ops.sqrt(ops.sum(ops.square(features), axis=-1, keepdims=True)
                    + HEAD_BIAS_SCALE ** 2)
  w_norm = ops.sqrt(ops.sum(ops.square(w), axis=-2) + ops.square(b))[..., None, :]
  return HEAD_SCALE * dot / (x_norm * w_norm)
