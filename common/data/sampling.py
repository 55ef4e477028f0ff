"""The class-matched split sampler of Deep Bilevel Learning (Jenni & Favaro), stateless.

A batch is S splits of k rows with *identical label multisets*: k class slots are read from one
shuffled list of the training labels (one entry per example, wrapping around, so classes come
in proportion to their noisy frequency), and every split takes one image of each slot's class
from that class's shuffled image list (reshuffled once exhausted). The original keeps this
state in a generator; here batch ``step`` is a pure function of (seed, step), so a resumed run
draws exactly the batches an uninterrupted one would.
"""

import numpy as np


class ClassMatchedSampler:

  def __init__(self, labels, splits, split_size, seed):
    labels = np.asarray(labels, np.int64)
    if splits < 1 or split_size < 1:
      raise ValueError(f"splits and split_size must be >= 1, got {splits}, {split_size}.")
    self.splits, self.split_size, self.seed = int(splits), int(split_size), int(seed)
    self.n = len(labels)
    self.slots = np.random.default_rng([self.seed, 0]).permutation(labels)
    self.classes = np.unique(labels)
    self.members = {int(c): np.flatnonzero(labels == c) for c in self.classes}
    # prefix[c][p]: how many of slots[:p] hold class c.
    self.prefix = {int(c): np.concatenate([[0], np.cumsum(self.slots == c)])
                   for c in self.classes}
    self._perm_cache = {}

  @property
  def batch_size(self):
    return self.splits * self.split_size

  def _image(self, c, n):
    """The n-th image drawn from class c over the whole run."""
    members = self.members[c]
    epoch, k = divmod(n, len(members))
    key = (c, epoch)
    if key not in self._perm_cache:
      if len(self._perm_cache) > 4 * len(self.members):
        self._perm_cache.clear()
      self._perm_cache[key] = np.random.default_rng([self.seed, 1, c, epoch]).permutation(
          len(members))
    return members[self._perm_cache[key][k]]

  def batch_indices(self, step):
    """Training-set indices of batch ``step``, split-major: rows [s k, (s + 1) k) = split s."""
    out = np.empty((self.splits, self.split_size), np.int64)
    for j in range(self.split_size):
      g = int(step) * self.split_size + j            # global slot position
      c = int(self.slots[g % self.n])
      # Slots of class c before this one, over all previous passes through the slot list.
      occurrence = (g // self.n) * self.prefix[c][-1] + self.prefix[c][g % self.n]
      for s in range(self.splits):
        out[s, j] = self._image(c, occurrence * self.splits + s)
    return out.reshape(-1)
