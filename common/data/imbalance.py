"""Learning to Reweight's MNIST 4-vs-9 class-imbalance data (official ``get_imbalance_dataset``).

Digits 4 (label 0, the minority) and 9 (label 1) with a fraction ``proportion`` of 9s:

  validation  n_val // 2 fours and n_val // 2 nines, clean, from the shuffled training pool
  training    int(n_train * (1 - p)) - n_val // 2 fours and int(n_train * p) - n_val // 2 nines
              (the validation images come out of the training budget; the baselines use
              n_val = 0, so nothing is subtracted)
  test        n_test // 2 of each digit from the test pool

The products are taken in float arithmetic as the original does: at p = 0.9,
5000 * (1 - 0.9) = 499.99... gives 499 fours. The test images are the first ones of each digit
in the test pool's order (the same test set for every seed; the original takes the first 250
fours and 250 shuffled nines), so the spread over seeds measures training alone.

Training pool. The original reads MNIST with the TensorFlow tutorial's
``input_data.read_data_sets`` (validation_size 5000) and draws from ``mnist.train``: that
reader keeps the first 5,000 of the 60,000 training images as its validation split
(``validation_images = train_images[:validation_size]``) and the other 55,000 (images
5,000-59,999) as its train split. With the full 60,000-image training set (source "files" or
"tfds"), ``digit_pools`` restricts the pool the same way (``tutorial_train_split_only=True``,
the default; the config switch is ``imbalance.tutorial_train_split``; False draws from all
60,000). Only the canonical IDX files ("files") hold the images in the tutorial's order, so
only they give the original's exact pool; TFDS's order is its own. The embedded 5,000-image
source is not the full training set and is unaffected.
"""

import dataclasses

import numpy as np

from common import data
from common.data import mnist

MINORITY_DIGIT, MAJORITY_DIGIT = 4, 9
# The TensorFlow tutorial reader's split of the 60,000 MNIST training images: its validation
# split is the first 5,000, its train split (the original's pool) the other 55,000.
MNIST_TRAIN_IMAGES = 60000
TUTORIAL_VALIDATION_SIZE = 5000


@dataclasses.dataclass
class ImbalanceData:
  x_train: np.ndarray
  y_train: np.ndarray      # 0 = a 4, 1 = a 9
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  counts: dict             # how many 4s and 9s in each part


def class_counts(proportion, n_train, n_val):
  """(fours, nines) in the training part, as the original computes them."""
  half = n_val // 2
  return int(n_train * (1.0 - proportion)) - half, int(n_train * proportion) - half


def four_vs_nine(x_pool, y_pool, x_test_pool, y_test_pool, proportion, n_train, n_val, n_test,
                 seed):
  """The imbalanced binary split, drawn from MNIST digit pools with a numpy seed.

  Args:
    x_pool, y_pool: training pool (images, digit labels 0-9).
    x_test_pool, y_test_pool: test pool.
    proportion: fraction of 9s, in (0.5, 1).
    n_train, n_val, n_test: the official 5000, 10 (0 for the baselines), 500.
    seed: draws which pool images go to validation and training.
  """
  if not 0.0 < proportion < 1.0:
    raise ValueError(f"proportion (the fraction of 9s) must lie in (0, 1), got {proportion}.")
  if n_val % 2 or n_test % 2:
    raise ValueError(f"n_val and n_test must be even (half 4s, half 9s), got {n_val}, {n_test}.")
  fours, nines = class_counts(proportion, n_train, n_val)
  half = n_val // 2
  if fours < 1:
    raise ValueError(
        f"proportion {proportion} with n_train {n_train} leaves {fours} fours for training "
        f"after the {half} validation fours: int({n_train} * (1 - {proportion})) must exceed "
        f"{half}. Use a smaller proportion or a larger n_train.")
  y_pool, y_test_pool = np.asarray(y_pool), np.asarray(y_test_pool)
  rng = np.random.default_rng(seed)
  picked = {}
  for digit, need in ((MINORITY_DIGIT, fours + half), (MAJORITY_DIGIT, nines + half)):
    members = np.flatnonzero(y_pool == digit)
    if len(members) < need:
      raise ValueError(
          f"the training pool holds {len(members)} images of digit {digit}, fewer than the "
          f"{need} that proportion {proportion} with n_train {n_train} needs. Use a smaller "
          "n_train or proportion, or the full MNIST files (source='files').")
    picked[digit] = rng.permutation(members)[:need]
  test = []
  for digit in (MINORITY_DIGIT, MAJORITY_DIGIT):
    members = np.flatnonzero(y_test_pool == digit)
    if len(members) < n_test // 2:
      raise ValueError(f"the test pool holds {len(members)} images of digit {digit}, fewer than "
                       f"the {n_test // 2} asked for (n_test = {n_test}).")
    test.append(members[:n_test // 2])

  val_idx = np.concatenate([picked[MINORITY_DIGIT][:half], picked[MAJORITY_DIGIT][:half]])
  train_idx = np.concatenate([picked[MINORITY_DIGIT][half:], picked[MAJORITY_DIGIT][half:]])
  train_idx = rng.permutation(train_idx)
  test_idx = np.concatenate(test)
  binary = lambda y: (np.asarray(y) == MAJORITY_DIGIT).astype(np.int64)
  return ImbalanceData(
      x_train=x_pool[train_idx], y_train=binary(y_pool[train_idx]),
      x_val=x_pool[val_idx], y_val=binary(y_pool[val_idx]),
      x_test=x_test_pool[test_idx], y_test=binary(y_test_pool[test_idx]),
      counts={"train_4": fours, "train_9": nines, "val_4": half, "val_9": half,
              "test_4": n_test // 2, "test_9": n_test // 2})


def tutorial_train_split(x_pool, y_pool):
  """(x, y, restricted): the TensorFlow tutorial's train split of a full 60,000-image MNIST
  training set, images 5,000-59,999 in the given order (restricted True); any other pool is
  returned whole (restricted False)."""
  if len(y_pool) != MNIST_TRAIN_IMAGES:
    return x_pool, y_pool, False
  return x_pool[TUTORIAL_VALIDATION_SIZE:], y_pool[TUTORIAL_VALIDATION_SIZE:], True


def digit_pools(source, data_dir, n_train, n_test, tfds_download=False,
                tutorial_train_split_only=True):
  """The MNIST pools the 4-vs-9 data are drawn from: (x_pool, y_pool, x_test_pool,
  y_test_pool, note), float32 images in [0, 1]; ``n_train`` only enters the note.

  With one pool only (the embedded 5000 images), the last n_test / 2 images of digits 4 and 9
  in the pool's order are the test pool and the rest is the training pool.
  ``tutorial_train_split_only``: a full 60,000-image training set is restricted to the
  tutorial's train split (images 5,000-59,999) as in the original; False keeps all of it.
  """
  if source == "embedded":
    x, y = mnist.embedded_arrays()
    test = np.zeros(len(y), bool)
    for digit in (MINORITY_DIGIT, MAJORITY_DIGIT):
      test[np.flatnonzero(y == digit)[-(n_test // 2):]] = True
    x = x.astype(np.float32) / 255.0
    note = (f"embedded MNIST holds 500 images per digit: {n_test // 2} 4s and 9s held out "
            f"for testing, the rest (about {500 - n_test // 2} per digit) is the training "
            f"pool; the official run draws n_train 5000 / n_test 500 from the full MNIST files "
            f"(--config=importance_learning/configs/mnist_imbalance.py:paper), this one "
            f"{n_train} / {n_test}.")
    return x[~test], y[~test], x[test], y[test], note
  ds = data.load("mnist", source=source, data_dir=data_dir, split="large",
                 tfds_download=tfds_download)
  x_pool = np.concatenate([ds.x_train, ds.x_val])
  y_pool = np.concatenate([ds.y_train, ds.y_val])
  total = len(y_pool)
  restricted = False
  if tutorial_train_split_only:
    x_pool, y_pool, restricted = tutorial_train_split(x_pool, y_pool)
  note = f"MNIST from {ds.info['origin']}: {total} training and {len(ds.y_test)} test images"
  if restricted:
    note += (f"; the training pool is the TensorFlow tutorial's train split the original reads "
             f"(images {TUTORIAL_VALIDATION_SIZE:,}-{total - 1:,}, {len(y_pool)} images)")
    if source != "files":
      note += f" in the {source} source's order, which is not the IDX files' order"
  elif tutorial_train_split_only:
    note += (f"; not the full {MNIST_TRAIN_IMAGES}-image training set, so all of it is the "
             f"training pool")
  return x_pool, y_pool, ds.x_test, ds.y_test, note + "."
