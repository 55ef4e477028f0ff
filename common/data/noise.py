"""Label noise of the experiments: the penalty paper's (§6.1, step 1), L2RW's and Deep Bilevel's."""

import math

import numpy as np


def flip_labels(y, noise, num_classes, seed):
  """Give the first floor(noise * N) points a uniformly random *different* class.

  The corrupted points are the first ones in the (unshuffled) training order, as in the
  original scripts, so "which points are noisy" is known by index. The original resamples
  `randint(0, K)` until it differs from the true class; adding a uniform offset in 1..K-1
  modulo K draws from the same distribution (uniform over the K-1 other classes) without a
  loop.

  Args:
    y: 1-D integer class ids in [0, num_classes); not modified.
    noise: fraction of points to corrupt, in [0, 1].
    num_classes: K.
    seed: seed of the numpy Generator that draws the new classes.

  Returns:
    (y_noisy int64 copy of y, corrupted bool mask; True exactly on the first floor(noise*N)).
  """
  y_noisy, num_classes, n_flip = _check(y, noise, num_classes)
  rng = np.random.default_rng(seed)
  offsets = rng.integers(1, num_classes, size=n_flip) if n_flip else np.zeros(0, np.int64)
  y_noisy[:n_flip] = (y_noisy[:n_flip] + offsets) % num_classes
  corrupted = np.zeros(len(y), dtype=bool)
  corrupted[:n_flip] = True
  return y_noisy, corrupted


def _check(y, noise, num_classes):
  """Shared input checks; returns (y as an int64 copy, K, floor(noise * N))."""
  if not isinstance(noise, (int, float, np.integer, np.floating)) or isinstance(noise, bool):
    raise ValueError(f"noise must be a number in [0, 1]; got {noise!r}")
  if not 0.0 <= noise <= 1.0:
    raise ValueError(f"noise must be a fraction in [0, 1]; got {noise}")
  y = np.asarray(y)
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"y must be a 1-D array of integer class ids; got dtype {y.dtype} and "
                     f"shape {y.shape} (one-hot labels: pass argmax(y, axis=1))")
  num_classes = int(num_classes)
  if y.size and (y.min() < 0 or y.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, {num_classes}); got range "
                     f"[{y.min()}, {y.max()}]")
  # math.floor of the product, like the originals' int(noise * len(X_train)).
  n_flip = math.floor(noise * len(y))
  if n_flip and num_classes < 2:
    raise ValueError(f"cannot flip labels to a different class with num_classes={num_classes}")
  return y.astype(np.int64, copy=True), num_classes, n_flip


def uniform_flip(y, noise, num_classes, seed, as_coded=True):
  """Learning to Reweight's UNIFORMFLIP on the first floor(noise * N) points.

  ``as_coded=True`` is the official generator: each of those points gets a label drawn from
  randint(0, K - 1), i.e. uniform over {0, ..., K - 2}: the true label may be redrawn (about
  1/(K - 1) of them keep it) and class K - 1 never appears as a noisy label. ``as_coded=False``
  is the paper's intent: a guaranteed flip to one of the other K - 1 classes, uniformly.

  The returned mask marks the points whose label really changed (the official ``clean`` flag
  also counts the redrawn-but-unchanged points as noisy; detection metrics here score the
  labels a point actually carries).
  """
  y_noisy, k, n_flip = _check(y, noise, num_classes)
  rng = np.random.default_rng(seed)
  if as_coded:
    y_noisy[:n_flip] = rng.integers(0, k - 1, size=n_flip)
  else:
    y_noisy[:n_flip] = (y_noisy[:n_flip] + rng.integers(1, k, size=n_flip)) % k
  return y_noisy, y_noisy != np.asarray(y)


def background_flip(y, noise, num_classes, seed, as_coded=True):
  """Learning to Reweight's BACKGROUNDFLIP: noisy points all get one "background" class b.

  ``as_coded=True`` is the official generator: b = randint(0, K - 1) (never class K - 1), and
  the first floor(noise * N) points get label b; those whose true class is b stay correct.
  ``as_coded=False``, the paper's intent: b uniform over all K classes and floor(noise * N)
  points *not* of class b (the first ones in order) relabelled b, so exactly that many are
  corrupted (an error if fewer than that many points are of another class).
  """
  y_noisy, k, n_flip = _check(y, noise, num_classes)
  rng = np.random.default_rng(seed)
  if as_coded:
    b = int(rng.integers(0, k - 1))
    y_noisy[:n_flip] = b
  else:
    b = int(rng.integers(0, k))
    others = np.flatnonzero(y_noisy != b)
    if len(others) < n_flip:
      raise ValueError(f"background flip of {n_flip} points needs that many points outside "
                       f"class {b}; only {len(others)} exist")
    y_noisy[others[:n_flip]] = b
  return y_noisy, y_noisy != np.asarray(y)


def per_class_flip(y, noise, num_classes, seed):
  """Deep Bilevel Learning's noise: in every class c exactly int(noise * n_c) of its points,
  chosen at random, get a uniformly random *other* class (the flip is guaranteed)."""
  y_noisy, k, _ = _check(y, noise, num_classes)
  y0 = np.asarray(y)
  rng = np.random.default_rng(seed)
  for c in range(k):
    members = np.flatnonzero(y0 == c)
    chosen = rng.permutation(members)[:int(noise * len(members))]
    y_noisy[chosen] = (c + rng.integers(1, k, size=len(chosen))) % k
  return y_noisy, y_noisy != y0


def permute_first(y, noise, num_classes, seed):
  """Data parameters' CIFAR-100 noise: the first floor(noise * N) points swap labels among
  themselves by one random permutation.

  The original permutes the *images* of those points and keeps their targets; permuting the
  labels instead gives the same (image, label) pairs at other indices, so the label marginal
  of the subset is kept and a few points keep their own label by chance. The returned mask
  marks the points whose label changed (the original's logs call all first floor(noise * N)
  points "corrupt").
  """
  y_noisy, _, n = _check(y, noise, num_classes)
  rng = np.random.default_rng(seed)
  y_noisy[:n] = y_noisy[:n][rng.permutation(n)]
  return y_noisy, y_noisy != np.asarray(y)


def _first_fraction(y, noise, num_classes, seed, as_coded=True):
  del as_coded  # one procedure only
  return flip_labels(y, noise, num_classes, seed)


def _per_class(y, noise, num_classes, seed, as_coded=True):
  del as_coded
  return per_class_flip(y, noise, num_classes, seed)


def _permute_first(y, noise, num_classes, seed, as_coded=True):
  del as_coded
  return permute_first(y, noise, num_classes, seed)


# name -> fn(y, noise, num_classes, seed, as_coded) -> (y_noisy, corrupted)
NOISE_TYPES = {
    "first_fraction": _first_fraction,   # penalty paper: first floor(noise N), guaranteed flip
    "uniform": uniform_flip,             # L2RW UNIFORMFLIP
    "background": background_flip,       # L2RW BACKGROUNDFLIP
    "per_class": _per_class,             # Deep Bilevel Learning
    "permute_first": _permute_first,     # data parameters (CIFAR-100)
}


def apply_noise(noise_type, y, noise, num_classes, seed, as_coded=True):
  """Corrupt labels with procedure ``noise_type`` (a key of NOISE_TYPES)."""
  if noise_type not in NOISE_TYPES:
    raise ValueError(f"Unknown noise_type {noise_type!r}; choose one of {sorted(NOISE_TYPES)}.")
  return NOISE_TYPES[noise_type](y, noise, num_classes, seed, as_coded=as_coded)
