"""The poisoning attacks' own splits of MNIST (penalty.md §8.1, §8.2).

Both attacks cut their train / validation / test sets from the raw pools themselves, so they
read pools (``common.data.read_pools``), not the denoising splits. The originals shuffle with an
unseeded numpy generator; here every draw comes from the run's seed.
"""

import dataclasses

import numpy as np

from common import data as datalib

NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class AttackData:
  """Everything an augmentation attack needs; x float32 NHWC in [0, 1], y int64.

  ``x_val``/``y_val`` define the attacker's objective f and ``x_test``/``y_test`` the reported
  number: for the targeted attack both hold only source-class images relabelled as the target
  class, so accuracy on them is the attack's success rate. ``x_eval``/``y_eval`` hold all
  classes with their true labels (overall test accuracy, for both attacks).
  """

  x_train: np.ndarray
  y_train: np.ndarray
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  x_eval: np.ndarray
  y_eval: np.ndarray
  x_poison: np.ndarray      # the poisons' starting images (copies of training images)
  y_poison: np.ndarray      # the poisons' (wrong) labels, fixed during the attack
  poison_source: np.ndarray  # index in x_train of each poison's starting image
  info: dict

  def __repr__(self):
    return (f"AttackData(train={self.x_train.shape}, val={self.x_val.shape}, "
            f"test={self.x_test.shape}, poisons={self.x_poison.shape})")


def _float(x):
  return np.asarray(x, np.float32) / np.float32(255.0)


def random_wrong_labels(y, num_classes, rng):
  """For each label a uniformly random *different* class (the original resamples until it
  differs, which is the same distribution)."""
  y = np.asarray(y, np.int64)
  shift = rng.integers(1, num_classes, size=len(y))
  return (y + shift) % num_classes


def balanced_subset(y, count, rng, num_classes=NUM_CLASSES):
  """Indices of ``count // num_classes`` random images per class (fewer where a class has
  fewer), in a random order: the original's ``get_balanced_set``."""
  per_class = count // num_classes
  picked = []
  for c in range(num_classes):
    members = np.flatnonzero(np.asarray(y) == c)
    picked.append(rng.permutation(members)[:per_class])
  picked = np.concatenate(picked)
  return picked[rng.permutation(len(picked))]


def _pools(config):
  pools, _, origin = datalib.read_pools("mnist", config.source, config.data_dir,
                                        config.tfds_download)
  return pools, origin


def untargeted(config, log=print):
  """§8.1: shuffle the training pool; train, val and test are consecutive slices of it.

  The first ``num_poisons`` training images, with random wrong labels, start the poisons (the
  originals stay in the training set). ``test_set="train_pool"`` is the original's test (more
  training images, disjoint from train and val); ``"official"`` uses the MNIST test set.
  """
  pools, origin = _pools(config)
  rng = np.random.default_rng(config.seed)
  n_train, n_val, n_test, n_poison = (int(config.train_size), int(config.val_size),
                                      int(config.test_size), int(config.num_poisons))
  order = rng.permutation(len(pools.y_train))
  x, y = pools.x_train[order], pools.y_train[order]
  if n_train + n_val >= len(y):
    raise datalib.DataNotFoundError(
        f"the MNIST source holds {len(y)} training images; train_size + val_size = "
        f"{n_train + n_val} leaves none for the test set. Lower them or use a larger source.")
  note = ""
  if config.test_set == "official":
    if pools.x_test is None:
      raise ValueError(f"test_set='official' needs the MNIST test set; source "
                       f"{config.source!r} has none (use source='files' or 'tfds').")
    x_test, y_test = pools.x_test[:n_test], pools.y_test[:n_test]
  else:
    x_test, y_test = x[n_train + n_val:n_train + n_val + n_test], y[n_train + n_val:][:n_test]
  if len(y_test) < n_test:
    note = (f"test set: {len(y_test)} images instead of {n_test} (the source holds "
            f"{len(pools.y_train)} training images)")
    log(f"NOTE: {note}")
  if not 0 < n_poison <= n_train:
    raise ValueError(f"num_poisons must lie in [1, train_size={n_train}], got {n_poison}.")
  x_train, y_train = x[:n_train], y[:n_train]
  source = np.arange(n_poison)
  info = {"attack": "untargeted", "origin": origin, "train": n_train, "val": n_val,
          "test": len(y_test), "test_set": config.test_set, "num_poisons": n_poison,
          "note": note}
  return AttackData(
      x_train=_float(x_train), y_train=y_train.astype(np.int64),
      x_val=_float(x[n_train:n_train + n_val]), y_val=y[n_train:n_train + n_val].astype(np.int64),
      x_test=_float(x_test), y_test=y_test.astype(np.int64),
      x_eval=_float(x_test), y_eval=y_test.astype(np.int64),
      x_poison=_float(x_train[source]),
      y_poison=random_wrong_labels(y_train[source], NUM_CLASSES, rng),
      poison_source=source, info=info)


def targeted(config, log=print):
  """§8.2: source class (8) to be classified as the target class (3).

  train = a class-balanced sample of the first 2 * train_size training images; val = the
  source-class images of a balanced sample of the remaining training images, relabelled as the
  target class; test = likewise from a balanced sample of the MNIST test set. The poisons start
  as the first target-class and the first source-class training images (half each, shuffled)
  with the two labels swapped. A source without a test set (embedded MNIST) gives the second
  half of the remaining training images to the test sample instead (stated in the info).
  """
  pools, origin = _pools(config)
  rng = np.random.default_rng(config.seed)
  n_train, n_val, n_test, n_poison = (int(config.train_size), int(config.val_size),
                                      int(config.test_size), int(config.num_poisons))
  src, dst = int(config.source_class), int(config.target_class)
  if src == dst or not (0 <= src < NUM_CLASSES and 0 <= dst < NUM_CLASSES):
    raise ValueError(f"source_class and target_class must be two different digits, got "
                     f"{src} and {dst}.")
  if n_poison < 2 or n_poison % 2:
    raise ValueError(f"num_poisons must be even (half {dst}s, half {src}s), got {n_poison}.")
  head = 2 * n_train
  if head >= len(pools.y_train):
    raise datalib.DataNotFoundError(
        f"the MNIST source holds {len(pools.y_train)} training images; the targeted protocol "
        f"samples train from the first 2 * train_size = {head} and needs more after them.")
  x_head, y_head = pools.x_train[:head], pools.y_train[:head]
  x_rest, y_rest = pools.x_train[head:], pools.y_train[head:]
  note = ""
  if config.test_set == "official" and pools.x_test is not None:
    x_val_pool, y_val_pool = x_rest, y_rest
    x_test_pool, y_test_pool = pools.x_test, pools.y_test
  elif config.test_set == "official":
    half = len(y_rest) // 2
    x_val_pool, y_val_pool = x_rest[:half], y_rest[:half]
    x_test_pool, y_test_pool = x_rest[half:], y_rest[half:]
    note = (f"source {config.source!r} has no MNIST test set: val and test are sampled from "
            f"the two halves of the {len(y_rest)} training images after the first {head}")
    log(f"NOTE: {note}")
  else:
    raise ValueError(f"test_set must be 'official' for the targeted attack (its test set is "
                     f"the MNIST test set), got {config.test_set!r}.")

  train_idx = balanced_subset(y_head, n_train, rng)
  x_train, y_train = x_head[train_idx], y_head[train_idx]
  val_idx = balanced_subset(y_val_pool, n_val, rng)
  val_idx = val_idx[y_val_pool[val_idx] == src]
  test_idx = balanced_subset(y_test_pool, n_test, rng)
  test_src = test_idx[y_test_pool[test_idx] == src]

  first_dst = np.flatnonzero(y_train == dst)[:n_poison // 2]
  first_src = np.flatnonzero(y_train == src)[:n_poison // 2]
  if len(first_dst) < n_poison // 2 or len(first_src) < n_poison // 2:
    raise ValueError(f"num_poisons={n_poison} needs {n_poison // 2} training images of each of "
                     f"{dst} and {src}; the training set has {len(first_dst)} and "
                     f"{len(first_src)}.")
  source = np.concatenate([first_dst, first_src])
  source = source[rng.permutation(len(source))]
  y_poison = np.where(y_train[source] == dst, src, dst).astype(np.int64)
  info = {"attack": "targeted", "origin": origin, "source_class": src, "target_class": dst,
          "train": len(train_idx), "val": len(val_idx), "test": len(test_src),
          "eval": len(test_idx), "num_poisons": n_poison, "note": note}
  return AttackData(
      x_train=_float(x_train), y_train=y_train.astype(np.int64),
      x_val=_float(x_val_pool[val_idx]), y_val=np.full(len(val_idx), dst, np.int64),
      x_test=_float(x_test_pool[test_src]), y_test=np.full(len(test_src), dst, np.int64),
      x_eval=_float(x_test_pool[test_idx]), y_eval=y_test_pool[test_idx].astype(np.int64),
      x_poison=_float(x_train[source]), y_poison=y_poison, poison_source=source, info=info)
