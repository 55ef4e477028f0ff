"""Mini-batches as a pure function of (seed, stream, step), so resumed runs see the same data."""

import numpy as np
import tensorflow as tf

from common.errors import ConfigError


class Batcher:
  """Batches as a pure function of the step number, so resumed runs see the same data."""

  def __init__(self, x, y, batch_size, seed, stream, augment=None, transform=None):
    self.n = len(x)
    self.batch_size = batch_size
    self.steps_per_epoch = self.n // batch_size
    if self.steps_per_epoch < 1:
      # A user's setting (the config's batch size against the data): one line with the fix.
      raise ConfigError(f"{stream}: {self.n} examples are fewer than one batch of {batch_size}; "
                        "lower the config's batch size for it (e.g. --config.batch_size).")
    self.x = tf.constant(x)
    self.y = tf.constant(np.asarray(y, np.int64))
    self.seed, self.stream = seed, stream
    self.augment, self.transform = augment, transform
    self._perm_epoch, self._perm = None, None

  def _rng(self, *keys):
    return np.random.default_rng([self.seed, self.stream_id, *keys])

  @property
  def stream_id(self):
    return sum(ord(c) * 31 ** i for i, c in enumerate(self.stream)) % (2 ** 31)

  def epoch_batch(self, step):
    """Batch ``step`` of an epoch-wise reshuffled pass (without replacement)."""
    epoch, k = divmod(step, self.steps_per_epoch)
    if self._perm_epoch != epoch:
      self._perm_epoch, self._perm = epoch, self._rng(epoch).permutation(self.n)
    return self._gather(self._perm[k * self.batch_size:(k + 1) * self.batch_size], step)

  def indexed_batch(self, index, step):
    """The batch of the given training-set indices (a sampler's choice)."""
    return self._gather(index, step)

  def random_batch(self, step):
    """``batch_size`` points drawn without replacement, independently at every step."""
    return self._gather(self._rng(step).choice(self.n, self.batch_size, replace=False), step)

  def _gather(self, index, step):
    index = tf.constant(index, tf.int64)
    x = tf.gather(self.x, index)
    if self.augment is not None:
      x = self.augment(x, seed=(self.seed, self.stream_id, step))
    elif self.transform is not None:
      x = self.transform(x)
    return {"x": x, "y": tf.gather(self.y, index), "index": index}


def evaluable(x, transform, chunk=1000):
  """Images ``x`` (numpy) as the model sees them at evaluation: the augmentation's
  deterministic eval transform (None: unchanged)."""
  if transform is None:
    return x
  return np.concatenate([transform(tf.constant(x[i:i + chunk])).numpy()
                         for i in range(0, len(x), chunk)])
