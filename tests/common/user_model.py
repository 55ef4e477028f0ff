"""Models a user could pass as --config.model=tests.common.user_model:tiny_mlp."""

import keras


def tiny_mlp(input_shape, num_classes):
  return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                           keras.layers.Dense(16, activation="relu"),
                           keras.layers.Dense(num_classes)], name="user_tiny_mlp")


def wrong_output(input_shape, num_classes):
  return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                           keras.layers.Dense(num_classes + 1)])


class _Subclassed(keras.Model):
  """A subclassed model without compute_output_shape: it must build by being called."""

  def __init__(self, num_classes, probabilities=False):
    super().__init__(name="user_subclassed")
    self.flatten = keras.layers.Flatten()
    self.hidden = keras.layers.Dense(8, activation="relu")
    self.out = keras.layers.Dense(num_classes)
    self.probabilities = probabilities

  def call(self, x, training=False):
    logits = self.out(self.hidden(self.flatten(x)))
    return keras.ops.softmax(logits) if self.probabilities else logits


def subclassed(input_shape, num_classes):
  del input_shape
  return _Subclassed(num_classes)


def subclassed_probabilities(input_shape, num_classes):
  del input_shape
  return _Subclassed(num_classes, probabilities=True)


def ends_in_softmax(input_shape, num_classes):
  return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                           keras.layers.Dense(num_classes, activation="softmax")])


def with_batchnorm(input_shape, num_classes):
  return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                           keras.layers.BatchNormalization(), keras.layers.Dropout(0.5),
                           keras.layers.Dense(num_classes)])
