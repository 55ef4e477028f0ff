"""What every loader returns, and the one rule that cuts a source's images into train/val/test.

Loaders only read images ("pools"); `apply_split` decides which of them become train, val and
test, so the reference splits (penalty.md §6.2-6.5) and the way they shrink when a source holds
fewer images than a split asks for are written once, here.
"""

import dataclasses
from typing import NamedTuple, Optional

import numpy as np

# Seed of the fixed permutations applied to class-ordered sources (embedded MNIST, image
# folders). It is a property of the data, not of a run: the run seed must not change which
# images are train, val and test, or which ones the label noise corrupts.
FIXED_PERMUTATION_SEED = 0


class SplitSizes(NamedTuple):
  train: int
  val: int
  test: int

  def as_dict(self):
    return {"train": int(self.train), "val": int(self.val), "test": int(self.test)}

  def __str__(self):
    return f"{self.train}/{self.val}/{self.test}"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Splits:
  """Train/val/test arrays: x float32 NHWC, y int64 class ids, plus a json-serialisable info."""

  x_train: np.ndarray
  y_train: np.ndarray
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  class_names: tuple
  info: dict
  # Each training point's id, where the source has ids (common/data/custom.py: paths or ids).
  train_ids: Optional[np.ndarray] = None

  def __repr__(self):
    # The default dataclass repr would print pixel arrays; shapes are what one wants to see.
    return (f"Splits({self.info.get('dataset')}, source={self.info.get('source')}, "
            f"train={self.x_train.shape}, val={self.x_val.shape}, test={self.x_test.shape}, "
            f"num_classes={self.num_classes})")


@dataclasses.dataclass(frozen=True)
class Pools:
  """The images a source holds, in the source's order, before the split rule.

  - Only `x_train` given: one pool (embedded MNIST); train, val and test are consecutive slices.
  - `x_test` given: train and val come from the training pool, test from the test pool.
  - `x_val` given as well: the validation set was already held out (SVHN holds out 100 random
    images per class); `x_train` is what is left for training.
  """

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: Optional[np.ndarray] = None
  y_test: Optional[np.ndarray] = None
  x_val: Optional[np.ndarray] = None
  y_val: Optional[np.ndarray] = None

  def __post_init__(self):
    for x, y, part in ((self.x_train, self.y_train, "training"), (self.x_test, self.y_test, "test"),
                       (self.x_val, self.y_val, "validation")):
      if (x is None) != (y is None):
        raise ValueError(f"the {part} pool needs both images and labels")
      if x is not None and len(x) != len(y):
        raise ValueError(f"the {part} pool holds {len(x)} images but {len(y)} labels")
    if self.x_val is not None and self.x_test is None:
      raise ValueError("a held-out validation set needs a separate test pool")


def fixed_permutation(n):
  """The permutation of range(n) used to class-mix a class-ordered source (seed 0, fixed)."""
  return np.random.default_rng(FIXED_PERMUTATION_SEED).permutation(n)


def _scaled(sizes, pool, total):
  # Integer arithmetic, so that e.g. 5000 * 5000 // 20000 is exactly 1250 (no float floor error).
  return [n * pool // total for n in sizes]


def apply_split(pools, sizes, source, split):
  """Cut `pools` into train/val/test of `sizes` (SplitSizes) following the rule above.

  A source that holds fewer images than the split asks for gives a proportionally smaller split
  rather than an error, so small real subsets (the embedded 5000 MNIST images, the 10000-image
  CIFAR-10 folder) run the same protocol. Returns (parts, actual, scaled, note): parts maps
  "x_train", "y_train", ... to array slices; actual is a SplitSizes; note is one sentence.
  """
  sizes = SplitSizes(*sizes)
  if pools.x_test is None:
    parts, actual, scaled, note = _single_pool(pools, sizes, source, split)
  elif pools.x_val is None:
    parts, actual, scaled, note = _two_pools(pools, sizes, source, split)
  else:
    parts, actual, scaled, note = _held_out_val(pools, sizes, source, split)
  # A part the split asks to be empty (no clean validation set) may be; others may not.
  empty = [name for name, n in actual._asdict().items() if n == 0 and getattr(sizes, name) > 0]
  if empty:
    raise ValueError(f"too few images for split {split!r}: {note}; the "
                     f"{' and '.join(empty)} part would be empty")
  return parts, actual, scaled, note


def _single_pool(pools, sizes, source, split):
  pool = len(pools.x_train)
  total = sum(sizes)
  if pool >= total:
    actual, scaled = sizes, False
    note = f"split {split!r}: {actual} (train/val/test) as requested"
  else:
    actual, scaled = SplitSizes(*_scaled(sizes, pool, total)), True
    note = (f"the {source} source holds {pool} images, fewer than the {total} the split "
            f"{split!r} asks for: split scaled by {pool / total:.4g} to {actual}")
  a, b, c = actual.train, actual.train + actual.val, sum(actual)
  parts = dict(x_train=pools.x_train[:a], y_train=pools.y_train[:a],
               x_val=pools.x_train[a:b], y_val=pools.y_train[a:b],
               x_test=pools.x_train[b:c], y_test=pools.y_train[b:c])
  return parts, actual, scaled, note


def _test_part(pools, sizes, source):
  n_test = min(sizes.test, len(pools.x_test))
  note = ""
  if n_test < sizes.test:
    note = (f"; the {source} source's test set holds {len(pools.x_test)} images, fewer than "
            f"the {sizes.test} requested: all of them are used")
  return n_test, note


def _two_pools(pools, sizes, source, split):
  pool = len(pools.x_train)
  n_tv = sizes.train + sizes.val
  if pool >= n_tv:
    n_train, n_val = sizes.train, sizes.val
    note = f"split {split!r}: train/val {n_train}/{n_val} as requested"
  else:
    n_train, n_val = _scaled((sizes.train, sizes.val), pool, n_tv)
    note = (f"the {source} source holds {pool} training images, fewer than the {n_tv} "
            f"(train + val) the split {split!r} asks for: train/val scaled by "
            f"{pool / n_tv:.4g} to {n_train}/{n_val}")
  n_test, test_note = _test_part(pools, sizes, source)
  actual = SplitSizes(n_train, n_val, n_test)
  note += (test_note or f", test {n_test}")
  a, b = n_train, n_train + n_val
  parts = dict(x_train=pools.x_train[:a], y_train=pools.y_train[:a],
               x_val=pools.x_train[a:b], y_val=pools.y_train[a:b],
               x_test=pools.x_test[:n_test], y_test=pools.y_test[:n_test])
  return parts, actual, actual != sizes, note


def _held_out_val(pools, sizes, source, split):
  n_val = len(pools.x_val)
  n_train = min(sizes.train, len(pools.x_train))
  if n_train == sizes.train and n_val == sizes.val:
    note = f"split {split!r}: train/val {n_train}/{n_val} as requested"
  else:
    pool = len(pools.x_train) + n_val
    note = (f"the {source} source holds {pool} training images, fewer than the "
            f"{sizes.train + sizes.val} (train + val) the split {split!r} asks for: "
            f"{n_val} held out for validation and {n_train} left for training "
            f"({pool / (sizes.train + sizes.val):.4g} of the requested size)")
  n_test, test_note = _test_part(pools, sizes, source)
  actual = SplitSizes(n_train, n_val, n_test)
  note += (test_note or f", test {n_test}")
  parts = dict(x_train=pools.x_train[:n_train], y_train=pools.y_train[:n_train],
               x_val=pools.x_val, y_val=pools.y_val,
               x_test=pools.x_test[:n_test], y_test=pools.y_test[:n_test])
  return parts, actual, actual != sizes, note
