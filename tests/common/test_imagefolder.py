"""Image-folder datasets (the ImageNet layout): torchvision's order, the transforms' geometry,
and batches as a pure function of the step."""

import numpy as np
import pytest
import tensorflow as tf

from common import metrics
from common.data import imagefolder
from common.errors import DataNotFoundError


def _write(path, h, w, value=None, seed=0, fmt="jpeg"):
  path.parent.mkdir(parents=True, exist_ok=True)
  img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
  if value is not None:
    img[:] = value
  data = tf.io.encode_png(img) if fmt == "png" else tf.io.encode_jpeg(img, quality=100)
  tf.io.write_file(str(path), data)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """3 classes; class c's training images are filled with grey value 40 + 80 c, so a decoded
  and normalised image tells which class file it came from."""
  root = tmp_path_factory.mktemp("imagenet")
  for split, n in (("training", 5), ("validation", 2)):
    for c, wnid in enumerate(("n03", "n01", "n02")):          # created out of order
      for i in range(n):
        sub = "nested/" if i == 4 else ""
        ext = "png" if i == 3 else "JPEG"
        _write(root / split / wnid / f"{sub}img{i}.{ext}", 40 + i * 3, 60 - i * 2,
               value=40 + 80 * (sorted(("n03", "n01", "n02")).index(wnid)),
               fmt="png" if ext == "png" else "jpeg")
  (root / "training" / "n01" / "notes.txt").write_text("not an image")
  return root


def test_scan_is_torchvision_order(folder):
  data = imagefolder.load_folders(folder)
  assert data.class_names == ("n01", "n02", "n03")
  assert len(data.train) == 15 and len(data.test) == 6
  rel = [p.split("training/")[1] for p in data.train.paths[:5]]
  # Files of a class sorted as os.walk visits them: the folder's files, then its sub-folders.
  assert rel == ["n01/img0.JPEG", "n01/img1.JPEG", "n01/img2.JPEG", "n01/img3.png",
                 "n01/nested/img4.JPEG"]
  np.testing.assert_array_equal(data.train.labels, np.repeat([0, 1, 2], 5))
  assert data.info["num_classes"] == 3


def test_folder_errors(tmp_path, folder):
  with pytest.raises(DataNotFoundError, match="data_dir is empty"):
    imagefolder.load_folders("")
  with pytest.raises(DataNotFoundError, match="does not exist"):
    imagefolder.load_folders(tmp_path / "nope")
  (tmp_path / "a" / "training" / "n01").mkdir(parents=True)
  _write(tmp_path / "a" / "training" / "n01" / "x.jpg", 8, 8)
  with pytest.raises(DataNotFoundError, match="no validation or val/ folder"):
    imagefolder.load_folders(tmp_path / "a")
  _write(tmp_path / "a" / "val" / "n02" / "x.jpg", 8, 8)
  with pytest.raises(ValueError, match="hold different classes"):
    imagefolder.load_folders(tmp_path / "a")
  (tmp_path / "a" / "val" / "n01").mkdir()
  (tmp_path / "a" / "training" / "n02").mkdir()
  with pytest.raises(DataNotFoundError, match="holds no images"):
    imagefolder.load_folders(tmp_path / "a")
  (tmp_path / "a" / "training" / "n02" / "x.tif").write_bytes(b"II*")
  with pytest.raises(ValueError, match="cannot decode"):
    imagefolder.load_folders(tmp_path / "a")


def test_resize_center_crop_geometry():
  # A 300 x 400 image whose pixel (r, c) holds (r, c, 0): after Resize(256) it is 256 x 341
  # (torchvision: int(256 * 400 / 300) = 341), and CenterCrop(224) starts at
  # round(32 / 2) = 16 and round(117 / 2) = 58 (half to even, in Python as in TF).
  r, c = np.meshgrid(np.arange(300.0), np.arange(400.0), indexing="ij")
  image = tf.constant(np.stack([r, c, np.zeros_like(r)], -1), tf.float32)
  out = imagefolder.resize_center_crop(image, 256, 224).numpy()
  assert out.shape == (224, 224, 3)
  scale_r, scale_c = 300 / 256, 400 / 341
  # Bilinear resizing maps output pixel i to input coordinate (i + 0.5) * scale - 0.5 (the
  # antialiasing filter moves values on a ramp by < 0.1; an offset one pixel off moves them 1.17).
  for i, j in ((0, 0), (100, 50), (223, 223)):
    assert out[i, j, 0] == pytest.approx((i + 16 + 0.5) * scale_r - 0.5, abs=0.15)
    assert out[i, j, 1] == pytest.approx((j + 58 + 0.5) * scale_c - 0.5, abs=0.15)
  tall = imagefolder.resize_center_crop(tf.zeros([500, 300, 3]), 256, 224)
  assert tall.shape == (224, 224, 3)


def test_random_resized_crop_is_a_function_of_its_seed():
  image = tf.random.stateless_uniform([120, 90, 3], seed=(1, 2), maxval=255.0)
  a = imagefolder.random_resized_crop(image, tf.constant([3, 4], tf.int64), 32)
  b = imagefolder.random_resized_crop(image, tf.constant([3, 4], tf.int64), 32)
  c = imagefolder.random_resized_crop(image, tf.constant([3, 5], tf.int64), 32)
  assert a.shape == (32, 32, 3)
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert not np.array_equal(a.numpy(), c.numpy())
  # Crops cover 8-100% of the image: over many seeds both small and near-whole crops occur,
  # and flips happen about half the time (checked on an image whose left half is dark).
  half = tf.concat([tf.zeros([64, 32, 3]), tf.fill([64, 32, 3], 255.0)], 1)
  lefts = [float(tf.reduce_mean(imagefolder.random_resized_crop(
      half, tf.constant([9, s], tf.int64), 16)[:, :8])) for s in range(60)]
  dark_left = sum(v < 128 for v in lefts)
  assert 15 < dark_left < 45


def _class_of(x):
  """Class c from the mean normalised grey value of an image filled with 40 + 80 c."""
  grey = (x * np.array(imagefolder.IMAGENET_STD) + np.array(imagefolder.IMAGENET_MEAN)) * 255
  return np.round((grey.mean(axis=(1, 2, 3)) - 40) / 80).astype(int)


def test_batcher_epochs_labels_and_resume(folder):
  data = imagefolder.load_folders(folder)
  noisy = (data.train.labels + 1) % 3
  batcher = imagefolder.FolderBatcher(data.train, noisy, 4, 7, "train", 32)
  assert batcher.steps_per_epoch == 3
  batches = [batcher.epoch_batch(s) for s in range(6)]
  for b in batches:
    x, y, index = b["x"].numpy(), b["y"].numpy(), b["index"].numpy()
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(y, noisy[index])              # the given (noisy) labels
    np.testing.assert_array_equal(_class_of(x), data.train.labels[index])  # the right files
  for epoch in (0, 1):
    seen = np.concatenate([b["index"].numpy() for b in batches[3 * epoch:3 * epoch + 3]])
    assert len(set(seen)) == 12                                   # without replacement
  assert not np.array_equal(batches[0]["index"], batches[3]["index"])
  # A fresh batcher asked for step 4 (a resume) gives the same batch, crops included.
  again = imagefolder.FolderBatcher(data.train, noisy, 4, 7, "train", 32).epoch_batch(4)
  np.testing.assert_array_equal(again["x"].numpy(), batches[4]["x"].numpy())
  np.testing.assert_array_equal(again["index"].numpy(), batches[4]["index"].numpy())
  with pytest.raises(ValueError, match="fewer than one batch"):
    imagefolder.FolderBatcher(data.train, noisy, 16, 7, "train", 32)


def test_eval_dataset_and_topk(folder):
  data = imagefolder.load_folders(folder)
  ds = imagefolder.eval_dataset(data.test, 4, 32, 36)
  xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
  assert [len(y) for y in ys] == [4, 2]
  np.testing.assert_array_equal(np.concatenate(ys), data.test.labels)
  np.testing.assert_array_equal(_class_of(np.concatenate(xs)), data.test.labels)

  class Fixed:
    """Logits that rank the true class first for class 0, second for 1, third for 2."""

    def predict_on_batch(self, x):
      c = _class_of(np.asarray(x))
      ranks = {0: [3.0, 2.0, 1.0], 1: [3.0, 2.0, 1.0], 2: [3.0, 2.0, 1.0]}
      return np.array([ranks[k] for k in c], np.float32)

  acc = metrics.topk_accuracies(Fixed(), ds, ks=(1, 2, 5))
  assert acc[1] == pytest.approx(2 / 6) and acc[2] == pytest.approx(4 / 6) and acc[5] == 1.0
