"""CIFAR-10 from the canonical python pickles (folder or the .tar.gz itself) or an image folder."""

import pathlib
import re

import numpy as np

from common.data import cifar
from common.data.splits import Pools, fixed_permutation
from common.errors import DataError, DataNotFoundError

CANONICAL_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                     "ship", "truck")
IMAGE_SHAPE = cifar.IMAGE_SHAPE
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
TARBALL = "cifar-10-python.tar.gz"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def load_files(data_dir):
  """Pools from `data_dir`; returns (pools, class_names, origin).

  The layout is picked automatically: the pickles (in `data_dir/cifar-10-batches-py/` or in
  `data_dir` itself), else the downloaded `cifar-10-python.tar.gz` read without unpacking, else
  an image folder `data_dir/{train,test}/<class>/*.{png,jpg,jpeg}`. The pickles are the
  canonical format and are trusted like any downloaded code: only load files you fetched.
  """
  root = pathlib.Path(data_dir).expanduser()
  for folder in (root / BATCH_DIR, root):
    if any((folder / name).is_file() for name in TRAIN_BATCHES + (TEST_BATCH,)):
      return _load_pickle_folder(folder)
  if (root / TARBALL).is_file():
    return _load_tarball(root / TARBALL)
  if (root / "train").is_dir() or (root / "test").is_dir():
    return _load_image_folder(root)
  raise DataNotFoundError(
      f"CIFAR-10 source='files' found no data in {root}. Expected either\n"
      f"  the python pickles {root / BATCH_DIR}/{{{','.join(TRAIN_BATCHES)},{TEST_BATCH}}}\n"
      f"  (or the archive {root / TARBALL} itself), or\n"
      f"  an image folder {root / 'train'}/<class>/*.png|jpg and {root / 'test'}/<class>/*.\n"
      f"Download the pickles from {URL}, or use source='tfds' (downloads when online).")


def _parse_batch(raw, where):
  """uint8 images [N, 32, 32, 3] (HWC) and int64 labels [N] from one pickled batch."""
  data, labels = cifar.unpickle(raw, (b"data", b"labels"), where, "a CIFAR-10 python batch")
  return cifar.rows_to_images(data, labels, 10, where)


def _class_names_from_meta(raw, where):
  what = "a CIFAR-10 batches.meta pickle"
  (names,) = cifar.unpickle(raw, (b"label_names",), where, what)
  return cifar.decode_names(names, 10, where, what)


def _pools_from_batches(read, where):
  """`read(name)` returns a file's bytes (None for an optional file that is absent)."""
  train = [_parse_batch(read(name), f"{where}/{name}") for name in TRAIN_BATCHES]
  x_test, y_test = _parse_batch(read(TEST_BATCH), f"{where}/{TEST_BATCH}")
  meta = read(META)
  names = (_class_names_from_meta(meta, f"{where}/{META}") if meta is not None
           else CANONICAL_CLASSES)
  pools = Pools(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
                x_test, y_test)
  return pools, names


def _load_pickle_folder(folder):
  read = cifar.read_folder(folder, TRAIN_BATCHES + (TEST_BATCH,), (META,), "CIFAR-10", URL)
  pools, names = _pools_from_batches(read, str(folder))
  return pools, names, f"CIFAR-10 python pickles in {folder}"


def _load_tarball(path):
  pools, names = cifar.read_tarball(path, BATCH_DIR, (META,), _pools_from_batches, "CIFAR-10",
                                    URL)
  return pools, names, f"CIFAR-10 python archive {path}"


def _natural_key(path):
  # "2.png" before "10.png": files numbered without zero padding keep their numeric order.
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _class_folders(split_dir):
  return sorted(p.name for p in split_dir.iterdir() if p.is_dir())


def _load_image_folder(root):
  missing = [root / part for part in ("train", "test") if not (root / part).is_dir()]
  if missing:
    raise DataNotFoundError(
        "CIFAR-10 image folder incomplete; missing:\n" +
        "\n".join(f"  {p}/<class>/*.png|jpg" for p in missing) +
        f"\nOr use the python pickles ({URL}) or source='tfds'.")
  train_classes, test_classes = _class_folders(root / "train"), _class_folders(root / "test")
  if set(train_classes) != set(test_classes):
    raise ValueError(f"CIFAR-10 image folder {root}: train/ holds classes {train_classes} but "
                     f"test/ holds {test_classes}; both need the same class folders")
  # The canonical label order when the folders carry the canonical names, so that label ids
  # mean the same thing as in the pickles and in TFDS; otherwise the usual sorted order.
  names = (CANONICAL_CLASSES if set(train_classes) == set(CANONICAL_CLASSES)
           else tuple(train_classes))
  pools = []
  for part in ("train", "test"):
    paths, labels = [], []
    for label, name in enumerate(names):
      files = sorted((p for p in (root / part / name).iterdir()
                      if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key)
      if not files:
        raise DataError(f"CIFAR-10 image folder {root / part / name} holds no "
                        f"{'/'.join(IMAGE_EXTENSIONS)} images: every class needs its images "
                        "(remove the folder from both train/ and test/ to drop the class).")
      paths += [str(p) for p in files]
      labels += [label] * len(files)
    if not paths:
      raise DataNotFoundError(f"CIFAR-10 image folder {root / part} holds no "
                              f"{'/'.join(IMAGE_EXTENSIONS)} images under its class folders")
    x = _decode_images(paths)
    y = np.asarray(labels, dtype=np.int64)
    # The folder is ordered by class. The reference protocol takes val as the *last* training
    # images and corrupts the *first* ones, so a class-ordered pool would give a val set of one
    # or two classes. A fixed permutation (seed 0, independent of the run seed so every run
    # sees the same split) restores a class-mixed order like the canonical files.
    perm = fixed_permutation(len(y))
    pools += [x[perm], y[perm]]
  return Pools(*pools), names, f"CIFAR-10 image folder {root}"


def _decode_images(paths):
  """uint8 [N, 32, 32, 3] decoded in parallel with tf.data, in the order of `paths`."""
  # Imported here: only this layout needs TensorFlow, and it takes seconds to import.
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  def decode(path):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    check = tf.debugging.Assert(
        tf.reduce_all(tf.equal(tf.shape(image), IMAGE_SHAPE)),
        ["CIFAR-10 images must be 32x32; this one is not:", path, "shape", tf.shape(image)])
    with tf.control_dependencies([check]):
      return tf.identity(image)

  # tf.data keeps the input order (deterministic by default) while decoding in parallel.
  dataset = (tf.data.Dataset.from_tensor_slices(paths)
             .map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(2048))
  try:
    return np.concatenate([batch.numpy() for batch in dataset])
  except tf.errors.InvalidArgumentError as e:
    # TF's message does not say which file: find the first that does not decode to 32x32.
    for path in paths:
      try:
        image = decode(tf.constant(path))
      except tf.errors.InvalidArgumentError as bad:
        reason = ("it is not a 32x32 image" if "32x32" in bad.message
                  else bad.message.strip().splitlines()[0])
        raise DataError(f"CIFAR-10 image folder: cannot use {path}: {reason}") from None
      del image
    raise DataError(f"CIFAR-10 image folder: {e.message.splitlines()[0]}") from None
