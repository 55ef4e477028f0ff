import keras
import numpy as np
import pytest
import tensorflow as tf

from common import models, nets


@pytest.fixture(scope="module")
def resnet():
  return nets.resnet32()


@pytest.fixture(scope="module")
def wrn():
  """Built once: 36M parameters take about a second to initialise."""
  return nets.wrn28_10()


def _sizes(variables):
  return int(sum(v.numpy().size for v in variables))


def _l2rw_resnet_counts(units, widths, num_classes=10):
  """(total, trainable) counted by hand: 3x3 conv kernels cin*cout*9, one beta and two moving
  statistics per batch-norm channel (BN-ReLU after the stem, at the start of every unit but the
  first, in the middle of every unit and at the end), dense kernel and bias."""
  convs, bn_channels, cin = 9 * 3 * 16, 16, 16
  for stage, width in enumerate(widths):
    for unit in range(units):
      convs += 9 * cin * width + 9 * width * width
      bn_channels += width + (0 if stage == unit == 0 else cin)
      cin = width
  bn_channels += cin
  trainable = convs + bn_channels + cin * num_classes + num_classes
  return trainable + 2 * bn_channels, trainable


def _conv_kernels(model):
  return [layer.kernel for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def _consumers(model, layer):
  """Layers of the functional graph that take ``layer``'s output as an input."""
  return [other for other in model.layers for node in other._inbound_nodes
          for parent in node.parent_nodes if parent.operation is layer]


def _producer(layer):
  """The single layer whose output ``layer`` takes."""
  (parent,) = [p.operation for node in layer._inbound_nodes for p in node.parent_nodes]
  return parent


def test_hand_formula_matches_the_pinned_resnet_counts():
  assert _l2rw_resnet_counts(5, (16, 32, 64)) == (465_290, 463_018)
  assert _l2rw_resnet_counts(4, (160, 320, 640)) == (36_229_610, 36_211_658)


@pytest.mark.parametrize("fixture, total, trainable", [
    ("resnet", 465_290, 463_018),
    ("wrn", 36_229_610, 36_211_658),
])
def test_resnet_parameter_counts(request, fixture, total, trainable):
  model = request.getfixturevalue(fixture)
  assert models.count_params(model) == _sizes(model.weights) == total
  assert _sizes(model.trainable_weights) == trainable


@pytest.mark.parametrize("build, total, trainable", [
    (nets.l2rw_mnist_cnn, 167_113, 167_113),
    (nets.inception_small, 1_652_826, 1_649_402),
    (nets.preact_resnet18, 11_178_186, 11_171_274),
    (lambda: nets.preact_resnet18(stem_bn_relu=False), 11_177_930, 11_171_146),
])
def test_other_parameter_counts(build, total, trainable):
  model = build()
  assert _sizes(model.weights) == total
  assert _sizes(model.trainable_weights) == trainable


@pytest.mark.parametrize("name, shape, num_classes", [
    ("l2rw_mnist_cnn", (28, 28, 1), 1),
    ("resnet32", (32, 32, 3), 10),
    ("wrn28_10", (32, 32, 3), 10),
    ("inception_small", (29, 29, 3), 10),
    ("preact_resnet18", (32, 32, 3), 100),
])
def test_registry_builds_each_model(name, shape, num_classes):
  model = models.build(name, shape, num_classes)
  x = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
  assert model(x).shape == (2, num_classes)


def test_inception_needs_the_29_pixel_crops():
  # 32x32 leaves a 2x2 map after the 7x7 average pool: four times too many logits.
  with pytest.raises(ValueError, match="expected logits of shape"):
    models.build("inception_small", (32, 32, 3), 10)


@pytest.mark.parametrize("fixture, pads", [("resnet", [8, 16]), ("wrn", [72, 80, 160])])
def test_resnet_shortcuts_are_parameter_free(request, fixture, pads):
  model = request.getfixturevalue(fixture)
  assert all(tuple(k.shape[:2]) == (3, 3) for k in _conv_kernels(model))
  batch_norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
  assert batch_norms and all(l.gamma is None for l in batch_norms)
  names = {v.path.split("/")[-1] for v in model.weights}
  assert names == {"kernel", "bias", "beta", "moving_mean", "moving_variance"}
  assert [l.pad for l in model.layers if isinstance(l, nets.ChannelPad)] == pads


def test_channel_pad_centres_the_input():
  x = np.arange(2 * 16, dtype=np.float32).reshape(1, 1, 2, 16)
  y = keras.ops.convert_to_numpy(nets.ChannelPad(72)(x))
  assert y.shape == (1, 1, 2, 160)
  np.testing.assert_array_equal(y[..., 72:88], x)
  assert not y[..., :72].any() and not y[..., 88:].any()


def test_wrn_dropout_feeds_the_first_conv_of_each_unit(wrn):
  dropouts = [l for l in wrn.layers if isinstance(l, keras.layers.Dropout)]
  # Every unit but the network's first (which has no BN-ReLU of its own) has one.
  assert len(dropouts) == 11 and all(l.rate == 0.3 for l in dropouts)
  strides = []
  for layer in dropouts:
    (consumer,) = _consumers(wrn, layer)
    assert isinstance(consumer, keras.layers.Conv2D)
    assert tuple(consumer.kernel.shape[:2]) == (3, 3)
    strides.append(consumer.strides)
    # Unit input (the previous unit's sum) -> BN -> ReLU -> dropout: not between the two convs.
    relu = _producer(layer)
    assert isinstance(relu, keras.layers.ReLU)
    assert isinstance(_producer(relu), keras.layers.BatchNormalization)
    assert isinstance(_producer(_producer(relu)), keras.layers.Add)
  assert sorted(strides) == [(1, 1)] * 9 + [(2, 2)] * 2


def test_wrn_dropout_is_active_only_in_training(wrn):
  x = tf.random.stateless_normal((2, 32, 32, 3), seed=(1, 2))
  np.testing.assert_array_equal(wrn(x, training=False).numpy(), wrn(x, training=False).numpy())
  # Same batch statistics twice, so the difference comes from fresh dropout masks.
  assert not np.allclose(wrn(x, training=True).numpy(), wrn(x, training=True).numpy())


def test_forward_leaves_moving_statistics_alone_unless_asked(resnet):
  x = tf.random.stateless_normal((2, 32, 32, 3), seed=(3, 4))
  weights = [v.value for v in resnet.trainable_variables]
  means = [v for v in resnet.non_trainable_variables if v.path.endswith("moving_mean")]
  before = [v.numpy().copy() for v in means]
  models.forward(resnet, weights, x, training=True, update_state=False)
  for var, old in zip(means, before):
    np.testing.assert_array_equal(var.numpy(), old)
  models.forward(resnet, weights, x, training=True, update_state=True)
  assert any(not np.array_equal(var.numpy(), old) for var, old in zip(means, before))


def test_resnet_round_trips_through_its_config(resnet):
  clone = keras.Model.from_config(resnet.get_config())
  assert _sizes(clone.weights) == _sizes(resnet.weights)
