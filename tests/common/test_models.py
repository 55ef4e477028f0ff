import keras
import numpy as np
import pytest
import tensorflow as tf

from common import models


@pytest.mark.parametrize("name, shape, count", [
    ("mnist_logreg", (28, 28, 1), 7_850),
    ("mnist_cnn", (28, 28, 1), 1_389_578),
    ("cifar10_cnn", (32, 32, 3), 1_172_410),
    ("svhn_cnn", (32, 32, 1), 1_340_650),
    ("compact_cnn", (32, 32, 3), 288_554),
])
def test_reference_parameter_counts(name, shape, count):
  model = models.build(name, shape, 10)
  assert models.count_params(model) == count
  assert model(np.zeros((2, *shape), np.float32)).shape == (2, 10)


def test_user_model_by_import_path():
  model = models.build("tests.common.user_model:tiny_mlp", (28, 28, 1), 10)
  assert model.name == "user_tiny_mlp"


@pytest.mark.parametrize("spec, message", [
    ("resnet9000", "Unknown model"),
    ("no.such.module:fn", "Cannot import module"),
    ("tests.common.user_model:missing", "has no function"),
    ("tests.common.user_model:wrong_output", "expected logits of shape"),
    ("tests.common.user_model:ends_in_softmax", "ends in a softmax: return logits instead"),
    ("tests.common.user_model:subclassed_probabilities",
     r"returns probabilities \(each output row sums to 1\): return logits"),
])
def test_bad_model_specs(spec, message):
  with pytest.raises(ValueError, match=message):
    models.build(spec, (28, 28, 1), 10)


def test_a_subclassed_model_builds_by_being_called():
  model = models.build("tests.common.user_model:subclassed", (28, 28, 1), 10)
  assert model.built and model.name == "user_subclassed"
  x = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype(np.float32)
  assert model(x).shape == (3, 10)
  # The pure forward pass used by every method works on it too.
  weights = [v.value for v in model.trainable_variables]
  np.testing.assert_allclose(np.asarray(models.forward(model, weights, x)), np.asarray(model(x)),
                             rtol=1e-6)


def test_inactive_batchnorm_and_dropout_get_a_notice():
  model = models.build("tests.common.user_model:with_batchnorm", (28, 28, 1), 10)
  notice = models.inactive_layers_notice(model, training=False)
  assert "BatchNormalization, Dropout" in notice and "train_mode_layers=True" in notice
  assert models.inactive_layers_notice(model, training=True) is None
  plain = models.build("tests.common.user_model:tiny_mlp", (28, 28, 1), 10)
  assert models.inactive_layers_notice(plain, training=False) is None


def test_forward_is_pure_in_the_weights():
  model = models.build("mnist_logreg", (28, 28, 1), 10)
  x = tf.random.normal((3, 28, 28, 1))
  w = [tf.convert_to_tensor(v) for v in model.trainable_variables]
  doubled = [2.0 * t for t in w]
  np.testing.assert_allclose(models.forward(model, doubled, x).numpy(),
                             2.0 * model(x).numpy(), rtol=1e-5, atol=1e-5)
  with tf.GradientTape() as tape:
    tape.watch(w)
    loss = tf.reduce_sum(models.forward(model, w, x) ** 2)
  assert all(g is not None for g in tape.gradient(loss, w))


def test_training_mode_forward_draws_fresh_dropout_masks():
  model = keras.Sequential([keras.Input((100,)), keras.layers.Dropout(0.5)])
  x = tf.ones((1, 100))
  a = models.forward(model, [], x, training=True).numpy()
  b = models.forward(model, [], x, training=True).numpy()
  assert (a == 0).any() and not np.array_equal(a, b)
  np.testing.assert_array_equal(models.forward(model, [], x, training=False).numpy(), x.numpy())
