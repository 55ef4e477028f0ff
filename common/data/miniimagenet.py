"""Mini-ImageNet for few-shot learning (penalty.md §7.3) from the cache pickles.

    data_dir/mini-imagenet-cache-train.pkl   64 classes x 600 images
    data_dir/mini-imagenet-cache-val.pkl     16 classes x 600
    data_dir/mini-imagenet-cache-test.pkl    20 classes x 600

These are the files of renmengye/few-shot-ssl-public (its README links them), which the
original read: each is a pickled dict with `image_data`, uint8 [N, 84, 84, 3], the images of
one class contiguous, and `class_dict`, class name -> list of image indices. The original's
label is index // 600; here a split is the class-major array [classes, 600, 84, 84, 3] of the
same images, class k = images 600 k .. 600 k + 599, so class k is the original's label k.
`class_dict` only names the classes: when a name's indices are not exactly one such block, the
classes still follow index // 600, as the original's labels did, and the note in
`info["class_names_note"]` says so.

Images stay uint8 in memory: the training split alone is 38400 x 84 x 84 x 3, 813 MB as uint8
and 3.3 GB as float32. The episode sampler converts the images of each episode to float32 /255
(the original's scaling); `MiniImageNetSplit.as_float()` converts a whole split on demand.
Other class counts (e.g. small test pickles) are accepted; N must be a multiple of
`images_per_class` (600 in the real files).

The pickles are trusted like any downloaded code: load only files you fetched.
"""

import dataclasses
import logging
import pathlib
import pickle

import numpy as np

from common.errors import DataNotFoundError

SPLITS = ("train", "val", "test")
FILE_PATTERN = "mini-imagenet-cache-{}.pkl"
SUBDIR = "dataset_miniimagenet"   # where the original's scripts kept them
IMAGES_PER_CLASS = 600
IMAGE_SHAPE = (84, 84, 3)
SOURCE_HELP = ("the Mini-ImageNet cache pickles of renmengye/few-shot-ssl-public "
               "(https://github.com/renmengye/few-shot-ssl-public, README: 'mini-imagenet' "
               "download link)")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class MiniImageNetSplit:
  """One split: uint8 images [classes, images_per_class, H, W, 3] and the class names."""

  images: np.ndarray
  class_names: tuple     # "" where class_dict does not name a class
  path: str

  @property
  def num_classes(self):
    return len(self.images)

  def as_float(self):
    """float32 images / 255 (the original's scaling); 4 bytes a pixel, mind the memory."""
    return self.images.astype(np.float32) / np.float32(255.0)

  def __repr__(self):
    return f"MiniImageNetSplit({self.images.shape}, {self.path})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class MiniImageNet:
  """The splits that were loaded (None for a split not asked for) and a json-able info."""

  train: MiniImageNetSplit
  val: MiniImageNetSplit
  test: MiniImageNetSplit
  info: dict

  def __repr__(self):
    parts = ", ".join(f"{name}={getattr(self, name).images.shape}" for name in SPLITS
                      if getattr(self, name) is not None)
    return f"MiniImageNet({parts})"


def find_file(data_dir, split):
  """The pickle of `split` in data_dir or data_dir/dataset_miniimagenet, or None."""
  root = pathlib.Path(data_dir).expanduser()
  name = FILE_PATTERN.format(split)
  for candidate in (root / name, root / SUBDIR / name):
    if candidate.is_file():
      return candidate
  return None


def _unpickle(path):
  """The pickled dict, with str keys, whichever Python wrote it."""
  try:
    with open(path, "rb") as f:
      try:
        record = pickle.load(f)
      except UnicodeDecodeError:
        # Written by Python 2 with numpy arrays inside: latin1 maps their bytes one to one.
        f.seek(0)
        record = pickle.load(f, encoding="latin1")
  except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as e:
    raise ValueError(f"{path}: cannot unpickle it ({e!r}); the download is probably "
                     f"incomplete or not a Mini-ImageNet cache pickle, fetch it again") from e
  if not isinstance(record, dict):
    raise ValueError(f"{path}: holds a {type(record).__name__}, expected a dict with "
                     f"'image_data' and 'class_dict'")
  return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in record.items()}


def _class_names(class_dict, num_classes, per_class, path):
  """Names of the blocks index // per_class, and a note if class_dict disagrees with them."""
  names = [""] * num_classes
  problems = []
  for raw_name, indices in class_dict.items():
    name = raw_name.decode("latin1") if isinstance(raw_name, bytes) else str(raw_name)
    indices = np.sort(np.asarray(indices, np.int64).reshape(-1))
    block = int(indices[0]) // per_class if indices.size else -1
    expected = np.arange(block * per_class, (block + 1) * per_class)
    if block < 0 or block >= num_classes or not np.array_equal(indices, expected):
      problems.append(name)
    elif names[block]:
      problems.append(name)
    else:
      names[block] = name
  note = ""
  if problems or len(class_dict) != num_classes:
    note = (f"{path}: class_dict does not name the {num_classes} blocks of {per_class} "
            f"consecutive images one to one ({len(problems)} of its {len(class_dict)} names "
            f"do not, e.g. {problems[:3]}); classes follow index // {per_class} as the "
            f"original's labels did, unnamed ones are ''")
    logging.warning(note)
  return tuple(names), note


def read_split(path, images_per_class=IMAGES_PER_CLASS):
  """MiniImageNetSplit and a note (empty unless class_dict disagrees) from one pickle."""
  record = _unpickle(path)
  if "image_data" not in record:
    raise ValueError(f"{path}: keys {sorted(map(str, record))}, expected 'image_data' "
                     f"(uint8 [N, 84, 84, 3]) and 'class_dict'")
  images = np.asarray(record["image_data"])
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"{path}: image_data is {images.dtype} {images.shape}, expected uint8 "
                     f"[N, H, W, 3] (84x84 in the real files)")
  if images_per_class < 1 or len(images) == 0 or len(images) % images_per_class:
    raise ValueError(f"{path}: {len(images)} images is not a positive multiple of "
                     f"images_per_class={images_per_class}; classes must be contiguous blocks")
  num_classes = len(images) // images_per_class
  class_dict = record.get("class_dict")
  if class_dict is None:
    names, note = ("",) * num_classes, f"{path}: no class_dict, classes are unnamed"
  else:
    names, note = _class_names(class_dict, num_classes, images_per_class, path)
  images = images.reshape((num_classes, images_per_class) + images.shape[1:])
  return MiniImageNetSplit(images, names, str(path)), note


def load_miniimagenet(data_dir, splits=SPLITS, images_per_class=IMAGES_PER_CLASS):
  """The Mini-ImageNet splits in `splits` from the cache pickles in `data_dir`.

  Args:
    data_dir: folder holding mini-imagenet-cache-{train,val,test}.pkl (or its
      dataset_miniimagenet/ sub-folder, the original's place for them).
    splits: which of "train", "val", "test" to read (the reference reads all three and uses
      train and test; each pickle is read whole, so leaving out val saves memory).
    images_per_class: images of one class (600 in the real files; a parameter for small files).
  Returns:
    A MiniImageNet whose splits hold uint8 [classes, images_per_class, H, W, 3].
  """
  if isinstance(splits, str):
    splits = (splits,)
  unknown = [s for s in splits if s not in SPLITS]
  if unknown or not splits:
    raise ValueError(f"Unknown Mini-ImageNet split(s) {unknown or splits!r}; valid: "
                     f"{', '.join(repr(s) for s in SPLITS)}")
  if not data_dir:
    raise DataNotFoundError(f"Mini-ImageNet needs data_dir, the folder holding "
                            f"{', '.join(FILE_PATTERN.format(s) for s in splits)}: "
                            f"{SOURCE_HELP}.")
  root = pathlib.Path(data_dir).expanduser()
  found = {s: find_file(root, s) for s in splits}
  missing = [s for s, path in found.items() if path is None]
  if missing:
    listed = "\n".join(f"  {root / FILE_PATTERN.format(s)}  "
                       f"{'MISSING' if s in missing else 'found'}" for s in splits)
    where = "" if root.is_dir() else f"data_dir {root} does not exist.\n"
    raise DataNotFoundError(f"{where}Mini-ImageNet needs the cache pickles (in data_dir or "
                            f"data_dir/{SUBDIR}):\n{listed}\nThey are {SOURCE_HELP}.")
  loaded, notes = {}, {}
  for s in splits:
    loaded[s], note = read_split(found[s], images_per_class)
    if note:
      notes[s] = note
  info = {
      "dataset": "miniimagenet",
      "source": "files",
      "origin": {s: str(found[s]) for s in splits},
      "images_per_class": int(images_per_class),
      "num_classes": {s: loaded[s].num_classes for s in splits},
      "image_shape": list(next(iter(loaded.values())).images.shape[2:]),
      "dtype": "uint8 (scale by 1/255 per episode)",
      "class_names_note": notes,
  }
  return MiniImageNet(*(loaded.get(s) for s in SPLITS), info=info)
