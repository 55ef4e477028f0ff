"""The label-noise procedures of the reweighting papers, as coded and as intended."""

import numpy as np
import pytest

from common.data import noise as noiselib

K = 10


def _labels(n=20000, seed=1):
  return np.random.default_rng(seed).integers(0, K, n)


def test_uniform_flip_as_coded_redraws_from_the_first_k_minus_1_classes():
  y = _labels()
  y_noisy, corrupted = noiselib.uniform_flip(y, 0.4, K, seed=0, as_coded=True)
  n_flip = 8000
  np.testing.assert_array_equal(y_noisy[n_flip:], y[n_flip:])
  assert set(np.unique(y_noisy[:n_flip])) == set(range(K - 1))     # class 9 never drawn
  kept = np.mean(y_noisy[:n_flip] == y[:n_flip])
  assert abs(kept - 0.9 / (K - 1)) < 0.01         # a true label of 0..8 is redrawn 1/9 of times
  np.testing.assert_array_equal(corrupted, y_noisy != y)
  assert corrupted.sum() < n_flip


def test_uniform_flip_as_intended_always_flips_uniformly():
  y = _labels()
  y_noisy, corrupted = noiselib.uniform_flip(y, 0.4, K, seed=0, as_coded=False)
  assert corrupted.sum() == 8000 and corrupted[:8000].all()
  offsets = (y_noisy[:8000] - y[:8000]) % K
  counts = np.bincount(offsets, minlength=K)
  assert counts[0] == 0 and counts[1:].min() > 0.8 * 8000 / 9


def test_background_flip_as_coded():
  y = _labels()
  y_noisy, corrupted = noiselib.background_flip(y, 0.4, K, seed=3, as_coded=True)
  b = y_noisy[0]
  assert b < K - 1 and (y_noisy[:8000] == b).all()
  np.testing.assert_array_equal(y_noisy[8000:], y[8000:])
  # Points of class b among the first 8000 keep a correct label.
  np.testing.assert_array_equal(corrupted[:8000], y[:8000] != b)


def test_background_flip_as_intended_corrupts_exactly_the_fraction():
  y = _labels()
  for seed in range(5):
    y_noisy, corrupted = noiselib.background_flip(y, 0.4, K, seed=seed, as_coded=False)
    assert corrupted.sum() == 8000
    assert len(np.unique(y_noisy[corrupted])) == 1


def test_background_class_ranges_over_all_k_as_intended_and_k_minus_1_as_coded():
  """As intended the background class b is uniform over all K classes (K - 1 included); the
  official generator's randint(0, K - 1) never picks K - 1. Over many seeds every allowed
  class appears, and b is exactly where the procedure says the flipped points go."""
  y = _labels(400)
  n_flip = 100
  intended, coded = [], []
  for seed in range(200):
    y_noisy, corrupted = noiselib.background_flip(y, 0.25, K, seed=seed, as_coded=False)
    b = int(y_noisy[np.flatnonzero(corrupted)[0]])
    # The first n_flip points not of class b are relabelled b; nothing else changes.
    others = np.flatnonzero(y != b)[:n_flip]
    expected = y.copy()
    expected[others] = b
    np.testing.assert_array_equal(y_noisy, expected)
    np.testing.assert_array_equal(corrupted, y_noisy != y)
    intended.append(b)
    y_noisy, corrupted = noiselib.background_flip(y, 0.25, K, seed=seed, as_coded=True)
    b = int(y_noisy[0])
    np.testing.assert_array_equal(y_noisy[:n_flip], np.full(n_flip, b))
    np.testing.assert_array_equal(y_noisy[n_flip:], y[n_flip:])
    coded.append(b)
  counts = np.bincount(intended, minlength=K)
  assert len(counts) == K and counts.min() >= 5, counts      # K - 1 included, roughly uniform
  assert set(coded) == set(range(K - 1)), sorted(set(coded))  # never K - 1


def test_per_class_flip_is_exact_per_class_and_never_keeps_the_label():
  y = np.repeat(np.arange(K), 5000)
  y_noisy, corrupted = noiselib.per_class_flip(y, 0.4, K, seed=123)
  for c in range(K):
    assert corrupted[y == c].sum() == 2000
  np.testing.assert_array_equal(corrupted, y_noisy != y)
  # New labels spread over the other classes.
  assert np.bincount(y_noisy[corrupted & (y == 0)], minlength=K)[1:].min() > 150
  # Corrupted points are spread through the class, not its first members.
  assert 0.3 < corrupted[:2500].mean() < 0.5


@pytest.mark.parametrize("noise_type", sorted(noiselib.NOISE_TYPES))
def test_every_procedure_is_deterministic_and_validates(noise_type):
  y = _labels(1000)
  a = noiselib.apply_noise(noise_type, y, 0.3, K, seed=7)
  b = noiselib.apply_noise(noise_type, y, 0.3, K, seed=7)
  np.testing.assert_array_equal(a[0], b[0])
  assert noiselib.apply_noise(noise_type, y, 0.0, K, seed=7)[1].sum() == 0
  with pytest.raises(ValueError, match=r"noise must be a fraction in \[0, 1\]"):
    noiselib.apply_noise(noise_type, y, 1.2, K, seed=0)


def test_unknown_noise_type():
  with pytest.raises(ValueError, match="Unknown noise_type 'gaussian'"):
    noiselib.apply_noise("gaussian", _labels(10), 0.1, K, seed=0)


def test_permute_first_shuffles_labels_within_the_subset_only():
  y = _labels(10000)
  y_noisy, corrupted = noiselib.permute_first(y, 0.4, K, seed=1)
  np.testing.assert_array_equal(y_noisy[4000:], y[4000:])
  np.testing.assert_array_equal(np.sort(y_noisy[:4000]), np.sort(y[:4000]))  # same marginal
  np.testing.assert_array_equal(corrupted, y_noisy != y)
  assert abs(corrupted[:4000].mean() - 0.9) < 0.02      # 1/K keep their label by chance
