"""Models a user could pass as --config.model=tests.common.user_model:tiny_mlp."""

import keras


def tiny_mlp(input_shape, num_classes):
  return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                           keras.layers.Dense(16, activation="relu"),
                           keras.layers.Dense(num_classes)], name="user_tiny_mlp")


def wrong_output(input_shape, num_classes):
  return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                           keras.layers.Dense(num_classes + 1)])
