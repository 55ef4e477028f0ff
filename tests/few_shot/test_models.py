"""Few-shot encoders and head: the original's parameter counts, per-set batch statistics, the
scaled-cosine formula, and a user's own encoder."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from common.errors import ConfigError
from few_shot import models
from few_shot.problem import FewShotProblem


def user_encoder(input_shape):
  """A user's 4-D encoder with Keras batch norm (used by name in a test below)."""
  inputs = keras.Input(input_shape)
  x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
  x = keras.layers.BatchNormalization()(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  return keras.Model(inputs, x)


def test_conv4_is_the_originals_111424_parameters():
  enc = models.conv4()
  assert enc.count_params() == 111_424 and not enc.non_trainable_variables
  kernels = [v for v in enc.trainable_variables if "kernel" in v.path]
  assert [tuple(k.shape) for k in kernels] == [(3, 3, 1, 64)] + [(3, 3, 64, 64)] * 3
  assert enc(tf.zeros([2, 3, 28, 28, 1])).shape == (2, 3, 64)


def test_resnet_mini_is_the_originals_3543424_parameters():
  enc = models.resnet_mini()
  assert enc.count_params() == 3_543_424 and not enc.non_trainable_variables
  assert enc(tf.zeros([1, 2, 84, 84, 3])).shape == (1, 2, 384)


def test_batch_norm_uses_each_sets_own_statistics():
  """Set 0's features do not depend on set 1's images, and equal those of set 0 alone."""
  enc = models.conv4()
  rng = np.random.default_rng(0)
  x = rng.random((2, 5, 28, 28, 1)).astype(np.float32)
  y = x.copy()
  y[1] = rng.random((5, 28, 28, 1)) * 3.0
  a, b, alone = enc(x).numpy(), enc(y).numpy(), enc(x[:1]).numpy()
  assert isinstance(enc.layers[2], models.SetBatchNorm)
  np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(a[0], alone[0], rtol=1e-5, atol=1e-6)
  assert not np.allclose(a[1], b[1])
  # The first batch norm, by hand: each set's own mean and (biased) variance, eps 1e-3.
  conv = keras.Model(enc.inputs, enc.layers[1].output)(x).numpy()
  normed = keras.Model(enc.inputs, enc.layers[2].output)(x).numpy()
  mean = conv.mean(axis=(1, 2, 3), keepdims=True)
  var = conv.var(axis=(1, 2, 3), keepdims=True)
  np.testing.assert_allclose(normed, (conv - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-4)


def test_cosine_head_formula():
  rng = np.random.default_rng(1)
  x, w, b = rng.normal(size=(2, 4, 6)), rng.normal(size=(2, 6, 3)), rng.normal(size=(2, 3))
  got = models.cosine_logits(tf.constant(x), tf.constant(w), tf.constant(b)).numpy()
  for t in range(2):
    for i in range(4):
      for k in range(3):
        num = x[t, i] @ w[t, :, k] + 0.001 * b[t, k]
        den = np.sqrt(x[t, i] @ x[t, i] + 1e-6) * np.sqrt(w[t, :, k] @ w[t, :, k] + b[t, k] ** 2)
        assert got[t, i, k] == pytest.approx(10 * num / den, rel=1e-10)
  assert np.abs(got).max() <= 10 + 1e-9


def test_user_encoder_by_module_path_is_applied_set_by_set():
  enc, set_aware = models.build_encoder("tests.few_shot.test_models:user_encoder", (8, 8, 1))
  assert not set_aware and enc.output_shape == (None, 4)
  with pytest.raises(ValueError, match="Unknown encoder"):
    models.build_encoder("resnet", (8, 8, 1))
  with pytest.raises(ValueError, match="Cannot load encoder"):
    models.build_encoder("tests.few_shot.test_models:nothing", (8, 8, 1))


class _Scale(keras.layers.Layer):
  """A layer of the user's own: the problem cannot know that it acts per image."""

  def call(self, x):
    return 2.0 * x


def _encoder(*middle):
  inputs = keras.Input((8, 8, 1))
  x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
  for layer in middle:
    x = layer(x)
  x = keras.layers.MaxPooling2D()(x)
  x = keras.layers.Flatten()(keras.layers.LayerNormalization()(x))
  return keras.Model(inputs, keras.layers.Dense(5)(x))


def test_a_per_image_user_encoder_encodes_every_set_in_one_call_with_the_same_features():
  keras.config.set_floatx("float64")
  try:
    nested = keras.Sequential([keras.layers.Conv2D(3, 1), keras.layers.ReLU()])
    enc = _encoder(nested)
    problem = FewShotProblem(enc, False, 3, 5, one_call=True)
    x = tf.constant(np.random.default_rng(0).random((3, 6, 8, 8, 1)))
    u = [v.value for v in enc.trainable_variables]
    got = problem.encode(u, x)
    per_set = tf.stack([enc(x[t], training=True) for t in range(3)])
  finally:
    keras.config.set_floatx("float32")
  assert problem.per_image and got.shape == (3, 6, 5)
  np.testing.assert_allclose(got.numpy(), per_set.numpy(), rtol=1e-12, atol=1e-14)
  # Batch statistics, random draws or unknown code: set by set, as before.
  for layer in (keras.layers.BatchNormalization(), keras.layers.Dropout(0.5),
                keras.layers.GaussianNoise(0.1), keras.layers.Lambda(lambda t: t), _Scale()):
    assert not models.acts_per_image(_encoder(layer)), type(layer).__name__
  assert not models.acts_per_image(user_encoder((8, 8, 1)))
  # Off unless asked for; asked for on an encoder with batch norm, a clear error.
  assert not FewShotProblem(_encoder(), False, 3, 5).per_image
  with pytest.raises(ConfigError, match="encoder_one_call=True needs an encoder"):
    FewShotProblem(user_encoder((8, 8, 1)), False, 3, 5, one_call=True)
