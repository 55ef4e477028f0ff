"""Label noise as in the importance-learning experiments (penalty.md §6.1, step 1)."""

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
  if not isinstance(noise, (int, float, np.integer, np.floating)) or isinstance(noise, bool):
    raise ValueError(f"noise must be a number in [0, 1]; got {noise!r}")
  if not 0.0 <= noise <= 1.0:  # also rejects NaN
    raise ValueError(f"noise must be a fraction in [0, 1]; got {noise}")
  y = np.asarray(y)
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"y must be a 1-D array of integer class ids; got dtype {y.dtype} and "
                     f"shape {y.shape} (one-hot labels: pass argmax(y, axis=1))")
  num_classes = int(num_classes)
  if y.size and (y.min() < 0 or y.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, {num_classes}); got range "
                     f"[{y.min()}, {y.max()}]")
  # math.floor of the product, like the original int(noise * len(X_train)).
  n_flip = math.floor(noise * len(y))
  if n_flip and num_classes < 2:
    raise ValueError(f"cannot flip labels to a different class with num_classes={num_classes}")

  y_noisy = y.astype(np.int64, copy=True)
  rng = np.random.default_rng(seed)
  offsets = rng.integers(1, num_classes, size=n_flip) if n_flip else np.zeros(0, np.int64)
  y_noisy[:n_flip] = (y_noisy[:n_flip] + offsets) % num_classes
  corrupted = np.zeros(len(y), dtype=bool)
  corrupted[:n_flip] = True
  return y_noisy, corrupted
