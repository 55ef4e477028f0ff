import math

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


@pytest.fixture(scope="module")
def wrn_dp():
  """Data Parameters' WRN-28-10 for CIFAR-100, built once (36M parameters)."""
  return nets.wrn28_10_dp()


@pytest.fixture(scope="module")
def resnet18():
  return nets.resnet18_imagenet()


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


def _wrn_dp_counts(num_classes=100):
  """(total, trainable) of ``wrn28_10_dp`` counted by hand: every conv cin*cout*k*k kernel
  entries plus cout biases; gamma, beta and two moving statistics per batch-norm channel (a BN
  before each of a block's two convs, one at the end); a 1x1 projection in each stage's first
  block (16 -> 160, then the stride-2 blocks); dense kernel and bias."""
  trainable, bn_channels, cin = 9 * 3 * 16 + 16, 0, 16
  for width in (160, 320, 640):
    for block in range(4):
      trainable += 9 * cin * width + width + 9 * width * width + width
      bn_channels += cin + width
      if block == 0:
        trainable += cin * width + width
      cin = width
  bn_channels += cin
  trainable += 2 * bn_channels + cin * num_classes + num_classes
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
  assert _wrn_dp_counts() == (36_564_932, 36_546_980)


@pytest.mark.parametrize("fixture, total, trainable", [
    ("resnet", 465_290, 463_018),
    ("wrn", 36_229_610, 36_211_658),
    ("wrn_dp", 36_564_932, 36_546_980),
    ("resnet18", 11_699_112, 11_689_512),  # torchvision's resnet18(): 11,689,512 parameters
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
    ("resnet18_imagenet", (64, 64, 3), 10),
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


# ------------------------------------------------------------------------------------------------
# Data Parameters: WRN-28-10 and ResNet-18
# ------------------------------------------------------------------------------------------------


def test_data_parameters_models_are_registered():
  assert models.resolve("wrn28_10_dp") is nets.wrn28_10_dp
  assert models.resolve("resnet18_imagenet") is nets.resnet18_imagenet


def test_strided_torch_conv_pads_on_all_sides_like_pytorch():
  # nn.Conv2d(3, stride=2, padding=1) of a 4x4 image of ones with an all-ones kernel: the first
  # window covers a padded row and column (4 ones), the last lies inside the image (9 ones).
  # Keras' same padding would pad only the bottom and right and give [[9, 6], [6, 4]].
  inputs = keras.Input((4, 4, 1))
  model = keras.Model(inputs, nets._torch_conv(inputs, 1, 3, strides=2, use_bias=False))
  (conv,) = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
  conv.kernel.assign(np.ones((3, 3, 1, 1), np.float32))
  out = keras.ops.convert_to_numpy(model(np.ones((1, 4, 4, 1), np.float32)))
  np.testing.assert_array_equal(out[0, :, :, 0], [[4.0, 6.0], [6.0, 9.0]])


def test_wrn_dp_forward_gives_one_logit_per_class(wrn_dp):
  x = tf.random.stateless_normal((2, 32, 32, 3), seed=(5, 6))
  assert wrn_dp(x, training=False).shape == (2, 100)
  (pool,) = [l for l in wrn_dp.layers if isinstance(l, keras.layers.AveragePooling2D)]
  assert tuple(pool.input.shape) == (None, 8, 8, 640) and pool.pool_size == (8, 8)
  assert not [l for l in wrn_dp.layers if isinstance(l, keras.layers.Dropout)]  # rate 0


def test_wrn_dp_convs_all_have_biases(wrn_dp):
  convs = [l for l in wrn_dp.layers if isinstance(l, keras.layers.Conv2D)]
  # Stem, two per block, and the three 1x1 projections (16 -> 160, and the two strided stages).
  assert len(convs) == 1 + 2 * 12 + 3
  assert all(l.use_bias and tuple(l.bias.shape) == (l.filters,) for l in convs)
  assert sorted(tuple(l.kernel.shape[:2]) for l in convs).count((1, 1)) == 3


def test_wrn_dp_stride_sits_on_the_second_conv_and_shortcuts_leave_the_block_input(wrn_dp):
  convs = [l for l in wrn_dp.layers if isinstance(l, keras.layers.Conv2D)]
  strided = [l for l in convs if l.strides == (2, 2) and l.kernel.shape[0] == 3]
  assert len(strided) == 2
  for conv in strided:
    # Block input (an Add) -> BN -> ReLU -> conv3x3 stride 1 -> BN -> ReLU -> pad 1 -> this conv.
    pad = _producer(conv)
    assert isinstance(pad, keras.layers.ZeroPadding2D) and pad.padding == ((1, 1), (1, 1))
    assert conv.padding == "valid"
    relu = _producer(pad)
    assert isinstance(relu, keras.layers.ReLU)
    first = _producer(_producer(relu))
    assert isinstance(first, keras.layers.Conv2D) and first.strides == (1, 1)
    assert tuple(first.kernel.shape[:2]) == (3, 3)
    block_input = _producer(_producer(_producer(first)))
    assert isinstance(block_input, keras.layers.Add)
  projections = [l for l in convs if l.kernel.shape[0] == 1]
  assert [l.strides for l in projections] == [(1, 1), (2, 2), (2, 2)]
  # The first projection reads the stem conv, the others the previous block's sum: all take the
  # block input itself, not its BN-ReLU.
  assert [type(_producer(l)) for l in projections] == [keras.layers.Conv2D, keras.layers.Add,
                                                      keras.layers.Add]
  assert all(l.padding == "valid" for l in projections)


def test_wrn_dp_final_batch_norm_keeps_pytorch_momentum_0_9(wrn_dp):
  batch_norms = [l for l in wrn_dp.layers if isinstance(l, keras.layers.BatchNormalization)]
  assert len(batch_norms) == 2 * 12 + 1
  assert all(l.epsilon == 1e-5 and l.center and l.scale for l in batch_norms)
  (pool,) = [l for l in wrn_dp.layers if isinstance(l, keras.layers.AveragePooling2D)]
  final = _producer(_producer(pool))
  assert isinstance(final, keras.layers.BatchNormalization)
  assert final.momentum == pytest.approx(0.1)
  assert all(l.momentum == pytest.approx(0.9) for l in batch_norms if l is not final)


def test_resnet18_geometry_matches_torchvision(resnet18):
  (stem,) = [l for l in resnet18.layers
             if isinstance(l, keras.layers.Conv2D) and l.kernel.shape[0] == 7]
  assert stem.strides == (2, 2) and not stem.use_bias
  assert _producer(stem).padding == ((3, 3), (3, 3))
  (pool,) = [l for l in resnet18.layers if isinstance(l, keras.layers.MaxPooling2D)]
  assert tuple(pool.input.shape) == (None, 114, 114, 64)  # 112 plus one pixel each side
  assert tuple(pool.output.shape) == (None, 56, 56, 64)
  (gap,) = [l for l in resnet18.layers if isinstance(l, keras.layers.GlobalAveragePooling2D)]
  assert tuple(gap.input.shape) == (None, 7, 7, 512)
  convs = [l for l in resnet18.layers if isinstance(l, keras.layers.Conv2D)]
  assert len(convs) == 1 + 16 + 3 and not any(l.use_bias for l in convs)
  downsamples = [l for l in convs if l.kernel.shape[0] == 1]
  assert [l.strides for l in downsamples] == [(2, 2)] * 3
  assert all(isinstance(_consumers(resnet18, l)[0], keras.layers.BatchNormalization)
             for l in downsamples)
  batch_norms = [l for l in resnet18.layers if isinstance(l, keras.layers.BatchNormalization)]
  assert len(batch_norms) == 1 + 16 + 3
  assert all(l.momentum == pytest.approx(0.9) and l.epsilon == 1e-5 for l in batch_norms)


def test_resnet18_takes_inputs_down_to_32_pixels():
  model = nets.resnet18_imagenet((32, 32, 3), 10)
  x = tf.random.stateless_normal((2, 32, 32, 3), seed=(7, 8))
  assert model(x, training=False).shape == (2, 10)


def test_resnet18_uses_torchvision_initialisers(resnet18):
  """Conv kernels N(0, 2 / (k k out)) (kaiming normal, fan out); the classifier's weight and bias
  U(-1/sqrt(512), 1/sqrt(512)) (nn.Linear's default)."""
  stem = next(l for l in resnet18.layers if isinstance(l, keras.layers.Conv2D))
  w = stem.kernel.numpy()
  assert w.shape == (7, 7, 3, 64)
  assert np.std(w) == pytest.approx(math.sqrt(2.0 / (7 * 7 * 64)), rel=0.03)
  assert np.abs(w).max() > 2.5 * math.sqrt(2.0 / (7 * 7 * 64))   # untruncated
  dense = resnet18.layers[-1]
  bound = 1 / math.sqrt(512)
  for var in (dense.kernel.numpy(), dense.bias.numpy()):
    assert np.abs(var).max() <= bound
    assert np.abs(var).max() > 0.9 * bound
  assert np.std(dense.kernel.numpy()) == pytest.approx(bound / math.sqrt(3), rel=0.03)


# ------------------------------------------------------------------------------------------------
# PyTorch's default initialisation (wrn28_10_dp, preact_resnet18)
# ------------------------------------------------------------------------------------------------


def _weighted_layers(model):
  """(layer, fan_in) of every Conv2D and Dense: fan_in = kh * kw * in or in, PyTorch's too."""
  return [(l, int(np.prod(l.kernel.shape[:-1]))) for l in model.layers
          if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]


# Torch's bound 1/sqrt(fan_in) against Glorot's sqrt(6 / (fan_in + fan_out)) for the 3x3 160 ->
# 160 conv: 0.0264 vs 0.0456, 1.7x. The std of n uniform draws has a relative standard error of
# about 0.45 / sqrt(n): below 1.5% for n >= 1000 (the kernels checked), 3.6% for n >= 160 (the
# biases checked), so rel=0.1 and 0.2 sit at 7 and 5.6 standard errors and catch Glorot.
_INIT_BUILDERS = {
    "wrn28_10_dp": lambda init=None: nets.wrn28_10_dp(
        (32, 32, 3), 10, **({} if init is None else dict(init=init))),
    "preact_resnet18": lambda init=None: nets.preact_resnet18(
        (32, 32, 3), 10, **({} if init is None else dict(init=init))),
}


@pytest.mark.parametrize("name", sorted(_INIT_BUILDERS))
def test_pytorch_default_init_is_the_default(name):
  """Built with no ``init``: every kernel and bias U(-b, b), b = 1/sqrt(fan_in), as nn.Conv2d
  and nn.Linear initialise themselves (the originals apply no init of their own)."""
  keras.utils.set_random_seed(0)
  model = _INIT_BUILDERS[name]()
  checked_kernels = checked_biases = 0
  for layer, fan_in in _weighted_layers(model):
    bound = 1 / math.sqrt(fan_in)
    variables = [(layer.kernel.numpy(), 1000, 0.1)]
    if layer.use_bias:
      variables.append((layer.bias.numpy(), 160, 0.2))
    for values, enough, rel in variables:
      assert np.abs(values).max() <= bound, layer.name
      # Biases nonzero (Keras' would be 0); float32 draws hit an exact 0 roughly once in a million.
      assert np.mean(values == 0) < (1e-4 if values.ndim > 1 else 1e-9), layer.name
      if values.size >= enough:
        assert np.abs(values).max() > 0.95 * bound, layer.name
        assert np.std(values) == pytest.approx(bound / math.sqrt(3), rel=rel), layer.name
        # The mean of n draws has standard error b / sqrt(3 n): allow 5 of them.
        assert abs(np.mean(values)) < 5 * bound / math.sqrt(3 * values.size), layer.name
        checked_kernels += values.ndim > 1
        checked_biases += values.ndim == 1
  # wrn28_10_dp: 27 of its 28 convs (the stem's 432 weights are too few) and the dense layer, and
  # the 27 conv biases of 160+ entries; preact_resnet18: its 20 convs (no biases) and the dense
  # layer (10 biases, too few for the statistics).
  expected = {"wrn28_10_dp": (28, 27), "preact_resnet18": (21, 0)}[name]
  assert (checked_kernels, checked_biases) == expected


@pytest.mark.parametrize("name", sorted(_INIT_BUILDERS))
def test_keras_init_switch_gives_glorot_kernels_and_zero_biases(name):
  """``init="keras"``: Glorot-uniform kernels (std sqrt(2 / (fan_in + fan_out))), zero biases;
  the same number of weights as the default build (the counts of test_resnet_parameter_counts
  and test_other_parameter_counts, at 10 classes)."""
  keras.utils.set_random_seed(0)
  model = _INIT_BUILDERS[name]("keras")
  total = {"wrn28_10_dp": _wrn_dp_counts(10)[0], "preact_resnet18": 11_178_186}[name]
  assert _sizes(model.weights) == total
  for layer, fan_in in _weighted_layers(model):
    kernel = layer.kernel.numpy()
    fan_out = kernel.size // kernel.shape[-2]   # Keras': kh * kw * out for a conv, out for a dense
    if kernel.size >= 1000:
      assert np.std(kernel) == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=0.1), \
          layer.name
    if layer.use_bias:
      assert not layer.bias.numpy().any(), layer.name


@pytest.mark.parametrize("build", [nets.wrn28_10_dp, nets.preact_resnet18])
def test_unknown_init_is_refused(build):
  with pytest.raises(ValueError, match="Unknown init 'xavier'"):
    build(init="xavier")
