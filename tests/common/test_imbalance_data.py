"""Learning to Reweight's MNIST 4-vs-9 imbalance split."""

import numpy as np
import pytest

from common.data import imbalance as imb

# The reference's table of training counts (ours: n_val 10 subtracted; baselines: n_val 0).
TABLE = {0.9: (494, 4495, 499, 4500), 0.95: (245, 4745, 250, 4750),
         0.98: (95, 4895, 100, 4900), 0.99: (45, 4945, 50, 4950), 0.995: (20, 4970, 25, 4975)}


@pytest.mark.parametrize("p", sorted(TABLE))
def test_counts_match_the_official_formulas(p):
  fours, nines, fours0, nines0 = TABLE[p]
  assert imb.class_counts(p, 5000, 10) == (fours, nines)
  assert imb.class_counts(p, 5000, 0) == (fours0, nines0)


def _pools(per_digit=600, seed=0):
  rng = np.random.default_rng(seed)
  y = np.repeat(np.arange(10), per_digit)
  x = np.arange(len(y), dtype=np.float32).reshape(-1, 1, 1, 1)   # pixel = pool index
  perm = rng.permutation(len(y))
  return x[perm], y[perm]


def test_split_has_the_counts_disjoint_parts_and_binary_labels():
  x, y = _pools()
  xt, yt = _pools(100, seed=1)
  d = imb.four_vs_nine(x, y, xt, yt, 0.9, 500, 10, 40, seed=5)
  # int(500 * (1 - 0.9)) = int(49.99...) = 49 fours less 5; int(450.0) = 450 nines less 5.
  assert (d.y_train == 0).sum() == 44 and (d.y_train == 1).sum() == 445
  assert (d.y_val == 0).sum() == 5 and (d.y_val == 1).sum() == 5
  assert (d.y_test == 0).sum() == 20 and (d.y_test == 1).sum() == 20
  train_ids, val_ids = set(d.x_train.ravel()), set(d.x_val.ravel())
  assert not train_ids & val_ids and len(train_ids) == len(d.y_train)
  # Labels: 1 for a 9, 0 for a 4, read back from the pool through the pixel = index trick.
  digit = lambda ids: np.repeat(np.arange(10), 600)[ids.ravel().astype(int)]
  np.testing.assert_array_equal(digit(d.x_train), np.where(d.y_train == 1, 9, 4))
  np.testing.assert_array_equal(digit(d.x_val), np.where(d.y_val == 1, 9, 4))
  # Training order is shuffled: the 4s are not all at the front.
  assert d.y_train[:44].sum() > 0


def test_seed_changes_the_draw_not_the_test_set():
  x, y = _pools()
  xt, yt = _pools(100, seed=1)
  a = imb.four_vs_nine(x, y, xt, yt, 0.95, 400, 10, 40, seed=0)
  b = imb.four_vs_nine(x, y, xt, yt, 0.95, 400, 10, 40, seed=1)
  c = imb.four_vs_nine(x, y, xt, yt, 0.95, 400, 10, 40, seed=0)
  assert set(a.x_train.ravel()) != set(b.x_train.ravel())
  np.testing.assert_array_equal(a.x_train, c.x_train)
  np.testing.assert_array_equal(a.x_test, b.x_test)


def test_impossible_requests_fail_with_what_to_do():
  x, y = _pools()
  with pytest.raises(ValueError, match="leaves -1 fours for training"):
    imb.four_vs_nine(x, y, x, y, 0.99, 400, 10, 40, seed=0)
  with pytest.raises(ValueError, match="holds 600 images of digit 9, fewer than"):
    imb.four_vs_nine(x, y, x, y, 0.9, 5000, 10, 40, seed=0)
  with pytest.raises(ValueError, match="must be even"):
    imb.four_vs_nine(x, y, x, y, 0.9, 500, 9, 40, seed=0)
