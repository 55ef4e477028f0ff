"""N-way K-shot episodes of the few-shot experiments (penalty.md §7.1), stateless.

A meta-batch is M tasks. Each task takes N classes of the pool and, from each class, K support
and Q query images drawn without replacement (so support and query never share an image);
label n marks the task's n-th class. Support and query are then shuffled independently.

Class rule, the original's `get_tasks`: within one meta-batch the tasks draw their classes
without replacement from the pool; before each task, if the classes used so far in this
meta-batch plus N reach the pool size (used + N >= pool, the original's test), the used list
is cleared and that task draws from the whole pool again. Every meta-batch starts with the
whole pool. So classes are disjoint within a meta-batch while M * N < pool size (always, in
the reference settings: 15 x 20 = 300 of 4800 Omniglot classes, 2 x 5 of 64 Mini-ImageNet
ones), and successive meta-batches are independent draws.

Meta-batch `iteration` is a pure function of (seed, iteration): everything is drawn from
np.random.default_rng([seed, iteration]), so a resumed run sees the episodes an uninterrupted
one would, and any batch can be re-drawn on its own.

Input is the class-major array [classes, images per class, H, W, C] the Omniglot and
Mini-ImageNet loaders give, float32 or uint8; only the images of the episode are converted to
float32 and divided by `divide_by` (255 for uint8 by default: the original's /255, bit for
bit), so Mini-ImageNet can stay uint8 in memory.
"""

from typing import NamedTuple

import numpy as np


class Episodes(NamedTuple):
  """One meta-batch; M tasks, N ways, K shots, Q queries per class."""

  support_x: np.ndarray   # float32 [M, N * K, H, W, C]
  support_y: np.ndarray   # int32 [M, N * K], positions 0..N-1
  query_x: np.ndarray     # float32 [M, N * Q, H, W, C]
  query_y: np.ndarray     # int32 [M, N * Q]
  classes: np.ndarray     # int64 [M, N]: row of the class array that label n stands for


def one_hot(labels, num_ways, dtype=np.float32):
  """One-hot [..., num_ways] of integer labels (the original fed one-hot targets)."""
  labels = np.asarray(labels)
  return (labels[..., None] == np.arange(num_ways)).astype(dtype)


def _positive_int(name, value, minimum=1):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
  return int(value)


def draw_classes(rng, num_classes, num_ways, meta_batch_size):
  """int64 [M, N]: the classes of each task under the original's rule (module docstring)."""
  used = np.zeros(num_classes, bool)
  out = np.empty((meta_batch_size, num_ways), np.int64)
  for task in range(meta_batch_size):
    if used.sum() + num_ways >= num_classes:
      used[:] = False   # the pool is exhausted: reset
    out[task] = rng.permutation(np.flatnonzero(~used))[:num_ways]
    used[out[task]] = True
  return out


class EpisodeSampler:
  """Meta-batches of N-way K-shot tasks from a class-major image array.

    sampler = EpisodeSampler(data.train_images, num_ways=20, num_shots=5, num_queries=15,
                             meta_batch_size=15, seed=config.seed)
    batch = sampler.sample(meta_iteration)      # Episodes, static shapes
  """

  def __init__(self, images, num_ways, num_shots, num_queries=15, meta_batch_size=1, seed=0,
               divide_by=None):
    images = np.asarray(images)
    if images.ndim != 5:
      raise ValueError(f"images must be class-major [classes, images per class, H, W, C], got "
                       f"shape {images.shape}")
    self.images = images
    self.num_ways = _positive_int("num_ways", num_ways)
    self.num_shots = _positive_int("num_shots", num_shots)
    self.num_queries = _positive_int("num_queries", num_queries, minimum=0)
    self.meta_batch_size = _positive_int("meta_batch_size", meta_batch_size)
    self.seed = _positive_int("seed", seed, minimum=0)
    num_classes, per_class = images.shape[:2]
    if self.num_ways > num_classes:
      raise ValueError(f"num_ways={self.num_ways} but the pool holds only {num_classes} "
                       f"classes; a task needs {self.num_ways} distinct classes")
    if self.num_shots + self.num_queries > per_class:
      raise ValueError(f"num_shots + num_queries = {self.num_shots} + {self.num_queries} "
                       f"exceeds the {per_class} images of a class; support and query are "
                       f"drawn without replacement")
    if divide_by is None:
      divide_by = 255 if images.dtype == np.uint8 else 1
    if not np.isfinite(divide_by) or divide_by <= 0:
      raise ValueError(f"divide_by must be a positive number, got {divide_by!r}")
    self.divide_by = np.float32(divide_by)

  @property
  def num_classes(self):
    return self.images.shape[0]

  @property
  def images_per_class(self):
    return self.images.shape[1]

  def sample(self, iteration):
    """The meta-batch of `iteration` (an integer >= 0); see the module docstring."""
    iteration = _positive_int("iteration", iteration, minimum=0)
    rng = np.random.default_rng([self.seed, iteration])
    m, n, k, q = self.meta_batch_size, self.num_ways, self.num_shots, self.num_queries
    classes = draw_classes(rng, self.num_classes, n, m)                    # [M, N]
    # A random permutation of each class's images (argsort of uniforms); the first K are the
    # support images, the next Q the query images.
    order = np.argsort(rng.random((m, n, self.images_per_class)), axis=-1)[..., :k + q]
    support_perm = np.argsort(rng.random((m, n * k)), axis=-1)
    query_perm = np.argsort(rng.random((m, n * q)), axis=-1)
    labels = np.arange(n, dtype=np.int32)
    rows = np.arange(m)[:, None]

    def gather(picks, count, perm):
      # picks [M, N, count] image indices, class-major within a task; then shuffled.
      x = self.images[classes[..., None], picks]                          # [M, N, count, ...]
      x = x.reshape((m, n * count) + self.images.shape[2:])[rows, perm]
      y = np.broadcast_to(np.repeat(labels, count), (m, n * count))[rows, perm]
      return self._as_float(x), np.ascontiguousarray(y, np.int32)

    support_x, support_y = gather(order[..., :k], k, support_perm)
    query_x, query_y = gather(order[..., k:], q, query_perm)
    return Episodes(support_x, support_y, query_x, query_y, classes)

  __call__ = sample

  def _as_float(self, x):
    x = x.astype(np.float32)
    if self.divide_by != 1:
      # A float32 division, not a multiplication by 1/255: it equals the original's
      # float32(value / 255.) for every uint8 value.
      x /= self.divide_by
    return x
