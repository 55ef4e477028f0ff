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


# The pool of the full training set: the TensorFlow tutorial's train split (images 5000-59999).


def _full_mnist_splits(n_train=60000, n_test=1000):
  """A stand-in for data.load("mnist", split="large"): pixel = index in the training file,
  digit = index % 10; train/val = the first 59/60 and the rest, as the large split cuts."""
  from common.data.splits import Splits
  x = np.arange(n_train, dtype=np.float32).reshape(-1, 1, 1, 1)
  y = np.arange(n_train) % 10
  cut = n_train * 59 // 60
  xt = np.arange(n_test, dtype=np.float32).reshape(-1, 1, 1, 1)
  return Splits(x[:cut], y[:cut], x[cut:], y[cut:], xt, np.arange(n_test) % 10, 10,
                tuple("0123456789"), {"origin": "synthetic IDX files"})


def test_tutorial_train_split_is_images_5000_to_59999():
  x = np.arange(60000).reshape(-1, 1)
  y = np.arange(60000) % 10
  xs, ys, restricted = imb.tutorial_train_split(x, y)
  # read_data_sets: validation = train_images[:5000], train = train_images[5000:].
  assert restricted and len(ys) == 55000
  np.testing.assert_array_equal(xs[:, 0], np.arange(5000, 60000))
  np.testing.assert_array_equal(ys, y[5000:])
  # Any other pool (not the full training set) is left whole.
  xs, ys, restricted = imb.tutorial_train_split(x[:12000], y[:12000])
  assert not restricted and len(ys) == 12000


@pytest.mark.parametrize("source", ["files", "tfds"])
def test_full_training_set_pool_is_the_tutorial_train_split(monkeypatch, source):
  loads = []

  def fake_load(name, **kwargs):
    loads.append((name, kwargs["source"], kwargs["split"]))
    return _full_mnist_splits()

  monkeypatch.setattr(imb.data, "load", fake_load)
  x_pool, y_pool, x_test, _, note = imb.digit_pools(source, "/data/mnist", 5000, 500)
  assert loads == [("mnist", source, "large")]
  assert len(y_pool) == 55000
  np.testing.assert_array_equal(x_pool.ravel(), np.arange(5000, 60000))
  assert "tutorial's train split" in note and "images 5,000-59,999" in note
  assert ("not the IDX files' order" in note) == (source == "tfds")
  assert len(x_test) == 1000                           # the test pool is untouched
  # Every image the 4-vs-9 split draws comes from that pool: none of the first 5000.
  d = imb.four_vs_nine(x_pool, y_pool, x_test, np.arange(1000) % 10, 0.995, 5000, 10, 40,
                       seed=0)
  drawn = np.concatenate([d.x_train.ravel(), d.x_val.ravel()])
  assert drawn.min() >= 5000 and len(drawn) == 4990 + 10
  # The switch off: all 60,000 training images.
  x_all, y_all, *_ = imb.digit_pools(source, "/data/mnist", 5000, 500,
                                     tutorial_train_split_only=False)
  np.testing.assert_array_equal(x_all.ravel(), np.arange(60000))
  # A source holding fewer images than the full training set is not cut.
  monkeypatch.setattr(imb.data, "load", lambda name, **kw: _full_mnist_splits(12000))
  x_small, _, _, _, note = imb.digit_pools(source, "/data/mnist", 5000, 500)
  assert len(x_small) == 12000 and "not the full 60000-image training set" in note


def test_embedded_pool_is_unaffected_by_the_tutorial_split():
  on = imb.digit_pools("embedded", "", 400, 200)
  off = imb.digit_pools("embedded", "", 400, 200, tutorial_train_split_only=False)
  for a, b in zip(on[:4], off[:4]):
    np.testing.assert_array_equal(a, b)
  assert len(on[1]) == 5000 - 200


def test_imbalance_config_switch_reaches_the_pools(monkeypatch, tmp_path):
  from importance_learning import imbalance as experiment
  from importance_learning.configs import mnist_imbalance
  c = mnist_imbalance.get_config("paper")
  assert c.imbalance.tutorial_train_split is True and c.source == "files"
  assert mnist_imbalance.get_config("small").source == "embedded"   # unaffected
  seen = {}

  def fake_pools(*args, **kwargs):
    seen.update(kwargs)
    raise RuntimeError("stop")

  monkeypatch.setattr(experiment.imbalancelib, "digit_pools", fake_pools)
  monkeypatch.setattr(experiment.records, "check_or_write_config", lambda *a: None)
  for value in (True, False):
    c.imbalance.tutorial_train_split = value
    with pytest.raises(RuntimeError, match="stop"):
      experiment.run(c, tmp_path)
    assert seen["tutorial_train_split_only"] is value


# The all-nines rule (n_train 0): the paper's sweep on a pool too small for its budget.

PAPER_P = (0.9, 0.95, 0.98, 0.99, 0.995)


def _big_pool(per_digit=1500, seed=3):
  """A 15,000-image pool, pixel = pool index, digit = index // per_digit, shuffled."""
  rng = np.random.default_rng(seed)
  perm = rng.permutation(10 * per_digit)
  y = (np.arange(10 * per_digit) // per_digit)[perm]
  x = perm.astype(np.float32).reshape(-1, 1, 1, 1)
  return x, y


def _parts(x, y, n_test=500):
  test = imb.fixed_test_mask(y, n_test)
  return x[~test], y[~test], x[test], y[test]


@pytest.mark.parametrize("p", PAPER_P)
def test_all_nines_split_has_the_stated_counts_and_disjoint_parts(p):
  x, y = _big_pool()
  pools = _parts(x, y)
  d = imb.four_vs_nine(*pools, p, 0, 10, 500, seed=7)
  nines = 1500 - 250 - 5                       # every 9 not in the test or validation set
  fours = int(round(nines * (1 - p) / p))
  assert (d.y_train == 1).sum() == nines and (d.y_train == 0).sum() == fours
  assert d.counts == {"train_4": fours, "train_9": nines, "val_4": 5, "val_9": 5,
                      "test_4": 250, "test_9": 250}
  # The training part holds p of 9s up to the rounding of one 4.
  assert abs(nines / (nines + fours) - p) <= 1 / (nines + fours)
  assert (d.y_val == 0).sum() == 5 and (d.y_val == 1).sum() == 5
  assert (d.y_test == 0).sum() == 250 and (d.y_test == 1).sum() == 250
  ids = [set(part.ravel().astype(int)) for part in (d.x_train, d.x_val, d.x_test)]
  assert sum(map(len, ids)) == len(d.y_train) + 10 + 500         # no image twice in a part
  assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
  # Labels follow the digits read back through pixel = pool index.
  digit = lambda part: (part.ravel().astype(int) // 1500)
  for part, labels in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
    np.testing.assert_array_equal(digit(part), np.where(labels == 1, 9, 4))


def test_all_nines_test_set_is_fixed_across_proportions_and_seeds():
  x, y = _big_pool()
  pools = _parts(x, y)
  tests = [imb.four_vs_nine(*pools, p, 0, 10, 500, seed=s).x_test
           for p in PAPER_P for s in (0, 1, 2)]
  for t in tests[1:]:
    np.testing.assert_array_equal(t, tests[0])
  # Seeds draw other validation images and 4s; the same seed draws the same.
  a, b, c = (imb.four_vs_nine(*pools, 0.98, 0, 10, 500, seed=s) for s in (0, 1, 0))
  assert set(a.x_val.ravel()) != set(b.x_val.ravel())
  assert set(a.x_train[a.y_train == 0].ravel()) != set(b.x_train[b.y_train == 0].ravel())
  np.testing.assert_array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize("p", (0.9, 0.995))
def test_baselines_train_on_l2rws_training_and_validation_images(p):
  x, y = _big_pool()
  pools = _parts(x, y)
  ours = imb.four_vs_nine(*pools, p, 0, 10, 500, seed=11)
  base = imb.four_vs_nine(*pools, p, 0, 10, 500, seed=11, merge_val=True)
  assert len(base.y_val) == 0
  assert set(base.x_train.ravel()) == set(ours.x_train.ravel()) | set(ours.x_val.ravel())
  assert base.counts["train_4"] == ours.counts["train_4"] + 5
  assert base.counts["train_9"] == ours.counts["train_9"] + 5 == 1250
  assert (base.y_train == 0).sum() == base.counts["train_4"]
  np.testing.assert_array_equal(base.x_test, ours.x_test)
  # Reshuffled: the validation images are not appended at the end.
  assert set(base.x_train[-10:].ravel()) != set(ours.x_val.ravel())


def test_all_nines_rule_rejects_a_proportion_that_leaves_no_four():
  x, y = _big_pool(60)                          # 60 per digit: 25 test, 5 validation 9s
  with pytest.raises(ValueError, match=r"leaves 0 fours for training.*round\(30"):
    imb.four_vs_nine(*_parts(x, y, 50), 0.99, 0, 10, 50, seed=0)
  with pytest.raises(ValueError, match="not enough for 250 test images"):
    imb.fixed_test_mask(y, 500)


def test_embedded_t10k_pools_hold_out_a_fixed_test_set(tmp_path):
  from tests.common.test_data import _write_mnist
  _write_mnist(tmp_path, n_test=40)
  x_pool, y_pool, x_test, y_test, note = imb.digit_pools("embedded_t10k", tmp_path, 0, 100)
  assert len(y_pool) + len(y_test) == 5040 and len(y_test) == 100
  assert (y_test == 4).sum() == 50 and (y_test == 9).sum() == 50
  assert x_pool.dtype == np.float32 and x_pool.max() <= 1.0
  assert "MNIST pool of 5040 images" in note and "n_train 0" in note
  again = imb.digit_pools("embedded_t10k", tmp_path, 0, 100)
  np.testing.assert_array_equal(again[2], x_test)
  flat_pool = {im.tobytes() for im in x_pool}
  assert not any(im.tobytes() in flat_pool for im in x_test)     # disjoint


def test_l2rw_diagnostics_count_all_zero_batches_and_the_weight_share_on_4s():
  import tensorflow as tf
  from importance_learning import imbalance as experiment
  d = experiment._Diagnostics()       # pylint: disable=protected-access
  labels = tf.constant([0, 1, 1, 1], tf.int64)          # one 4, three 9s
  d.record(tf.constant([0.3, 0.7, 0.0, 0.0]), labels)   # 0.3 of the weight on the 4
  d.record(tf.constant([0.0, 0.0, 0.0, 0.0]), labels)   # all zero: no step's share
  d.record(tf.constant([1.0, 0.0, 0.0, 0.0]), labels)   # all on the 4
  d.record(tf.constant([0.0, 0.2, 0.3, 0.5]), labels)   # none on the 4
  out = d.summary()
  assert out["all_zero_weight_batch_fraction"] == pytest.approx(1 / 4)
  assert out["mean_weight_share_on_4s"] == pytest.approx((0.3 + 1.0 + 0.0) / 3)
  assert experiment._Diagnostics().summary()["all_zero_weight_batch_fraction"] is None
