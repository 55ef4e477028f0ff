"""common.data.augment: the L2RW, Deep Bilevel and Data Parameters CIFAR transforms on small
synthetic batches."""

import numpy as np
import pytest
import tensorflow as tf

from common.data import augment

NEW = ("l2rw_cifar", "jenni_cifar", "dp_cifar")


def _images(n, seed=0, size=32):
  return np.random.default_rng(seed).uniform(size=(n, size, size, 3)).astype(np.float32)


def _halves(n):
  """Images whose left half is 0 and right half 1: a mirrored image has them the other way."""
  x = np.zeros((n, 32, 32, 3), np.float32)
  x[:, :, 16:] = 1.0
  return x


def _standardised(x):
  """tf.image.per_image_standardization written out in NumPy, per image."""
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  std = x.std(axis=(1, 2, 3), keepdims=True)
  return (x - mean) / np.maximum(std, 1.0 / np.sqrt(x[0].size))


def test_registries_name_the_same_transforms():
  assert set(augment.AUGMENTATIONS) == set(augment.EVAL_TRANSFORMS)
  assert set(augment.AUGMENTATIONS) >= {"none", "cifar", *NEW}
  assert augment.AUGMENTATIONS["none"] is None and augment.EVAL_TRANSFORMS["none"] is None
  assert augment.EVAL_TRANSFORMS["cifar"] is None  # the penalty runs evaluate the raw images
  with pytest.raises(ValueError, match="Unknown augmentation 'zoom'.*'l2rw_cifar'"):
    augment.output_shape("zoom", (32, 32, 3))


@pytest.mark.parametrize("name, expected", [("none", (32, 32, 3)), ("cifar", (32, 32, 3)),
                                            ("l2rw_cifar", (32, 32, 3)),
                                            ("jenni_cifar", (29, 29, 3)),
                                            ("dp_cifar", (32, 32, 3))])
def test_train_and_eval_shapes_match_output_shape(name, expected):
  x = _images(3)
  assert augment.output_shape(name, x.shape[1:]) == expected
  for transform, args in ((augment.AUGMENTATIONS[name], ((1, 2, 3),)),
                          (augment.EVAL_TRANSFORMS[name], ())):
    out = x if transform is None else transform(x, *args)
    assert tuple(out.shape) == (3, *expected) and out.dtype == tf.float32


@pytest.mark.parametrize("name", NEW)
def test_pure_function_of_the_seed_and_traceable(name):
  fn = augment.AUGMENTATIONS[name]
  x = _images(8)
  a = fn(x, (1, 2, 3)).numpy()
  np.testing.assert_array_equal(a, fn(x, (1, 2, 3)).numpy())
  assert not np.array_equal(a, fn(x, (1, 2, 4)).numpy())
  assert not np.array_equal(a, fn(x, (2, 2, 3)).numpy())
  # Inside a tf.function of unknown batch and image size, with the seed as a tensor.
  traced = tf.function(lambda x, s: fn(x, (s[0], s[1], s[2])),
                       input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32),
                                        tf.TensorSpec([3], tf.int64)])
  np.testing.assert_array_equal(traced(x, tf.constant([1, 2, 3], tf.int64)).numpy(), a)


def test_l2rw_eval_maps_unit_interval_to_minus_one_one_exactly():
  x = np.concatenate([_images(2), np.zeros((1, 32, 32, 3)), np.ones((1, 32, 32, 3))])
  x = x.astype(np.float32)
  out = augment.l2rw_cifar_eval(x).numpy()
  np.testing.assert_array_equal(out, (x - np.float32(0.5)) * np.float32(2.0))
  assert out[2].min() == -1.0 and out[2].max() == -1.0 and out[3].min() == 1.0
  assert out.min() >= -1.0 and out.max() <= 1.0


def test_l2rw_train_is_a_window_of_the_padded_image_drawn_per_image():
  x = _images(12, seed=3)
  out = augment.l2rw_cifar(x, (4, 5, 6)).numpy() / 2.0 + 0.5  # undo the scaling
  padded = np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)])
  found = []
  for image, result in zip(padded, out):
    matches = [(top, left, flip) for top in range(5) for left in range(5) for flip in (0, 1)
               if np.allclose(result, (image[top:top + 32, left:left + 32, :][:, ::-1]
                                       if flip else image[top:top + 32, left:left + 32, :]),
                              atol=1e-6)]
    assert len(matches) == 1, matches  # random pixels: exactly one window fits
    found.append(matches[0])
  # Offsets and flips are drawn per image, not once for the batch.
  assert len({(top, left) for top, left, _ in found}) > 1
  assert {flip for _, _, flip in found} == {0, 1}


@pytest.mark.parametrize("name, left, right", [("l2rw_cifar", 10, 21), ("jenni_cifar", 5, 22),
                                               ("dp_cifar", 10, 21)])
def test_flip_mirrors_some_images_of_a_batch(name, left, right):
  # Columns `left` and `right` of the output lie in the image's left and right halves for every
  # crop offset (l2rw: input column j-2..j+2; jenni: j-4..j+7; dp: j-4..j+4).
  out = augment.AUGMENTATIONS[name](_halves(64), (0, 1, 2)).numpy()
  dark_left = out[:, 14, left, 0] < out[:, 14, right, 0]
  mirrored = out[:, 14, left, 0] > out[:, 14, right, 0]
  assert np.all(dark_left | mirrored)
  assert 10 < mirrored.sum() < 54


def test_jenni_train_output_is_standardised_per_image():
  out = augment.jenni_cifar(_images(16, seed=1), (7, 8, 9)).numpy()
  np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
  np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1.0, atol=1e-3)


def test_jenni_eval_crops_the_centre_at_offset_one_and_standardises():
  x = _images(4, seed=2)
  out = augment.jenni_cifar_eval(x).numpy()
  # resize_with_crop_or_pad from 32 to 29 drops (32 - 29) // 2 = 1 row/column at the top/left
  # and 2 at the bottom/right; the original works on 0-255 values, which matters only through
  # the minimum standard deviation.
  expected = _standardised(x[:, 1:30, 1:30, :] * np.float32(255.0))
  np.testing.assert_allclose(out, expected, atol=1e-4)
  np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
  np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1.0, atol=1e-3)
  # A constant image stays finite: its standard deviation is clamped to 1/sqrt(H*W*C).
  assert np.all(augment.jenni_cifar_eval(np.full((1, 32, 32, 3), 0.5, np.float32)).numpy() == 0)


_DP_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
_DP_STD = np.array([0.2023, 0.1994, 0.2010], np.float32)


def test_dp_eval_is_exactly_the_cifar10_normalisation():
  x = np.concatenate([_images(2, seed=4), np.zeros((1, 32, 32, 3), np.float32)])
  out = augment.dp_cifar_eval(x).numpy()
  np.testing.assert_array_equal(out, (x - _DP_MEAN) / _DP_STD)
  # Also when traced: a division by a constant must not become a multiplication by 1 / std.
  np.testing.assert_array_equal(tf.function(augment.dp_cifar_eval)(x).numpy(), out)
  # The original's constants are CIFAR-10's, also for CIFAR-100.
  assert augment.DP_CIFAR_MEAN == (0.4914, 0.4822, 0.4465)
  assert augment.DP_CIFAR_STD == (0.2023, 0.1994, 0.2010)


def test_dp_train_is_a_normalised_window_of_the_zero_padded_image():
  x = _images(12, seed=5)
  out = augment.dp_cifar(x, (6, 7, 8)).numpy() * _DP_STD + _DP_MEAN  # undo the normalisation
  padded = np.pad(x, [(0, 0), (4, 4), (4, 4), (0, 0)])  # zeros before normalising
  found = []
  for image, result in zip(padded, out):
    matches = [(top, left, flip) for top in range(9) for left in range(9) for flip in (0, 1)
               if np.allclose(result, (image[top:top + 32, left:left + 32, :][:, ::-1]
                                       if flip else image[top:top + 32, left:left + 32, :]),
                              atol=1e-6)]
    assert len(matches) == 1, matches
    found.append(matches[0])
  assert len({(top, left) for top, left, _ in found}) > 1
  assert {flip for _, _, flip in found} == {0, 1}
