"""Learning to Reweight's MNIST 4-vs-9 class-imbalance data (official ``get_imbalance_dataset``).

Digits 4 (label 0, the minority) and 9 (label 1) with a fraction ``proportion`` of 9s:

  validation  n_val // 2 fours and n_val // 2 nines, clean, from the shuffled training pool
  training    int(n_train * (1 - p)) - n_val // 2 fours and int(n_train * p) - n_val // 2 nines
              (the validation images come out of the training budget; the baselines use
              n_val = 0, so nothing is subtracted)
  test        n_test // 2 of each digit from the test pool

With ``n_train = 0`` (the all-nines rule, for a pool too small for the 5000-image budget) the
training part holds every 9 of the pool that is not a test or validation 9, and
round(nines * (1 - p) / p) 4s, so that a fraction p of it are 9s. The baselines' training part
is then L2RW's training part plus its validation images (``merge_val``): the same labelled
images, none set aside, as the budget rule's n_val = 0 gives.

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


def class_counts(proportion, n_train, n_val, nines_in_pool=None):
  """(fours, nines) in the training part.

  n_train > 0: the original's budget, int(n_train * (1 - p)) - n_val // 2 fours and
  int(n_train * p) - n_val // 2 nines. n_train == 0: the all-nines rule, every one of the
  pool's ``nines_in_pool`` 9s less the n_val // 2 validation ones, and
  round(nines * (1 - p) / p) fours.
  """
  half = n_val // 2
  if n_train:
    return int(n_train * (1.0 - proportion)) - half, int(n_train * proportion) - half
  if nines_in_pool is None:
    raise ValueError("the all-nines rule (n_train 0) needs the pool's count of 9s.")
  nines = int(nines_in_pool) - half
  return int(round(nines * (1.0 - proportion) / proportion)), nines


def four_vs_nine(x_pool, y_pool, x_test_pool, y_test_pool, proportion, n_train, n_val, n_test,
                 seed, merge_val=False):
  """The imbalanced binary split, drawn from MNIST digit pools with a numpy seed.

  Args:
    x_pool, y_pool: training pool (images, digit labels 0-9).
    x_test_pool, y_test_pool: test pool.
    proportion: fraction of 9s, in (0.5, 1).
    n_train, n_val, n_test: the official 5000, 10 (0 for the baselines), 500; n_train 0: the
      all-nines rule (every 9 of the pool not set aside for validation).
    seed: draws which pool images go to validation and training.
    merge_val: the validation images join the training part (the baselines under the
      all-nines rule), which is then reshuffled; x_val / y_val are empty.
  """
  if not 0.0 < proportion < 1.0:
    raise ValueError(f"proportion (the fraction of 9s) must lie in (0, 1), got {proportion}.")
  if n_val % 2 or n_test % 2:
    raise ValueError(f"n_val and n_test must be even (half 4s, half 9s), got {n_val}, {n_test}.")
  y_pool, y_test_pool = np.asarray(y_pool), np.asarray(y_test_pool)
  fours, nines = class_counts(proportion, n_train, n_val,
                              int((y_pool == MAJORITY_DIGIT).sum()))
  half = n_val // 2
  if fours < 1:
    rule = (f"int({n_train} * (1 - {proportion})) must exceed {half}. Use a smaller "
            "proportion or a larger n_train" if n_train else
            f"round({nines} * (1 - {proportion}) / {proportion}) is below 1 (n_train 0 takes "
            "every 9 of the pool). Use a smaller proportion")
    raise ValueError(
        f"proportion {proportion} with n_train {n_train} leaves {fours} fours for training "
        f"after the {half} validation fours: {rule}.")
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
  counts = {"train_4": fours, "train_9": nines, "val_4": half, "val_9": half}
  if merge_val:
    train_idx = rng.permutation(np.concatenate([train_idx, val_idx]))
    val_idx = val_idx[:0]
    counts = {"train_4": fours + half, "train_9": nines + half, "val_4": 0, "val_9": 0}
  test_idx = np.concatenate(test)
  binary = lambda y: (np.asarray(y) == MAJORITY_DIGIT).astype(np.int64)
  return ImbalanceData(
      x_train=x_pool[train_idx], y_train=binary(y_pool[train_idx]),
      x_val=x_pool[val_idx], y_val=binary(y_pool[val_idx]),
      x_test=x_test_pool[test_idx], y_test=binary(y_test_pool[test_idx]),
      counts={**counts, "test_4": n_test // 2, "test_9": n_test // 2})


def fixed_test_mask(y, n_test):
  """The test images of a single pool: the last n_test / 2 4s and 9s in the pool's order (a
  fixed set, whatever the proportion and seed)."""
  y = np.asarray(y)
  test = np.zeros(len(y), bool)
  for digit in (MINORITY_DIGIT, MAJORITY_DIGIT):
    members = np.flatnonzero(y == digit)
    if len(members) <= n_test // 2:
      raise ValueError(f"the MNIST pool holds {len(members)} images of digit {digit}: not "
                       f"enough for {n_test // 2} test images and a training pool; lower "
                       "n_test.")
    test[members[-(n_test // 2):]] = True
  return test


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

  With one pool only (the embedded 5000 images, or the 15,000 of "embedded_t10k": the embedded
  images joined with the t10k files in ``data_dir``), the last n_test / 2 images of digits 4
  and 9 in the pool's order are the test pool and the rest is the training pool.
  ``tutorial_train_split_only``: a full 60,000-image training set is restricted to the
  tutorial's train split (images 5,000-59,999) as in the original; False keeps all of it.
  """
  if source in ("embedded", "embedded_t10k"):
    if source == "embedded":
      x, y = mnist.embedded_arrays()
      note = (f"embedded MNIST holds 500 images per digit: {n_test // 2} 4s and 9s held out "
              f"for testing, the rest (about {500 - n_test // 2} per digit) is the training "
              "pool")
    else:
      pools, _, origin = data.read_pools("mnist", "embedded_t10k", data_dir)
      x, y = pools.x_train, pools.y_train
      note = (f"MNIST pool of {len(y)} images ({origin}): {n_test // 2} 4s and "
              f"{n_test // 2} 9s held out for testing, the same for every proportion and "
              f"seed; the training pool holds {int((y == MINORITY_DIGIT).sum()) - n_test // 2} "
              f"4s and {int((y == MAJORITY_DIGIT).sum()) - n_test // 2} 9s")
    test = fixed_test_mask(y, n_test)
    x = x.astype(np.float32) / 255.0
    rule = (f"n_train {n_train}" if n_train else
            "every remaining 9 and the 4s each proportion asks for (n_train 0)")
    note += (f"; the official run draws n_train 5000 / n_test 500 from the full MNIST files "
             f"(--config=importance_learning/configs/mnist_imbalance.py:paper), this one "
             f"{rule} / n_test {n_test}.")
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
