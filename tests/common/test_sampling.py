"""The class-matched split sampler: identical label multisets, stateless, fair over classes."""

import collections

import numpy as np
import pytest

from common.data.sampling import ClassMatchedSampler


def _labels(seed=0):
  rng = np.random.default_rng(seed)
  return rng.choice(4, size=200, p=[0.1, 0.2, 0.3, 0.4])


def test_every_split_has_the_same_label_multiset():
  labels = _labels()
  sampler = ClassMatchedSampler(labels, splits=8, split_size=8, seed=3)
  for step in range(100):
    idx = sampler.batch_indices(step).reshape(8, 8)
    multisets = [collections.Counter(labels[row].tolist()) for row in idx]
    assert all(m == multisets[0] for m in multisets), step


def test_batches_are_a_pure_function_of_seed_and_step():
  labels = _labels()
  a = ClassMatchedSampler(labels, 4, 5, seed=1)
  b = ClassMatchedSampler(labels, 4, 5, seed=1)
  forward = [a.batch_indices(s) for s in range(60)]
  backward = [b.batch_indices(s) for s in reversed(range(60))][::-1]
  for x, y in zip(forward, backward):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(ClassMatchedSampler(labels, 4, 5, seed=2).batch_indices(0),
                            forward[0])


def test_each_class_cycles_through_its_images_and_classes_follow_their_frequency():
  labels = _labels()
  splits, k = 2, 10
  sampler = ClassMatchedSampler(labels, splits, k, seed=0)
  steps = len(labels) // k                       # one pass through the slot list
  drawn = np.concatenate([sampler.batch_indices(s) for s in range(steps)])
  counts = collections.Counter(labels[drawn].tolist())
  for c, n_c in collections.Counter(labels.tolist()).items():
    assert counts[c] == splits * n_c             # proportional to the (noisy) label frequency
    imgs = [i for i in drawn if labels[i] == c]
    # 2 * n_c draws of class c: every image exactly twice (two reshuffled passes).
    assert collections.Counter(imgs) == {i: 2 for i in np.flatnonzero(labels == c)}


def test_bad_sizes_are_rejected():
  with pytest.raises(ValueError, match="splits and split_size"):
    ClassMatchedSampler(_labels(), 0, 8, seed=0)
