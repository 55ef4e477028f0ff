"""Image folders (torchvision ``ImageFolder`` layout) streamed through tf.data, e.g. ILSVRC-2012.

    data_dir/training/<class>/<image>      (or train/)
    data_dir/validation/<class>/<image>    (or val/)

Class ids follow torchvision: class folder names sorted, then the files of each class in sorted
order (walking sub-folders), so the training-set index of every image, which instance-level
data parameters are keyed on, is what the original's ``ImageFolderWithIdx`` gives. The ILSVRC
validation images must be sorted into class folders as for torchvision (e.g. with the widely
used ``valprep.sh``).

Nothing is held in memory but the file names: images are read, decoded and transformed per
batch by a tf.data pipeline. Batches are a pure function of (seed, stream, step), as the
in-memory ``Batcher``'s: the epoch's order is a seeded permutation, and every random crop and
flip draws from a stateless seed of (seed, epoch, position), so a resumed run sees the same
batches. The last incomplete batch of an epoch is dropped (static shapes); PyTorch's loader
keeps it.

Transforms of the original's ImageNet script, with ImageNet's mean / std:

  training    RandomResizedCrop(224) (area 8-100% of the image, aspect ratio 3/4-4/3, 10
              attempts, else the whole image) + horizontal flip
  evaluation  Resize(256) (shorter side, aspect kept) + CenterCrop(224)

Resizing is bilinear with antialiasing, as PIL's. Two small differences from torchvision:
the aspect ratio is drawn uniformly rather than log-uniformly, and after 10 failed attempts
the whole image is used rather than a centre crop of clamped aspect ratio (TensorFlow's
``sample_distorted_bounding_box`` semantics).
"""

import dataclasses
import os
import pathlib

import numpy as np
import tensorflow as tf

from common.errors import DataNotFoundError

# torchvision's IMG_EXTENSIONS. TensorFlow decodes the first five; the others stop the scan
# with a message saying so.
DECODABLE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
UNDECODABLE_EXTENSIONS = (".ppm", ".pgm", ".tif", ".tiff")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

TRAIN_DIRS = ("training", "train")
EVAL_DIRS = ("validation", "val")

IMAGENET_HELP = ("ILSVRC-2012 (https://image-net.org/download-images): data_dir/training/<wnid>/"
                 "*.JPEG and data_dir/validation/<wnid>/*.JPEG, the validation images sorted "
                 "into class folders (as torchvision's ImageFolder needs)")


@dataclasses.dataclass(frozen=True)
class FolderSplit:
  """File paths and class ids of one folder, in torchvision's order."""

  paths: np.ndarray     # str, [N]
  labels: np.ndarray    # int64, [N]
  root: str

  def __len__(self):
    return len(self.paths)


@dataclasses.dataclass(frozen=True)
class FolderDataset:
  train: FolderSplit
  test: FolderSplit
  class_names: tuple
  info: dict

  @property
  def num_classes(self):
    return len(self.class_names)


def scan(root):
  """(FolderSplit, class names) of an ImageFolder root: sorted class folders, sorted files."""
  root = pathlib.Path(root)
  classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
  if not classes:
    raise DataNotFoundError(f"{root} holds no class folders; expected {root}/<class>/<image>.")
  paths, labels = [], []
  for label, name in enumerate(classes):
    found = 0
    for dirpath, dirnames, filenames in sorted(os.walk(root / name, followlinks=True)):
      dirnames.sort()
      for fname in sorted(filenames):
        lower = fname.lower()
        if lower.endswith(UNDECODABLE_EXTENSIONS):
          raise ValueError(f"{pathlib.Path(dirpath) / fname}: TensorFlow cannot decode "
                           f"{', '.join(UNDECODABLE_EXTENSIONS)} images; convert them to "
                           f"JPEG or PNG.")
        if lower.endswith(DECODABLE_EXTENSIONS):
          paths.append(os.path.join(dirpath, fname))
          labels.append(label)
          found += 1
    if not found:
      # torchvision raises here too: an empty class would be a silent hole in the label space.
      raise DataNotFoundError(f"class folder {root / name} holds no images "
                              f"({', '.join(DECODABLE_EXTENSIONS)}).")
  return FolderSplit(np.array(paths), np.array(labels, np.int64), str(root)), tuple(classes)


def _find(data_dir, names, help_text):
  for name in names:
    if (data_dir / name).is_dir():
      return data_dir / name
  raise DataNotFoundError(f"{data_dir} has no {' or '.join(names)}/ folder. Expected "
                          f"{help_text}.")


def load_folders(data_dir, help_text=IMAGENET_HELP):
  """The training and validation folders of ``data_dir``, which must hold the same classes."""
  if not data_dir:
    raise DataNotFoundError(f"data_dir is empty: set it to the folder holding {help_text}.")
  data_dir = pathlib.Path(data_dir).expanduser()
  if not data_dir.is_dir():
    raise DataNotFoundError(f"data_dir {data_dir} does not exist. Expected {help_text}.")
  train, train_classes = scan(_find(data_dir, TRAIN_DIRS, help_text))
  test, test_classes = scan(_find(data_dir, EVAL_DIRS, help_text))
  if train_classes != test_classes:
    only_train = sorted(set(train_classes) - set(test_classes))[:5]
    only_test = sorted(set(test_classes) - set(train_classes))[:5]
    raise ValueError(f"{train.root} and {test.root} hold different classes ({len(train_classes)} "
                     f"vs {len(test_classes)}; e.g. only in training: {only_train}, only in "
                     f"validation: {only_test}); class ids would not match.")
  info = {"source": "folders", "origin": str(data_dir), "num_train": len(train),
          "num_test": len(test), "num_classes": len(train_classes)}
  return FolderDataset(train, test, train_classes, info)


def _decode(path):
  image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def _normalise(image):
  """uint8 or [0, 255] float -> ToTensor() / 255, then (x - mean) / std."""
  image = tf.cast(image, tf.float32) / 255.0
  return (image - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)


def random_resized_crop(image, seed, size, area=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
  """RandomResizedCrop(size) + RandomHorizontalFlip of one image, from a stateless seed [2]."""
  seeds = tf.random.experimental.stateless_split(seed, 2)
  begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image), bounding_boxes=tf.zeros([1, 0, 4]), seed=seeds[0],
      min_object_covered=0.0, aspect_ratio_range=ratio, area_range=area, max_attempts=10,
      use_image_if_no_bounding_boxes=True)
  crop = tf.slice(image, begin, extent)
  crop = tf.image.resize(crop, [size, size], method="bilinear", antialias=True)
  return tf.image.stateless_random_flip_left_right(crop, seed=seeds[1])


def resize_center_crop(image, resize, size):
  """Resize(resize) (shorter side to ``resize``, torchvision's int truncation of the longer) and
  CenterCrop(size) (torchvision's rounding of the offsets)."""
  shape = tf.cast(tf.shape(image)[:2], tf.float64)
  short = tf.minimum(shape[0], shape[1])
  new = tf.cast(tf.floor(shape * resize / short), tf.int32)
  new = tf.where(shape == short, resize, new)   # the shorter side is exactly ``resize``
  image = tf.image.resize(image, new, method="bilinear", antialias=True)
  top = tf.cast(tf.round(tf.cast(new[0] - size, tf.float32) / 2.0), tf.int32)
  left = tf.cast(tf.round(tf.cast(new[1] - size, tf.float32) / 2.0), tf.int32)
  return tf.slice(image, [top, left, 0], [size, size, 3])


class FolderBatcher:
  """Training batches of a ``FolderSplit`` as a pure function of the step number.

  ``epoch_batch(step)`` returns ``{"x", "y", "index"}`` like ``batching.Batcher``; ``y`` is the
  given labels (the noisy ones when the run corrupts labels). Consecutive steps read from one
  open tf.data iterator; any other step (a resume) rebuilds it at that position.
  """

  def __init__(self, split, labels, batch_size, seed, stream, image_size, parallel_calls=None):
    self.paths = np.asarray(split.paths)
    self.labels = np.asarray(labels, np.int64)
    self.n = len(self.paths)
    if len(self.labels) != self.n:
      raise ValueError(f"{len(self.labels)} labels for {self.n} images.")
    self.batch_size = int(batch_size)
    self.steps_per_epoch = self.n // self.batch_size
    if self.steps_per_epoch < 1:
      raise ValueError(f"{stream}: {self.n} images are fewer than one batch of {batch_size}.")
    self.seed, self.stream = int(seed), stream
    self.image_size = int(image_size)
    self.parallel_calls = parallel_calls or tf.data.AUTOTUNE
    self._iterator, self._next_step = None, None

  @property
  def stream_id(self):
    return sum(ord(c) * 31 ** i for i, c in enumerate(self.stream)) % (2 ** 31)

  def _epoch_dataset(self, epoch, first_batch):
    perm = np.random.default_rng([self.seed, self.stream_id, epoch]).permutation(self.n)
    start = first_batch * self.batch_size
    stop = self.steps_per_epoch * self.batch_size
    order = perm[start:stop]
    positions = np.arange(start, stop, dtype=np.int64) + np.int64(epoch) * self.n
    seeds = np.stack([np.full_like(positions, self.seed * 7919 + self.stream_id), positions], 1)
    size = self.image_size

    def load(path, label, index, seed):
      image = random_resized_crop(_decode(path), seed, size)
      return {"x": _normalise(image), "y": label, "index": index}

    ds = tf.data.Dataset.from_tensor_slices((self.paths[order], self.labels[order],
                                             order.astype(np.int64), seeds))
    ds = ds.map(load, num_parallel_calls=self.parallel_calls, deterministic=True)
    return ds.batch(self.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

  def epoch_batch(self, step):
    epoch, k = divmod(int(step), self.steps_per_epoch)
    if self._iterator is None or self._next_step != step:
      self._iterator = iter(self._epoch_dataset(epoch, k))
    batch = next(self._iterator)
    self._next_step = step + 1
    if k + 1 == self.steps_per_epoch:
      self._iterator = None
    return batch


def eval_dataset(split, batch_size, image_size, resize, parallel_calls=None):
  """(x, y) batches of the evaluation transform, in file order, the last one smaller."""
  def load(path, label):
    image = resize_center_crop(_decode(path), resize, image_size)
    return _normalise(image), label

  ds = tf.data.Dataset.from_tensor_slices((np.asarray(split.paths),
                                           np.asarray(split.labels, np.int64)))
  ds = ds.map(load, num_parallel_calls=parallel_calls or tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
