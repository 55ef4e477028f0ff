"""common/data/custom.py: your own image folder, .npz or CSV, with a trusted subset, on files
the tests write; every bad input a one-line error."""

import csv
import pathlib

import numpy as np
import pytest
from PIL import Image

from common.data import custom
from common.data.splits import fixed_permutation
from common.errors import ConfigError, DataError, DataNotFoundError
from importance_learning import label_issues

CLASSES = ("cat", "dog", "eel")


def _cfg(**kw):
  c = custom.default_config()
  c.update(kw)
  return c


def _folder(root, per_class=6, size=(8, 8), classes=CLASSES, seed=0):
  """PNG images (lossless), one sub-folder per class; returns {relative path: uint8 array}."""
  rng = np.random.default_rng(seed)
  written = {}
  for name in classes:
    (root / name).mkdir(parents=True)
    for i in range(per_class):
      a = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
      Image.fromarray(a).save(root / name / f"{i}.png")
      written[f"{name}/{i}.png"] = a
  return written


def test_image_folder_ids_labels_pixels_and_trusted_ids(tmp_path):
  written = _folder(tmp_path / "train")
  trusted = ["cat/0.png", "dog/3.png", "eel/5.png"]
  (tmp_path / "trusted.txt").write_text("# trusted\n" + "\n".join(trusted) + "\n\n")
  s = custom.load(_cfg(train=str(tmp_path / "train"), trusted_ids=str(tmp_path / "trusted.txt"),
                       test_fraction=0.2))
  assert s.class_names == CLASSES and s.num_classes == 3
  # 18 images, 3 trusted, of the 15 left round(0.2 * 15) = 3 held out for testing.
  assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (12, 3, 3)
  # The pool (sorted order less the trusted) in the fixed permutation; test = its last points.
  all_ids = sorted(written, key=lambda p: (p.split("/")[0], p))
  pool = [i for i in all_ids if i not in trusted]
  order = [pool[j] for j in fixed_permutation(len(pool))]
  assert s.train_ids.tolist() == order[:12]
  for x, y, ident in zip(s.x_train, s.y_train, s.train_ids):
    np.testing.assert_allclose(x, written[ident] / 255.0, atol=1e-7)
    assert CLASSES[y] == ident.split("/")[0]
  val = {tuple(np.round(x * 255).astype(int).ravel()[:6]) for x in s.x_val}
  assert val == {tuple(written[t].astype(int).ravel()[:6]) for t in trusted}
  assert s.info["input_shape"] == [8, 8, 3] and "held out" in s.info["note"]


def test_folder_test_source_and_resize(tmp_path):
  _folder(tmp_path / "train", size=(8, 8))
  _folder(tmp_path / "test", per_class=2, size=(12, 10), seed=1)
  with pytest.raises(DataError, match="holds inputs of shape"):
    custom.load(_cfg(train=str(tmp_path / "train"), test=str(tmp_path / "test")))
  s = custom.load(_cfg(train=str(tmp_path / "train"), test=str(tmp_path / "test"),
                       image_size=6))
  assert s.x_train.shape == (18, 6, 6, 3) and s.x_test.shape == (6, 6, 6, 3)
  assert s.info["note"] == "" and len(s.y_val) == 0


def test_npz_ids_class_names_and_features_standardised(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.normal(3.0, 2.0, (40, 5)).astype(np.float32)
  y = rng.integers(0, 4, 40)
  ids = np.asarray([f"row{i}" for i in range(40)])
  np.savez(tmp_path / "train.npz", x=x, y=y, ids=ids, class_names=np.asarray(list("abcd")))
  (tmp_path / "t.txt").write_text("row3\nrow7\n")
  s = custom.load(_cfg(train=str(tmp_path / "train.npz"), trusted_ids=str(tmp_path / "t.txt"),
                       test_fraction=0.0))
  assert s.class_names == tuple("abcd") and len(s.y_train) == 38
  # z-scored with the training pool's mean and std; the trusted rows with the same stats.
  np.testing.assert_allclose(s.x_train.mean(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(s.x_train.std(0), 1.0, atol=1e-4)
  pool = np.asarray([i for i in range(40) if i not in (3, 7)])
  mean, std = x[pool].mean(0), x[pool].std(0)
  np.testing.assert_allclose(s.x_val, (x[[3, 7]] - mean) / std, rtol=1e-4, atol=1e-5)
  rows = [int(i[3:]) for i in s.train_ids]
  np.testing.assert_array_equal(s.y_train, y[rows])
  # Labels outside the classes (here: outside class_names) are refused, naming the row.
  np.savez(tmp_path / "bad.npz", x=x, y=np.where(np.arange(40) == 9, 4, y),
           class_names=np.asarray(list("abcd")))
  with pytest.raises(DataError, match=r"label 4 \(id 9\) is outside the 4 classes"):
    custom.load(_cfg(train=str(tmp_path / "bad.npz")))


def test_npz_trusted_file_with_an_unknown_class_is_refused(tmp_path):
  x = np.zeros((10, 4, 4), np.uint8)
  np.savez(tmp_path / "train.npz", x=x, y=np.arange(10) % 3)
  np.savez(tmp_path / "trusted.npz", x=x[:2], y=np.asarray([0, 3]))
  with pytest.raises(DataError, match="trusted.npz: label 3 .* outside the 3 classes 0..2"):
    custom.load(_cfg(train=str(tmp_path / "train.npz"), trusted=str(tmp_path / "trusted.npz")))
  np.savez(tmp_path / "trusted.npz", x=x[:2], y=np.asarray([0, 2]))
  s = custom.load(_cfg(train=str(tmp_path / "train.npz"), trusted=str(tmp_path / "trusted.npz")))
  assert s.x_train.shape[1:] == (4, 4, 1) and len(s.y_val) == 2   # greyscale gets a channel
  np.savez(tmp_path / "nox.npz", images=x, y=np.arange(10))
  with pytest.raises(DataError, match=r"needs arrays 'x' and 'y'; it holds \['images', 'y'\]"):
    custom.load(_cfg(train=str(tmp_path / "nox.npz")))


def _csv(path, rows, header=("f1", "f2", "label", "name")):
  path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")


def test_csv_string_labels_id_column_and_bad_rows(tmp_path):
  rows = [(i, 2 * i, "spam" if i % 2 else "ham", f"msg{i}") for i in range(12)]
  _csv(tmp_path / "train.csv", rows)
  _csv(tmp_path / "trusted.csv", [(1, 1, "ham", "t0"), (2, 2, "spam", "t1")])
  s = custom.load(_cfg(train=str(tmp_path / "train.csv"), trusted=str(tmp_path / "trusted.csv"),
                       id_column="name", test_fraction=0.25, standardize=False))
  assert s.class_names == ("ham", "spam") and len(s.y_val) == 2 and len(s.y_test) == 3
  for x, y, ident in zip(s.x_train, s.y_train, s.train_ids):
    i = int(ident[3:])
    np.testing.assert_array_equal(x, [i, 2 * i])
    assert s.class_names[y] == rows[i][2]
  _csv(tmp_path / "trusted.csv", [(1, 1, "eggs", "t0")])
  with pytest.raises(DataError, match="label 'eggs' is not one of the classes"):
    custom.load(_cfg(train=str(tmp_path / "train.csv"), trusted=str(tmp_path / "trusted.csv"),
                     id_column="name"))
  with pytest.raises(DataError, match=r"no column 'target' \(custom.label_column\)"):
    custom.load(_cfg(train=str(tmp_path / "train.csv"), label_column="target"))
  _csv(tmp_path / "bad.csv", rows[:3] + [(1, "n/a", "ham", "x")])
  with pytest.raises(DataError, match="line 5: column 'f2' holds 'n/a', not a number"):
    custom.load(_cfg(train=str(tmp_path / "bad.csv"), id_column="name"))


def test_a_constant_feature_column_stays_finite_and_becomes_zero(tmp_path):
  # Column "c" holds 3 everywhere in the training file; its std (0) is taken as 1, so it is only
  # centred: 0 in train and trusted, and the test file's 5 becomes 5 - 3 = 2.
  rows = [(i, 3, "ham" if i % 2 else "spam") for i in range(10)]
  header = ("f", "c", "label")
  _csv(tmp_path / "train.csv", rows, header)
  _csv(tmp_path / "trusted.csv", [(4, 3, "ham"), (7, 3, "spam")], header)
  _csv(tmp_path / "test.csv", [(2, 5, "ham"), (8, 5, "spam")], header)
  s = custom.load(_cfg(train=str(tmp_path / "train.csv"), trusted=str(tmp_path / "trusted.csv"),
                       test=str(tmp_path / "test.csv")))
  for x in (s.x_train, s.x_val, s.x_test):
    assert np.all(np.isfinite(x)), x
  np.testing.assert_array_equal(s.x_train[:, 1], np.zeros(10))
  np.testing.assert_array_equal(s.x_val[:, 1], [0.0, 0.0])
  np.testing.assert_array_equal(s.x_test[:, 1], [2.0, 2.0])
  # The other column is z-scored as usual (mean 4.5, std of 0..9), trusted / test alike.
  f = np.arange(10.0)
  np.testing.assert_allclose(np.sort(s.x_train[:, 0]), (f - f.mean()) / f.std(), rtol=1e-6)
  np.testing.assert_allclose(s.x_test[:, 0], (np.array([2.0, 8.0]) - 4.5) / f.std(), rtol=1e-6)


def test_csv_ids_without_an_id_column_are_row_numbers_from_the_first_data_row(tmp_path):
  # Row r (0 = the first line after the header) holds the features (100 + r, r) and a label
  # only it and a few others share, so every id can be checked against its own row.
  names = ("ant", "bee", "cow")
  rows = [(100 + r, r, names[r % 3]) for r in range(9)]
  _csv(tmp_path / "train.csv", rows, ("f1", "f2", "label"))
  (tmp_path / "trusted.txt").write_text("0\n4\n")
  s = custom.load(_cfg(train=str(tmp_path / "train.csv"), trusted_ids=str(tmp_path / "trusted.txt"),
                       test_fraction=0.0, standardize=False))
  # Trusted "0" is the first data row, "4" the fifth; they leave the training pool.
  np.testing.assert_array_equal(s.x_val, [[100, 0], [104, 4]])
  assert [s.class_names[y] for y in s.y_val] == ["ant", "bee"]
  assert sorted(s.train_ids.tolist(), key=int) == ["1", "2", "3", "5", "6", "7", "8"]
  for x, y, ident in zip(s.x_train, s.y_train, s.train_ids):
    np.testing.assert_array_equal(x, [100 + int(ident), int(ident)])
    assert s.class_names[y] == rows[int(ident)][2]
  # label_issues.csv names each point by the same row number: its given label is that row's.
  probs = np.full((len(s.y_train), 3), 1 / 3)
  label_issues.write(pathlib.Path(tmp_path / "run"), np.linspace(0, 1, len(s.y_train)),
                     s.y_train, probs, s.class_names, 0.5, ids=s.train_ids)
  with open(tmp_path / "run" / "label_issues.csv", newline="") as fh:
    written = list(csv.DictReader(fh))
  assert sorted(r["id"] for r in written) == sorted(s.train_ids.tolist())
  for r in written:
    assert r["given_label"] == rows[int(r["id"])][2], r
  # Without trusted ids, row "0" is the first data row too.
  s = custom.load(_cfg(train=str(tmp_path / "train.csv"), test_fraction=0.0, standardize=False))
  np.testing.assert_array_equal(s.x_train[s.train_ids.tolist().index("0")], [100, 0])
  assert sorted(s.train_ids.tolist(), key=int) == [str(r) for r in range(9)]


def test_bad_folders_and_ids_are_one_line_errors(tmp_path):
  _folder(tmp_path / "mixed")
  Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(tmp_path / "mixed" / "dog" / "9.png")
  with pytest.raises(DataError, match="mixed sizes.*set custom.image_size=N") as e:
    custom.load(_cfg(train=str(tmp_path / "mixed")))
  assert "\n" not in str(e.value)
  _folder(tmp_path / "empty")
  (tmp_path / "empty" / "fox").mkdir()
  with pytest.raises(DataError, match=r"class folder .*fox holds no images"):
    custom.load(_cfg(train=str(tmp_path / "empty")))
  _folder(tmp_path / "ok")
  (tmp_path / "ids.txt").write_text("cat/0.png\ncat/99.png\n")
  with pytest.raises(DataError, match=r"1 of the 2 ids .* are not in .* \(e.g. 'cat/99.png'\)"):
    custom.load(_cfg(train=str(tmp_path / "ok"), trusted_ids=str(tmp_path / "ids.txt")))
  _folder(tmp_path / "other", classes=("cat", "fox"))
  with pytest.raises(DataError, match="label 'fox' is not one of the classes"):
    custom.load(_cfg(train=str(tmp_path / "ok"), trusted=str(tmp_path / "other")))
  with pytest.raises(DataNotFoundError, match="custom.train=.*nope does not exist"):
    custom.check(_cfg(train=str(tmp_path / "nope")))
  with pytest.raises(ConfigError, match="not both"):
    custom.check(_cfg(train=str(tmp_path / "ok"), trusted=str(tmp_path / "ok"),
                      trusted_ids=str(tmp_path / "ids.txt")))
  with pytest.raises(ConfigError, match="is a npz but custom.train is a folder"):
    np.savez(tmp_path / "t.npz", x=np.zeros((1, 2)), y=np.zeros(1, int))
    custom.check(_cfg(train=str(tmp_path / "ok"), trusted=str(tmp_path / "t.npz")))
  with pytest.raises(ConfigError, match="custom.train is empty"):
    custom.check(_cfg())


def test_label_issue_table_ranks_by_score_and_flags_at_threshold():
  scores = np.asarray([0.9, 0.1, 0.5, 0.5, 0.2])
  given = np.asarray([0, 1, 1, 0, 2])
  probs = np.asarray([[.8, .1, .1], [.7, .2, .1], [.1, .1, .8], [.3, .6, .1], [.2, .2, .6]])
  true = np.asarray([0, 0, 1, 0, 1])
  rows = label_issues.table(scores, given, probs, ("a", "b", "c"), 0.5, ids=list("vwxyz"),
                            true_labels=true)
  assert [r["id"] for r in rows] == ["w", "z", "x", "y", "v"]      # ties keep the data's order
  assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
  assert [r["flagged"] for r in rows] == [True, True, True, True, False]   # <= 0.5
  assert [r["suggested_label"] for r in rows] == ["a", "c", "c", "b", "a"]
  assert [r["given_label"] for r in rows] == ["b", "c", "b", "a", "a"]
  assert [r["corrupted"] for r in rows] == [True, True, False, False, False]
  assert rows[0]["suggested_probability"] == 0.7 and rows[0]["true_label"] == "a"


def test_label_issue_files(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.random((12, 6, 6, 3)).astype(np.float32)
  probs = rng.dirichlet(np.ones(3), 12)
  rows = label_issues.write(pathlib.Path(tmp_path), rng.random(12), rng.integers(0, 3, 12),
                            probs, ("a", "b", "c"), 0.5, images=images)
  text = (tmp_path / "label_issues.csv").read_text().splitlines()
  assert text[0] == ",".join(label_issues.COLUMNS) and len(text) == 13
  assert text[1].split(",")[1] == rows[0]["id"]
  assert (tmp_path / "label_issues.png").stat().st_size > 5_000
  label_issues.write(pathlib.Path(tmp_path / "f"), rng.random(5), rng.integers(0, 3, 5),
                     rng.dirichlet(np.ones(3), 5), ("a", "b", "c"), 0.5,
                     images=rng.random((5, 4)))  # features: no contact sheet
  assert not (tmp_path / "f" / "label_issues.png").exists()


@pytest.mark.parametrize("case, message", [
    ("one_class", r"holds one class \('ham'\); a classifier needs two"),
    ("label_99", r"classes 0..99, but 96 of them have no rows .* label 99 at id 'r5' a typo"),
    ("mixed", r"labels mix integers and names \(11 integers, 1 names such as 'dog' at id 'r3'"),
    ("empty_label", r"1 rows have an empty label \(the first: id 'r4'\)"),
    ("duplicate_ids", r"1 ids occur more than once \(e.g. 'r2'\)"),
    ("nan_row", r"1 rows hold NaN or infinite values \(the first: id 'r6'\)"),
])
def test_labels_ids_and_values_that_would_give_a_wrong_result_are_refused(tmp_path, case,
                                                                          message):
  labels = [str(i % 3) for i in range(12)]
  ids = [f"r{i}" for i in range(12)]
  feats = [(i, 2 * i) for i in range(12)]
  if case == "one_class":
    labels = ["ham"] * 12
  elif case == "label_99":
    labels[5] = "99"
  elif case == "mixed":
    labels[3] = "dog"
  elif case == "empty_label":
    labels[4] = ""
  elif case == "duplicate_ids":
    ids[7] = "r2"
  elif case == "nan_row":
    feats[6] = ("nan", 12)
  rows = [(*f, l, i) for f, l, i in zip(feats, labels, ids)]
  _csv(tmp_path / "train.csv", rows, ("f1", "f2", "label", "id"))
  with pytest.raises(DataError, match=message) as e:
    custom.load(_cfg(train=str(tmp_path / "train.csv"), id_column="id", test_fraction=0.25))
  assert "\n" not in str(e.value) and "train.csv" in str(e.value)
  # The test file is checked the same way.
  if case == "nan_row":
    good = [(i, 2 * i, l, f"r{i}") for i, l in enumerate(labels)]
    _csv(tmp_path / "good.csv", good, ("f1", "f2", "label", "id"))
    with pytest.raises(DataError, match=r"train.csv: 1 rows hold NaN"):
      custom.load(_cfg(train=str(tmp_path / "good.csv"), test=str(tmp_path / "train.csv"),
                       id_column="id"))


def test_npz_labels_out_of_range_are_refused(tmp_path):
  x = np.zeros((9, 4), np.float32)
  y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 99])
  np.savez(tmp_path / "t.npz", x=x + np.arange(9)[:, None], y=y)
  with pytest.raises(DataError, match=r"classes 0..99, but 96 of them have no rows"):
    custom.load(_cfg(train=str(tmp_path / "t.npz")))


def test_files_that_are_not_what_they_claim_are_named_with_the_cause(tmp_path):
  (tmp_path / "random.npz").write_bytes(bytes(range(256)) * 8)
  with pytest.raises(DataError, match=r"random.npz is not an .npz archive .*numpy.savez"):
    custom.load(_cfg(train=str(tmp_path / "random.npz")))
  np.savez(tmp_path / "objects.npz", x=np.array([[1.0], [2.0]]),
           y=np.array([0, {"a": 1}], dtype=object))
  with pytest.raises(DataError, match=r"objects.npz cannot be read .*holds Python objects"):
    custom.load(_cfg(train=str(tmp_path / "objects.npz")))
  (tmp_path / "latin1.csv").write_bytes("f,label\n1.0,caf\xe9\n2.0,b\n".encode("latin-1"))
  with pytest.raises(DataError, match=r"latin1.csv is not UTF-8 text \(byte 15"):
    custom.load(_cfg(train=str(tmp_path / "latin1.csv")))
  (tmp_path / "random.csv").write_bytes(bytes(range(256)) * 8)
  with pytest.raises(DataError, match=r"random.csv is not UTF-8 text"):
    custom.load(_cfg(train=str(tmp_path / "random.csv")))


def test_a_file_name_that_is_not_utf8_is_refused_naming_it(tmp_path):
  _folder(tmp_path / "imgs")
  bad = (tmp_path / "imgs" / "cat").as_posix().encode() + b"/caf\xe9.png"
  import os  # pylint: disable=import-outside-toplevel
  try:
    with open(bad, "wb") as fh:
      fh.write((tmp_path / "imgs" / "cat" / "0.png").read_bytes())
  except OSError:
    pytest.skip("this file system refuses names that are not UTF-8")
  assert os.path.exists(bad)
  with pytest.raises(DataError, match=r"the name 'cat/caf\ufffd.png' is not valid UTF-8"):
    custom.load(_cfg(train=str(tmp_path / "imgs")))
