"""Data augmentation as a pure function of a seed, so resumed runs augment identically.

``cifar`` reproduces the Keras ``ImageDataGenerator`` settings of the penalty paper's CIFAR-10
runs, drawn independently per image: rotation up to 40 degrees, width/height shift up to 20%,
shear up to 0.2 *degrees* (ImageDataGenerator's unit), zoom in [0.8, 1.2] per axis, horizontal
flip, 'nearest' fill.
"""

import math

import tensorflow as tf


def _affine(x, seed, rotation_deg, shift, shear_deg, zoom, flip):
  n = tf.shape(x)[0]
  h = tf.cast(tf.shape(x)[1], tf.float32)
  w = tf.cast(tf.shape(x)[2], tf.float32)
  key = tf.constant([seed[0], seed[1]], tf.int64)
  for extra in seed[2:]:
    key = tf.random.experimental.stateless_fold_in(key, extra)
  seeds = tf.random.experimental.stateless_split(key, 7)
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


AUGMENTATIONS = {"none": None, "cifar": cifar}
