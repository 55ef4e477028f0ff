"""Larger Keras architectures of the reweighting papers, rebuilt from their official code.

    l2rw_mnist_cnn    Learning to Reweight (Ren et al. 2018), MNIST 4-vs-9 LeNet, one logit
    resnet32          Learning to Reweight, CIFAR pre-activation ResNet-32
    wrn28_10          Learning to Reweight, CIFAR wide ResNet-28-10 (dropout 0.3)
    inception_small   Deep Bilevel Learning (Jenni & Favaro 2018), the small Inception of
                      Zhang et al. 2017 on 29x29 crops
    preact_resnet18   mixup (Zhang et al. 2018), PreAct ResNet-18
    wrn28_10_dp       Data Parameters (Saxena et al. 2019), CIFAR-100 wide ResNet-28-10
                      (PyTorch, conv biases, no dropout)
    resnet18_imagenet Data Parameters, ImageNet: torchvision's ResNet-18

Every builder is called as ``fn(input_shape, num_classes)`` and returns a built functional or
sequential ``keras.Model`` mapping NHWC images to logits (no softmax). All state lives in Keras
layers, so the models run through ``common.models.forward`` (``stateless_call``). Weight decay is
not part of the models: the problems add it on every variable named ``kernel``, which is why the
layers keep Keras' default variable names.

The ports of PyTorch networks whose original trains from PyTorch's default initialisation
(``preact_resnet18``, ``wrn28_10_dp``) reproduce it by default: every conv and dense kernel and
bias uniform in +-1/sqrt(fan_in). Their ``init="keras"`` gives Keras' defaults instead
(Glorot-uniform kernels, zero biases). The other builders keep their originals' initialisers.

Batch norm everywhere is Keras' ``BatchNormalization``, with the originals' constants translated
(TF ``decay`` and Keras ``momentum`` are the same number; PyTorch ``momentum`` m is Keras 1 - m).
One difference is left: Keras updates the moving variance with the biased batch variance, where
TF's fused batch norm and PyTorch use the unbiased one (a factor n / (n - 1), n = batch x pixels).
"""

import math

import keras
from keras import layers, ops


def _truncated_normal(stddev):
  """Plain truncated normal (redrawn beyond 2 stddev, no rescaling), as TF1's initialiser."""
  return keras.initializers.TruncatedNormal(stddev=stddev)


# ------------------------------------------------------------------------------------------------
# Learning to Reweight: MNIST
# ------------------------------------------------------------------------------------------------


def l2rw_mnist_cnn(input_shape=(28, 28, 1), num_classes=1):
  """The LeNet of L2RW's imbalanced MNIST experiment (``mnist/reweight.py``): 167,113 parameters.

  Three blocks of [conv 5x5 same + bias -> max-pool 3x3 stride 2 same -> ReLU] (pooling before
  the activation, as the original), 28 -> 14 -> 7 -> 4, then 1024 -> 100 (ReLU) -> logits. One
  logit by default: the original's loss is the sigmoid cross-entropy of that logit. Kernels are
  truncated normal with stddev 0.1, biases zero.
  """
  blocks = []
  for width in (16, 32, 64):
    blocks += [
        layers.Conv2D(width, 5, padding="same", kernel_initializer=_truncated_normal(0.1)),
        layers.MaxPooling2D(3, strides=2, padding="same"),
        layers.ReLU(),
    ]
  return keras.Sequential([
      keras.Input(input_shape),
      *blocks,
      layers.Flatten(),
      layers.Dense(100, activation="relu", kernel_initializer=_truncated_normal(0.1)),
      layers.Dense(num_classes, kernel_initializer=_truncated_normal(0.1)),
  ], name="l2rw_mnist_cnn")


# ------------------------------------------------------------------------------------------------
# Learning to Reweight: CIFAR ResNets
# ------------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="common.nets")
class ChannelPad(layers.Layer):
  """Zero-pads the last (channel) axis with ``pad`` zeros on each side.

  The parameter-free shortcut of the TF ``models/resnet`` CIFAR code: when a residual unit
  widens, its input is padded with zero channels instead of passing through a 1x1 projection.
  """

  def __init__(self, pad, **kwargs):
    super().__init__(**kwargs)
    self.pad = int(pad)

  def call(self, x):
    return ops.pad(x, [[0, 0]] * (len(x.shape) - 1) + [[self.pad, self.pad]])

  def compute_output_shape(self, input_shape):
    *rest, channels = input_shape
    return (*rest, None if channels is None else channels + 2 * self.pad)

  def get_config(self):
    return {**super().get_config(), "pad": self.pad}


def _l2rw_conv(filters, strides=1):
  """3x3 same conv without bias; truncated normal with stddev sqrt(2 / (3 * 3 * filters))."""
  return layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                       kernel_initializer=_truncated_normal(math.sqrt(2.0 / (9 * filters))))


def _l2rw_bn_relu(x):
  """tf.contrib.layers.batch_norm defaults (beta only, decay 0.999, epsilon 1e-3), then ReLU."""
  x = layers.BatchNormalization(momentum=0.999, epsilon=1e-3, scale=False)(x)
  return layers.ReLU()(x)


def _l2rw_unit(x, in_filters, out_filters, strides, dropout, pre_activation):
  """One residual unit of L2RW's ``ResnetModule._residual`` (non-bottleneck).

  With ``pre_activation`` (every unit but the network's first): BN-ReLU, then dropout when
  ``dropout`` > 0, before the first conv; the shortcut is taken *before* that BN-ReLU. The first
  unit has neither (the stem's BN-ReLU precedes it), so its shortcut is the activated stem output.
  Then conv3x3(strides) -> BN-ReLU -> conv3x3. The shortcut is average-pooled (window = stride,
  same padding) when strided and zero-padded on channels when the unit widens.
  """
  shortcut = x
  if pre_activation:
    x = _l2rw_bn_relu(x)
    if dropout > 0:
      x = layers.Dropout(dropout)(x)
  x = _l2rw_conv(out_filters, strides)(x)
  x = _l2rw_bn_relu(x)
  x = _l2rw_conv(out_filters)(x)
  if strides > 1:
    shortcut = layers.AveragePooling2D(strides, strides=strides, padding="same")(shortcut)
  if in_filters < out_filters:
    if (out_filters - in_filters) % 2:
      raise ValueError(f"Cannot pad {in_filters} channels evenly to {out_filters}.")
    shortcut = ChannelPad((out_filters - in_filters) // 2)(shortcut)
  return layers.Add()([x, shortcut])


def _l2rw_resnet(name, input_shape, num_classes, units, filters, dropout=0.0):
  """The pre-activation ResNet of L2RW's ``models/cnn/resnet_module.py`` (itself the classic TF
  ``models/resnet`` CIFAR code): conv3x3 16 -> BN-ReLU -> 3 stages of ``units`` residual units
  of widths ``filters`` with strides 1, 2, 2 -> BN-ReLU -> global average pool -> dense logits.

  The dense kernel is TF1's uniform unit scaling with factor 1 (uniform, limit sqrt(3 / fan_in)),
  its bias zero.
  """
  inputs = keras.Input(input_shape)
  x = _l2rw_conv(16)(inputs)
  x = _l2rw_bn_relu(x)
  in_filters = 16
  for stage, (out_filters, stage_stride) in enumerate(zip(filters, (1, 2, 2))):
    for unit in range(units):
      x = _l2rw_unit(x, in_filters, out_filters, stage_stride if unit == 0 else 1, dropout,
                     pre_activation=(stage, unit) != (0, 0))
      in_filters = out_filters
  x = _l2rw_bn_relu(x)
  x = layers.GlobalAveragePooling2D()(x)
  outputs = layers.Dense(num_classes, kernel_initializer=keras.initializers.VarianceScaling(
      1.0, mode="fan_in", distribution="uniform"))(x)
  return keras.Model(inputs, outputs, name=name)


def resnet32(input_shape=(32, 32, 3), num_classes=10):
  """L2RW's ResNet-32 (``cifar-resnet-32.prototxt``): 5 units per stage, widths 16, 32, 64.

  463,018 trainable parameters (465,290 with the batch-norm moving statistics).
  """
  return _l2rw_resnet("resnet32", input_shape, num_classes, units=5, filters=(16, 32, 64))


def wrn28_10(input_shape=(32, 32, 3), num_classes=10):
  """L2RW's WRN-28-10 (``cifar-wide-resnet-28-10.prototxt``): 4 units per stage, widths 160,
  320, 640, dropout 0.3.

  The dropout sits where the original puts it: after each unit's first BN-ReLU, before its
  first conv (not between the two convs as in Zagoruyko & Komodakis), and the network's first
  unit, which has no BN-ReLU of its own, has none (11 dropout layers, not 12). The first unit
  widens 16 -> 160 by padding 72 zero channels on each side of its shortcut.

  36,211,658 trainable parameters (36,229,610 with the batch-norm moving statistics).
  """
  return _l2rw_resnet("wrn28_10", input_shape, num_classes, units=4, filters=(160, 320, 640),
                      dropout=0.3)


# ------------------------------------------------------------------------------------------------
# Deep Bilevel Learning: small Inception
# ------------------------------------------------------------------------------------------------


def _slim_initializer():
  """tf.contrib.layers.variance_scaling_initializer(): factor 2, fan-in, truncated normal.

  TF1 scales the truncated normal's stddev by sqrt(1.3), Keras by 1 / 0.8796 = sqrt(1.2925):
  a 0.3% difference in the initial spread.
  """
  return keras.initializers.VarianceScaling(2.0, mode="fan_in", distribution="truncated_normal")


def _inception_conv(x, filters, kernel, strides=1, padding="same"):
  """slim.conv2d under the original's arg scope: conv without bias -> batch norm -> ReLU.

  slim.batch_norm keeps its default ``scale=False`` there (beta only), decay 0.975, eps 1e-3.
  """
  x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                    kernel_initializer=_slim_initializer())(x)
  x = layers.BatchNormalization(momentum=0.975, epsilon=1e-3, scale=False)(x)
  return layers.ReLU()(x)


def _inception_module(x, ch1, ch3):
  """concat(conv 1x1 ``ch1``, conv 3x3 ``ch3``), both stride 1 same."""
  return layers.Concatenate()([_inception_conv(x, ch1, 1), _inception_conv(x, ch3, 3)])


def _downsample_module(x, ch3):
  """concat(conv 3x3 stride 2 ``ch3``, max-pool 3x3 stride 2), both same: 27 -> 14 -> 7."""
  return layers.Concatenate()([
      _inception_conv(x, ch3, 3, strides=2),
      layers.MaxPooling2D(3, strides=2, padding="same")(x),
  ])


def inception_small(input_shape=(29, 29, 3), num_classes=10):
  """The small Inception of Zhang et al. 2017 as Deep Bilevel Learning trains it
  (``sjenni/DeepBilevel`` ``models/InceptionCifar.py``), on 29x29 random crops of CIFAR.

  conv 3x3 96 valid (29 -> 27); Inception(32, 32), (32, 48); Downsample(80) (-> 14);
  Inception(112, 48), (96, 64), (80, 80), (48, 96); Downsample(96) (-> 7); Inception(176, 160)
  twice; average pool 7x7 valid (-> 1); dropout 0.5; conv 1x1 to the logits, with zero-initialised
  bias, no batch norm, no activation; flatten. Other input sizes need the final map to be 7x7.

  Checked against the original: slim's default padding is same for the convs, the downsampling
  max-pool is same with slim's default stride 2, and the average pool is valid with stride 1;
  the logit conv also takes the variance-scaling initialiser of the arg scope.

  1,649,402 trainable parameters (1,652,826 with the batch-norm moving statistics).
  """
  inputs = keras.Input(input_shape)
  x = _inception_conv(inputs, 96, 3, padding="valid")
  x = _inception_module(x, 32, 32)
  x = _inception_module(x, 32, 48)
  x = _downsample_module(x, 80)
  for ch1, ch3 in ((112, 48), (96, 64), (80, 80), (48, 96)):
    x = _inception_module(x, ch1, ch3)
  x = _downsample_module(x, 96)
  x = _inception_module(x, 176, 160)
  x = _inception_module(x, 176, 160)
  x = layers.AveragePooling2D(7, strides=1, padding="valid")(x)
  x = layers.Dropout(0.5)(x)
  x = layers.Conv2D(num_classes, 1, kernel_initializer=_slim_initializer())(x)
  outputs = layers.Flatten()(x)
  return keras.Model(inputs, outputs, name="inception_small")


# ------------------------------------------------------------------------------------------------
# PyTorch's default initialisation
# ------------------------------------------------------------------------------------------------


INITS = ("pytorch", "keras")


def _check_init(init):
  """A ValueError, before anything is built, for an ``init`` other than those of ``INITS``."""
  if init not in INITS:
    raise ValueError(f"Unknown init {init!r}: use 'pytorch' (PyTorch's default initialisation) "
                     "or 'keras' (Keras' defaults).")


def _torch_default_init(fan_in):
  """PyTorch's default init of nn.Conv2d and nn.Linear: weight and bias both
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5) gives exactly that bound
  for the weight). fan_in is in_features for a linear layer, in_channels * kh * kw for a conv,
  which is also Keras' fan-in of a (kh, kw, in, out) or (in, out) kernel."""
  bound = 1.0 / math.sqrt(fan_in)
  return (keras.initializers.RandomUniform(-bound, bound),
          keras.initializers.RandomUniform(-bound, bound))


def _initializers(init, x, kernel=1):
  """Keyword arguments of a Conv2D with a ``kernel`` x ``kernel`` window (``kernel=1`` also for a
  Dense) that reads ``x``: PyTorch's default init for ``init="pytorch"`` (fan_in = kernel *
  kernel * x's channels), none (Glorot-uniform kernel, zero bias) for ``init="keras"``. The
  bias initialiser is ignored by a layer without bias."""
  if init == "keras":
    return {}
  kernel_init, bias_init = _torch_default_init(kernel * kernel * int(x.shape[-1]))
  return dict(kernel_initializer=kernel_init, bias_initializer=bias_init)


# ------------------------------------------------------------------------------------------------
# mixup: PreAct ResNet-18
# ------------------------------------------------------------------------------------------------


def _torch_bn():
  """PyTorch BatchNorm2d defaults: gamma and beta, eps 1e-5, momentum 0.1 (Keras 0.9)."""
  return layers.BatchNormalization(momentum=0.9, epsilon=1e-5)


def _preact_block(x, in_planes, planes, strides, init):
  """PreActBlock: out = ReLU(BN(x)); shortcut = 1x1 conv of *out* when the shape changes,
  else x; conv3x3(strides) -> BN-ReLU -> conv3x3; add. No conv has a bias."""
  out = layers.ReLU()(_torch_bn()(x))
  shortcut = x
  if strides != 1 or in_planes != planes:
    shortcut = layers.Conv2D(planes, 1, strides=strides, use_bias=False,
                             **_initializers(init, out))(out)
  out = layers.Conv2D(planes, 3, strides=strides, padding="same", use_bias=False,
                      **_initializers(init, out, 3))(out)
  out = layers.ReLU()(_torch_bn()(out))
  out = layers.Conv2D(planes, 3, padding="same", use_bias=False,
                      **_initializers(init, out, 3))(out)
  return layers.Add()([out, shortcut])


def preact_resnet18(input_shape=(32, 32, 3), num_classes=10, stem_bn_relu=True, init="pytorch"):
  """The PreAct ResNet-18 of mixup (``facebookresearch/mixup-cifar10``, ``ResNet18`` in
  ``models/resnet.py``, from ``kuangliu/pytorch-cifar``).

  conv3x3 64 (no bias) -> BN-ReLU -> 4 stages of 2 PreActBlocks, widths 64, 128, 256, 512,
  strides 1, 2, 2, 2 -> average pool 4x4 -> flatten -> dense logits. As in the original there
  is no BN-ReLU after the last block. The stem's BN-ReLU is mixup's; kuangliu's
  ``PreActResNet18`` omits it (``stem_bn_relu=False``: 128 fewer trainable parameters).

  ``init="pytorch"`` (the default) is PyTorch's default initialisation, which the original
  trains from (it initialises nothing itself): conv kernels, dense kernel and dense bias
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)). ``init="keras"`` gives Keras' defaults (Glorot-uniform
  kernels, zero dense bias).

  11,171,274 trainable parameters (11,178,186 with the batch-norm moving statistics).
  """
  _check_init(init)
  inputs = keras.Input(input_shape)
  x = layers.Conv2D(64, 3, padding="same", use_bias=False,
                    **_initializers(init, inputs, 3))(inputs)
  if stem_bn_relu:
    x = layers.ReLU()(_torch_bn()(x))
  in_planes = 64
  for planes, stage_stride in zip((64, 128, 256, 512), (1, 2, 2, 2)):
    for block in range(2):
      x = _preact_block(x, in_planes, planes, stage_stride if block == 0 else 1, init)
      in_planes = planes
  x = layers.AveragePooling2D(4)(x)
  x = layers.Flatten()(x)
  outputs = layers.Dense(num_classes, **_initializers(init, x))(x)
  return keras.Model(inputs, outputs, name="preact_resnet18")


# ------------------------------------------------------------------------------------------------
# Data parameters: WRN-28-10 (CIFAR-100) and torchvision's ResNet-18 (ImageNet)
# ------------------------------------------------------------------------------------------------


def _torch_conv(x, filters, kernel, strides=1, use_bias=True, **initializers):
  """nn.Conv2d(kernel, stride, padding=kernel // 2) on ``x`` (odd ``kernel``); ``initializers``
  (``kernel_initializer``, ``bias_initializer``) go to the Conv2D, Keras' defaults without them.

  At stride 1 Keras' same padding is the same symmetric kernel // 2 pixels. At stride 2 it would
  pad an even input only at the bottom and right, shifting every sampled position by one pixel
  against PyTorch, so the strided convs pad explicitly on all sides and convolve valid. 1x1
  convs have no padding.
  """
  if kernel > 1 and strides == 1:
    return layers.Conv2D(filters, kernel, padding="same", use_bias=use_bias, **initializers)(x)
  if kernel > 1:
    x = layers.ZeroPadding2D(kernel // 2)(x)
  return layers.Conv2D(filters, kernel, strides=strides, padding="valid", use_bias=use_bias,
                       **initializers)(x)


def _dp_wide_block(x, in_planes, planes, strides, init):
  """WideBasic of the data-parameters code: BN-ReLU -> conv3x3 -> [dropout, rate 0, omitted] ->
  BN-ReLU -> conv3x3(strides), plus the shortcut of the block's *input* ``x`` (before the first
  BN-ReLU): a 1x1 conv with bias and the block's stride when the shape changes, else ``x``."""
  out = layers.ReLU()(_torch_bn()(x))
  out = _torch_conv(out, planes, 3, **_initializers(init, out, 3))
  out = layers.ReLU()(_torch_bn()(out))
  out = _torch_conv(out, planes, 3, strides, **_initializers(init, out, 3))
  shortcut = x
  if strides != 1 or in_planes != planes:
    shortcut = _torch_conv(x, planes, 1, strides, **_initializers(init, x))
  return layers.Add()([out, shortcut])


def wrn28_10_dp(input_shape=(32, 32, 3), num_classes=100, init="pytorch"):
  """The WRN-28-10 of Data Parameters (Saxena et al. 2019; ``apple/ml-data-parameters``,
  ``models/wide_resnet.py``, ``WideResNet28_10``, itself from meliketoy/wide-resnet.pytorch).

  conv3x3 16 -> 3 stages of 4 WideBasic blocks (widths 160, 320, 640, strides 1, 2, 2) -> BN-ReLU
  -> average pool 8x8 -> flatten -> dense logits. Unlike ``wrn28_10`` (Learning to Reweight's TF
  network) every conv, the stem's and the 1x1 shortcuts' included, has a bias; the stride sits on
  each block's *second* conv; a shape change goes through a 1x1 projection, not zero channels;
  and the shortcut always leaves from the block input, before its BN-ReLU. The original asserts
  a dropout rate of 0, so its ``nn.Dropout`` is left out. The 8x8 pool makes the final map 1x1
  only for 32x32 inputs.

  Batch norm is PyTorch's default (eps 1e-5, momentum 0.1, Keras 0.9) except the final one, which
  the original creates with PyTorch momentum 0.9 (Keras 0.1): its moving statistics are 90% the
  latest batch. The original defines a Xavier init (gain sqrt(2)) but never applies it, so it
  trains from PyTorch's default init, which ``init="pytorch"`` (the default) reproduces: every
  conv kernel and bias, the dense kernel and bias, U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  (kaiming-uniform(a=sqrt(5)) for the weights). ``init="keras"`` gives Keras' defaults
  (Glorot-uniform kernels, zero biases), which differ from both. The original's weight decay
  (torch SGD over ``model.parameters()``) also covers the biases and batch-norm parameters, not
  only the variables named ``kernel``.

  36,546,980 trainable parameters (36,564,932 with the batch-norm moving statistics).
  """
  _check_init(init)
  inputs = keras.Input(input_shape)
  x = _torch_conv(inputs, 16, 3, **_initializers(init, inputs, 3))
  in_planes = 16
  for planes, stage_stride in zip((160, 320, 640), (1, 2, 2)):
    for block in range(4):
      x = _dp_wide_block(x, in_planes, planes, stage_stride if block == 0 else 1, init)
      in_planes = planes
  x = layers.BatchNormalization(momentum=0.1, epsilon=1e-5)(x)
  x = layers.ReLU()(x)
  x = layers.AveragePooling2D(8)(x)
  x = layers.Flatten()(x)
  outputs = layers.Dense(num_classes, **_initializers(init, x))(x)
  return keras.Model(inputs, outputs, name="wrn28_10_dp")


def _kaiming_normal_fan_out():
  """torchvision ResNet's conv init: kaiming_normal_(mode="fan_out", nonlinearity="relu"), i.e.
  N(0, 2 / (k * k * out_channels)) untruncated (Keras' fan_out of a conv kernel is the same
  k * k * out_channels)."""
  return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="untruncated_normal")


def _torchvision_basic_block(x, in_planes, planes, strides):
  """torchvision BasicBlock: conv3x3(strides) -> BN-ReLU -> conv3x3 -> BN, plus the input (through
  conv1x1(strides) -> BN when the shape changes), then ReLU. No conv has a bias."""
  init = _kaiming_normal_fan_out()
  out = _torch_conv(x, planes, 3, strides, use_bias=False, kernel_initializer=init)
  out = layers.ReLU()(_torch_bn()(out))
  out = _torch_bn()(_torch_conv(out, planes, 3, use_bias=False, kernel_initializer=init))
  shortcut = x
  if strides != 1 or in_planes != planes:
    shortcut = _torch_bn()(_torch_conv(x, planes, 1, strides, use_bias=False,
                                       kernel_initializer=init))
  return layers.ReLU()(layers.Add()([out, shortcut]))


def resnet18_imagenet(input_shape=(224, 224, 3), num_classes=1000):
  """torchvision's ``resnet18()``, the default model of Data Parameters' ``main_imagenet.py``.

  conv7x7/2 64 (pad 3, no bias) -> BN-ReLU -> max-pool 3x3/2 (pad 1) -> 4 stages of 2 BasicBlocks,
  widths 64, 128, 256, 512, strides 1, 2, 2, 2 -> global average pool -> dense logits. Padding is
  explicit as in PyTorch (see ``_torch_conv``). The max-pool pads with zeros where PyTorch pads
  with -inf; that gives the same maxima because its input has passed a ReLU and every window
  holds at least one real pixel. Global pooling (torchvision's adaptive 1x1 pool) lets any input
  of 32x32 or more through: 224 -> 112 -> 56 -> 56, 28, 14, 7.

  Batch norm eps 1e-5, Keras momentum 0.9 (PyTorch 0.1), gamma 1 and beta 0. Initialisers are
  torchvision's: kaiming-normal fan-out conv kernels, nn.Linear's default uniform init for the
  classifier (``zero_init_residual`` is off in torchvision's default, so here too).

  11,689,512 trainable parameters for 1000 classes, torchvision's count (11,699,112 with the
  batch-norm moving statistics).
  """
  inputs = keras.Input(input_shape)
  x = _torch_conv(inputs, 64, 7, strides=2, use_bias=False,
                  kernel_initializer=_kaiming_normal_fan_out())
  x = layers.ReLU()(_torch_bn()(x))
  x = layers.ZeroPadding2D(1)(x)
  x = layers.MaxPooling2D(3, strides=2)(x)
  in_planes = 64
  for planes, stage_stride in zip((64, 128, 256, 512), (1, 2, 2, 2)):
    for block in range(2):
      x = _torchvision_basic_block(x, in_planes, planes, stage_stride if block == 0 else 1)
      in_planes = planes
  x = layers.GlobalAveragePooling2D()(x)
  kernel_init, bias_init = _torch_default_init(in_planes)
  outputs = layers.Dense(num_classes, kernel_initializer=kernel_init,
                         bias_initializer=bias_init)(x)
  return keras.Model(inputs, outputs, name="resnet18_imagenet")
