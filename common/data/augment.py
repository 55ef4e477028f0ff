"""Data augmentation as a pure function of a seed, so resumed runs augment identically.

Every function takes and returns an NHWC float32 batch (pixels in [0, 1] on input), draws its
random numbers per image with stateless ops, and can be traced into a tf.function.
``AUGMENTATIONS[name](x, seed)`` is the training transform (None: identity); a seed is a tuple
(a, b, *more) of integers. ``EVAL_TRANSFORMS[name](x)`` is its deterministic counterpart for
evaluation (None: identity), and ``output_shape(name, input_shape)`` the image shape the model
sees.

``cifar`` reproduces the Keras ``ImageDataGenerator`` settings of the penalty paper's CIFAR-10
runs, drawn independently per image: rotation up to 40 degrees, width/height shift up to 20%,
shear up to 0.2 *degrees* (ImageDataGenerator's unit), zoom in [0.8, 1.2] per axis, horizontal
flip, 'nearest' fill. Evaluation uses the images as they are.

``l2rw_cifar`` is the official Learning to Reweight CIFAR pipeline
(datasets/cifar/cifar_input_pipeline.py): pad with zeros to 36x36 (resize_image_with_crop_or_pad,
2 pixels each side), a random 32x32 crop, a random horizontal flip, then (x - 0.5) * 2.
Evaluation applies only (x - 0.5) * 2, so inputs in [0, 1] become [-1, 1].

``jenni_cifar`` is Deep Bilevel Learning's PreprocessorCIFAR (sjenni/DeepBilevel,
Preprocessor_cifar.py) with its 29x29 target shape: pad 4 zeros each side (40x40), a random
29x29 crop, a random horizontal flip, random brightness (max_delta 63), random contrast (factor
in [0.2, 1.8]) and per-image standardisation. The original works on 0-255 pixel values; so does
this one (inputs are multiplied by 255 first), which makes max_delta and the standardisation's
minimum standard deviation 1/sqrt(H*W*C) act on the same scale. Two consequences of the
original order, kept as they are: the brightness shift is undone exactly by the standardisation
(neither op clips), so it has no effect beyond float rounding; the contrast factor scales each
channel about its own mean, so after standardisation it only changes how much the channel means
differ relative to the pixel variation. Evaluation crops the centre 29x29 (offset (32-29)//2 = 1
at the top and left, as resize_image_with_crop_or_pad does) and standardises.

``dp_cifar`` is Data Parameters' CIFAR-100 pipeline (apple/ml-data-parameters, main_cifar.py):
RandomCrop(32, padding=4) with zero fill, RandomHorizontalFlip, ToTensor, then Normalize with
the *CIFAR-10* constants, mean (0.4914, 0.4822, 0.4465) and std (0.2023, 0.1994, 0.2010), which
the original uses for CIFAR-100 as well. The padding zeros are black pixels, so they are
normalised with the image. Evaluation only normalises.
"""

import math

import tensorflow as tf


def _key(seed):
  """The stateless RNG key of a seed tuple (a, b, *more): [a, b] with the others folded in.

  The entries may be Python integers, NumPy integers or integer tensors (inside a tf.function)
  and give the same key for the same values when those fit in int32. The fold depends on the
  dtype of what is folded in: Python integers fold in as int32 (tf.convert_to_tensor's choice
  for them, kept so that existing runs augment as before), so every other integer is cast to
  int32 as well.
  """
  key = tf.stack([tf.cast(seed[0], tf.int64), tf.cast(seed[1], tf.int64)])
  for extra in seed[2:]:
    if not isinstance(extra, int):
      extra = tf.cast(extra, tf.int32)
    key = tf.random.experimental.stateless_fold_in(key, extra)
  return key


def _affine(x, seed, rotation_deg, shift, shear_deg, zoom, flip):
  n = tf.shape(x)[0]
  h = tf.cast(tf.shape(x)[1], tf.float32)
  w = tf.cast(tf.shape(x)[2], tf.float32)
  seeds = tf.random.experimental.stateless_split(_key(seed), 7)
  u = lambda i, lo, hi: tf.random.stateless_uniform([n], seeds[i], lo, hi)
  theta = u(0, -rotation_deg, rotation_deg) * (math.pi / 180.0)
  tx = u(1, -shift, shift) * w
  ty = u(2, -shift, shift) * h
  shear = u(3, -shear_deg, shear_deg) * (math.pi / 180.0)
  zx = u(4, 1.0 - zoom, 1.0 + zoom)
  zy = u(5, 1.0 - zoom, 1.0 + zoom)
  fl = tf.where(u(6, 0.0, 1.0) < 0.5, -1.0, 1.0) if flip else tf.ones([n])
  # Output pixel (x', y') samples input at M (x' - c) + c + t, with c the image centre.
  cos, sin = tf.cos(theta), tf.sin(theta)
  a0 = cos * zx * fl
  a1 = -tf.sin(theta + shear) * zy
  b0 = sin * zx * fl
  b1 = tf.cos(theta + shear) * zy
  cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
  a2 = cx - a0 * cx - a1 * cy + tx
  b2 = cy - b0 * cx - b1 * cy + ty
  zeros = tf.zeros([n])
  transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
  return tf.raw_ops.ImageProjectiveTransformV3(
      images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=0.0,
      interpolation="BILINEAR", fill_mode="NEAREST")


def cifar(x, seed):
  """One random ImageDataGenerator-style transform per image of ``x`` (NHWC float)."""
  return _affine(x, seed, rotation_deg=40.0, shift=0.2, shear_deg=0.2, zoom=0.2, flip=True)


def _pad(x, pad):
  """Zeros around every image, `pad` pixels on each side."""
  return tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])


def _crop_flip(x, key, height, width):
  """Per image a random height x width window of ``x``, mirrored left-right with probability 1/2.

  One gather of rows and one of columns, with the window offsets drawn per image; a mirrored
  window reads its columns in reverse, which is the same as cropping and then flipping.
  """
  n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
  keys = tf.random.experimental.stateless_split(key, 3)
  top = tf.random.stateless_uniform([n], keys[0], 0, h - height + 1, dtype=tf.int32)
  left = tf.random.stateless_uniform([n], keys[1], 0, w - width + 1, dtype=tf.int32)
  mirrored = tf.random.stateless_uniform([n], keys[2]) < 0.5
  rows = top[:, None] + tf.range(height)
  steps = tf.range(width)
  cols = left[:, None] + tf.where(mirrored[:, None], width - 1 - steps, steps)
  x = tf.gather(x, rows, axis=1, batch_dims=1)
  return tf.gather(x, cols, axis=2, batch_dims=1)


def l2rw_cifar(x, seed):
  """Learning to Reweight's CIFAR training transform: pad 2, crop back, flip, (x - 0.5) * 2.

  The crop has the input's size (32x32 for CIFAR), so the model sees the shape it was given.
  """
  x = tf.convert_to_tensor(x, tf.float32)
  # The static size when it is known (a batch of unknown size inside a tf.function still has it).
  height = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
  width = x.shape[2] if x.shape[2] is not None else tf.shape(x)[2]
  x = _crop_flip(_pad(x, 2), _key(seed), height, width)
  return (x - 0.5) * 2.0


def l2rw_cifar_eval(x):
  """Learning to Reweight's CIFAR evaluation transform: (x - 0.5) * 2, [0, 1] -> [-1, 1]."""
  return (tf.convert_to_tensor(x, tf.float32) - 0.5) * 2.0


JENNI_SIZE = 29              # PreprocessorCIFAR's target shape in the CIFAR-10 experiments
JENNI_PAD = 4                # its _PADDING
JENNI_BRIGHTNESS = 63.0      # random_brightness max_delta, on 0-255 pixel values
JENNI_CONTRAST = (0.2, 1.8)  # random_contrast lower, upper


def jenni_cifar(x, seed):
  """Deep Bilevel Learning's CIFAR training transform (see the module docstring)."""
  x = tf.convert_to_tensor(x, tf.float32) * 255.0
  keys = tf.random.experimental.stateless_split(_key(seed), 3)
  x = _crop_flip(_pad(x, JENNI_PAD), keys[0], JENNI_SIZE, JENNI_SIZE)
  n = tf.shape(x)[0]
  delta = tf.random.stateless_uniform([n, 1, 1, 1], keys[1], -JENNI_BRIGHTNESS, JENNI_BRIGHTNESS)
  x = x + delta
  # tf.image.adjust_contrast with one factor per image: each channel about its own mean.
  factor = tf.random.stateless_uniform([n, 1, 1, 1], keys[2], *JENNI_CONTRAST)
  mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
  x = (x - mean) * factor + mean
  return tf.image.per_image_standardization(x)


def jenni_cifar_eval(x):
  """Deep Bilevel Learning's CIFAR evaluation transform: centre 29x29 crop, standardisation."""
  x = tf.convert_to_tensor(x, tf.float32) * 255.0
  x = tf.image.resize_with_crop_or_pad(x, JENNI_SIZE, JENNI_SIZE)
  return tf.image.per_image_standardization(x)


DP_PAD = 4                                # RandomCrop(32, padding=4)
DP_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10's, used by the original for CIFAR-100 too
DP_CIFAR_STD = (0.2023, 0.1994, 0.2010)


def dp_cifar_eval(x):
  """Data Parameters' CIFAR evaluation transform: (x - mean) / std per channel.

  A true division (divide_no_nan; std is never zero): inside a tf.function, grappler's constant
  folding turns a plain division by a constant into a multiplication by its reciprocal, which
  rounds differently in the last bit, so traced and eager results would differ.
  """
  x = tf.convert_to_tensor(x, tf.float32) - tf.constant(DP_CIFAR_MEAN, tf.float32)
  return tf.math.divide_no_nan(x, tf.constant(DP_CIFAR_STD, tf.float32))


def dp_cifar(x, seed):
  """Data Parameters' CIFAR training transform: pad 4 zeros, crop back, flip, normalise.

  The crop has the input's size (32x32 for CIFAR), so the model sees the shape it was given.
  """
  x = tf.convert_to_tensor(x, tf.float32)
  height = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
  width = x.shape[2] if x.shape[2] is not None else tf.shape(x)[2]
  return dp_cifar_eval(_crop_flip(_pad(x, DP_PAD), _key(seed), height, width))


AUGMENTATIONS = {"none": None, "cifar": cifar, "l2rw_cifar": l2rw_cifar,
                 "jenni_cifar": jenni_cifar, "dp_cifar": dp_cifar}
EVAL_TRANSFORMS = {"none": None, "cifar": None, "l2rw_cifar": l2rw_cifar_eval,
                   "jenni_cifar": jenni_cifar_eval, "dp_cifar": dp_cifar_eval}
_CROPPED = {"jenni_cifar": (JENNI_SIZE, JENNI_SIZE)}


def output_shape(name, input_shape):
  """The (H, W, C) image shape the model sees after augmentation ``name`` of ``input_shape``
  (with "none", any input shape, e.g. feature vectors, as it is).

  Training and evaluation transforms of one name always agree on it.
  """
  if name not in AUGMENTATIONS:
    raise ValueError(f"Unknown augmentation {name!r}; valid choices: "
                     f"{', '.join(repr(n) for n in AUGMENTATIONS)}")
  if name == "none" and len(input_shape) != 3:
    return tuple(int(d) for d in input_shape)     # feature vectors (custom data): unchanged
  height, width, channels = input_shape
  if name in _CROPPED:
    height, width = _CROPPED[name]
  return (int(height), int(width), int(channels))
