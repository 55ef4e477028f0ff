"""Extractors a user could pass as --config.extractor=tests.poisoning.user_extractor:tiny."""

import keras


def tiny(input_shape):
  return keras.Sequential([keras.Input(input_shape), keras.layers.Conv2D(4, 3),
                           keras.layers.GlobalAveragePooling2D()], name="user_tiny_extractor")


def not_flat(input_shape):
  # Forgot the pooling: features [B, H, W, 4] instead of [B, d].
  return keras.Sequential([keras.Input(input_shape), keras.layers.Conv2D(4, 3)])


def not_a_model(input_shape):
  del input_shape
  return keras.layers.Dense(3)
