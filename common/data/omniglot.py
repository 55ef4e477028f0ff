"""Omniglot for few-shot learning (penalty.md §7.2): three sources, one set of arrays.

Sources, all giving the same drawings for the same characters:

  source="files"  the official PNG release (https://github.com/brendenlake/omniglot, python/):
                  `data_dir/images_background/<Alphabet>/characterNN/XXXX_YY.png` and the same
                  for `images_evaluation`, or the zips `images_background.zip` /
                  `images_evaluation.zip` read in place (other zips of that layout, such as
                  `images_background_small1.zip`, by naming them in `sets`). XXXX is the
                  character's global index (1-1623), YY the drawer (01-20); 105x105 1-bit PNGs.
  source="npz"    `images_background.npz` / `images_evaluation.npz`: `images` bool [characters,
                  20, 105, 105] (True = white background, as in the PNGs), `labels` int
                  [characters, 20] = the character's position; characters in global-index order.
  source="tfds"   TensorFlow Datasets `omniglot` (train = background, test = evaluation,
                  small1 / small2), from a prepared TFDS directory, or downloaded only with
                  `tfds_download=True`. TFDS keeps no drawer number, so the 20 drawings of a
                  character come in TFDS's record order instead of drawer order (the same set
                  of drawings; the episode sampler draws them at random either way).

Character order: the sets in the order given (background, then evaluation), and within a set
the characters by global index, which in the official release runs 1-964 through the
background set and 965-1623 through the evaluation set and keeps each alphabet contiguous. The
original enumerated `os.listdir` of one merged folder, an order that depends on the file
system; this order is the same on every machine. Drawings within a character: by drawer.

Preprocessing (`preprocess`), as the original's data: 105x105 -> 28x28, pixel = 1 - value/255
(strokes 1, background 0), float32. The original read the `omniglot_resized` PNGs made by
`im.resize((28, 28), resample=Image.LANCZOS)` on the 1-bit PNGs; Pillow resamples images of
mode "1" with NEAREST whatever filter is asked for, so those files hold a nearest-neighbour
subsample (output pixel i = input pixel floor((i + 0.5) * 105 / 28)) with values 0 and 255
only. resize_method="nearest" (the default) reproduces that exactly; it picks the same pixels
as `tf.image.resize(method="nearest")`. Any other `tf.image.resize` method (e.g. "lanczos3",
"area") resizes the stroke map with antialias=True and clips to [0, 1], the range uint8
images are saturated to.

Rotations: each character at 0/90/180/270 degrees is its own class, class id = 4 * character
position + rotation index (so a character's four classes are consecutive), 20 images each.
Rotation r is `np.rot90(image, r)` over (height, width): counter-clockwise on screen, the
direction of the original's `scipy.ndimage.rotate(image, 90 * r, reshape=False)`, which for
multiples of 90 degrees on a square image gives the same array up to spline round-off (below
1e-15 on 0/1 images; exactly equal with order=0).

Split: meta-train = the first 1200 characters (class ids 0-4799), meta-test = the remaining 423
(4800-6491). With the order above, meta-train holds the 964 background characters and the
first 236 evaluation characters. A source holding fewer characters (e.g. the small1 zip) gets
the same proportion, rounded down, stated in `info["split_note"]`.
"""

import dataclasses
import hashlib
import logging
import pathlib
import re
import zipfile
from typing import NamedTuple

import numpy as np

from common.data import cache as cachelib
from common.errors import DataNotFoundError

URL = "https://github.com/brendenlake/omniglot"
DOWNLOAD_HELP = (f"Download python/images_background.zip and python/images_evaluation.zip from "
                 f"{URL} (and put them, or their unzipped folders, in data_dir)")

BACKGROUND = "images_background"
EVALUATION = "images_evaluation"
DEFAULT_SETS = (BACKGROUND, EVALUATION)
SOURCES = ("files", "npz", "tfds")
IMAGE_SIZE = 105            # the release's drawings are 105x105
DRAWINGS_PER_CHARACTER = 20
# The official sets: number of characters and the global index of their first character.
OFFICIAL_SETS = {BACKGROUND: (964, 1), EVALUATION: (659, 965)}
TOTAL_CHARACTERS = 1623
REFERENCE_TRAIN_CHARACTERS = 1200   # test_classes_start in the original
ROTATIONS = (0, 90, 180, 270)
# TFDS split of each set; TFDS's `label` is the global index - 1.
TFDS_NAME = "omniglot"
TFDS_SPLITS = {BACKGROUND: "train", EVALUATION: "test",
               "images_background_small1": "small1", "images_background_small2": "small2"}
RESIZE_CHUNK = 4096         # images per tf.image.resize call: bounds the float32 buffer

# <Alphabet>/characterNN/XXXX_YY.png at the end of a path (zip member or file).
_PNG_PATH = re.compile(r"(?:^|/)(?P<alphabet>[^/]+)/(?P<character>character\d+)/"
                       r"(?P<index>\d+)_(?P<drawer>\d+)\.png$")


class Character(NamedTuple):
  """One character: global index (1-1623, 0 if the source does not say), names, its set."""

  index: int
  alphabet: str   # "" where the source keeps no names (npz)
  name: str       # "characterNN" within its alphabet, "" where unknown
  set: str


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class OmniglotRaw:
  """The drawings as released: bool [characters, drawings, 105, 105], True = background."""

  images: np.ndarray
  characters: tuple
  origin: str

  def __repr__(self):
    return f"OmniglotRaw({self.images.shape}, origin={self.origin!r})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Omniglot:
  """Class-major meta-train / meta-test images and what each class is.

  train_images[i] is class id i, test_images[j] is class id num_train_classes + j; class id
  = len(rotations) * character position + rotation index, character position indexing
  `characters`. Images are float32 [classes, drawings, size, size, 1], strokes 1.
  """

  train_images: np.ndarray
  test_images: np.ndarray
  characters: tuple
  num_train_characters: int
  rotations: tuple          # degrees, counter-clockwise, in rotation-index order
  info: dict

  @property
  def num_train_classes(self):
    return len(self.train_images)

  @property
  def num_test_classes(self):
    return len(self.test_images)

  def class_info(self, class_id):
    """(Character, rotation in degrees) of a class id."""
    if not 0 <= class_id < self.num_train_classes + self.num_test_classes:
      raise IndexError(f"class id {class_id} out of range 0-"
                       f"{self.num_train_classes + self.num_test_classes - 1}")
    position, r = divmod(int(class_id), len(self.rotations))
    return self.characters[position], self.rotations[r]

  def __repr__(self):
    return (f"Omniglot(source={self.info.get('source')}, train={self.train_images.shape}, "
            f"test={self.test_images.shape})")


# ---------------------------------------------------------------------------------------------
# Reading


def read_omniglot(source="npz", data_dir="", sets=DEFAULT_SETS, tfds_download=False):
  """The drawings of `sets` as an OmniglotRaw, characters in the order described above.

  Args:
    source: "files" (PNG folders or zips), "npz" or "tfds".
    data_dir: folder holding the sets (files, npz), or the TFDS data directory ("" = TFDS's
      default).
    sets: set names, read and concatenated in this order, e.g. ("images_background",
      "images_evaluation") or ("images_background_small1",).
    tfds_download: let source="tfds" download and prepare the dataset (needs network).
  """
  if source not in SOURCES:
    raise ValueError(f"Unknown Omniglot source {source!r}; valid choices: "
                     f"{', '.join(repr(s) for s in SOURCES)}")
  sets = _check_sets(sets)
  if source == "tfds":
    return _read_tfds(data_dir, sets, tfds_download)
  if not data_dir:
    raise DataNotFoundError(f"Omniglot source={source!r} needs data_dir, the folder holding "
                            f"{_expected(source, sets)}. {DOWNLOAD_HELP}.")
  root = pathlib.Path(data_dir).expanduser()
  if not root.is_dir():
    raise DataNotFoundError(f"data_dir {root} does not exist. Omniglot source={source!r} "
                            f"expects it to hold {_expected(source, sets)}. {DOWNLOAD_HELP}.")
  reader = _read_files_set if source == "files" else _read_npz_set
  located = [_locate(source, root, name) for name in sets]
  missing = [name for name, where in zip(sets, located) if where is None]
  if missing:
    raise DataNotFoundError(
        f"Omniglot source={source!r}: in {root}, found no {_expected(source, missing)}.\n"
        f"Expected layout: {_layout(source)}\n{DOWNLOAD_HELP}" +
        ("" if source == "npz" else ", or use source='npz' with the compact .npz files") + ".")
  parts = [reader(where, name) for name, where in zip(sets, located)]
  return _concatenate(parts, sets, ", ".join(str(where) for where in located), source)


def _check_sets(sets):
  if isinstance(sets, str):
    sets = (sets,)
  sets = tuple(sets)
  if not sets:
    raise ValueError("sets is empty: name at least one Omniglot set, e.g. "
                     f"{DEFAULT_SETS!r}")
  if len(set(sets)) != len(sets):
    raise ValueError(f"sets {sets!r} names a set twice")
  return sets


def _expected(source, sets):
  if source == "npz":
    return " and ".join(f"{name}.npz" for name in sets)
  return " and ".join(f"{name}/ (or {name}.zip)" for name in sets)


def _layout(source):
  if source == "npz":
    return ("<set>.npz with `images` bool [characters, 20, 105, 105] (True = background) and "
            "`labels` int [characters, 20]")
  return ("<set>/<Alphabet>/characterNN/XXXX_YY.png (105x105 PNG, XXXX = global character "
          "index, YY = drawer), or <set>.zip holding that folder")


def _locate(source, root, name):
  if source == "npz":
    path = root / f"{name}.npz"
    return path if path.is_file() else None
  folder = root / name
  if folder.is_dir():
    # Unzipping <set>.zip into a folder of the same name nests it once: read the inner one.
    inner = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(inner) == 1 and inner[0].name == name and inner[0].is_dir():
      folder = inner[0]
    return folder
  path = root / f"{name}.zip"
  return path if path.is_file() else None


def _concatenate(parts, sets, where, source):
  images = [p[0] for p in parts]
  shapes = {im.shape[1:] for im in images}
  if len(shapes) != 1:
    raise ValueError(f"the Omniglot sets {sets!r} hold different numbers of drawings per "
                     f"character or image sizes: {sorted(shapes)}")
  characters = tuple(c for p in parts for c in p[1])
  known = [c.index for c in characters if c.index]
  if len(set(known)) != len(known):
    raise ValueError(f"the Omniglot sets {sets!r} share characters (a global index occurs in "
                     f"two of them); read each character once")
  return OmniglotRaw(np.concatenate(images) if len(images) > 1 else images[0], characters,
                     f"Omniglot {source} {where}")


def _group_pngs(entries, where):
  """Characters (by global index) and their PNGs (by drawer) from (path, match) pairs."""
  by_index = {}
  for path, match in entries:
    index, drawer = int(match["index"]), int(match["drawer"])
    key = (match["alphabet"], match["character"])
    seen = by_index.setdefault(index, (key, {}))
    if seen[0] != key:
      raise ValueError(f"{where}: global index {index:04d} occurs in {seen[0][0]}/{seen[0][1]} "
                       f"and in {key[0]}/{key[1]}; not the Omniglot release layout")
    if drawer in seen[1]:
      raise ValueError(f"{where}: drawing {index:04d}_{drawer:02d} occurs twice")
    seen[1][drawer] = path
  if not by_index:
    raise DataNotFoundError(f"{where} holds no Omniglot PNGs; expected {_layout('files')}. "
                            f"{DOWNLOAD_HELP}.")
  counts = {len(drawers) for _, drawers in by_index.values()}
  if len(counts) != 1:
    short = min(by_index, key=lambda i: len(by_index[i][1]))
    raise ValueError(f"{where}: characters hold different numbers of drawings ({sorted(counts)}"
                     f"), e.g. {short:04d} holds {len(by_index[short][1])}; the set is "
                     f"incomplete, fetch it again")
  order = sorted(by_index)
  characters = [(i, by_index[i][0]) for i in order]
  paths = [by_index[i][1][d] for i in order for d in sorted(by_index[i][1])]
  return characters, paths, counts.pop()


def _read_files_set(where, name):
  if where.suffix == ".zip":
    try:
      with zipfile.ZipFile(where) as archive:
        entries = [(n, m) for n in archive.namelist()
                   if not n.startswith("__MACOSX/") and (m := _PNG_PATH.search(n))]
        characters, members, per = _group_pngs(entries, str(where))
        blobs = [archive.read(n) for n in members]
    except DataNotFoundError:
      raise
    except (zipfile.BadZipFile, EOFError, OSError) as e:
      raise ValueError(f"{where}: cannot read the zip ({e}); the download is probably "
                       f"incomplete, fetch it again") from e
  else:
    entries = [(p, m) for p in where.rglob("*.png")
               if (m := _PNG_PATH.search(p.relative_to(where).as_posix()))]
    characters, members, per = _group_pngs(entries, str(where))
    blobs = [p.read_bytes() for p in members]
  images = _decode_pngs(blobs, members).reshape(len(characters), per, IMAGE_SIZE, IMAGE_SIZE)
  return images, [Character(i, alphabet, char, name) for i, (alphabet, char) in characters]


def _decode_pngs(blobs, names):
  """bool [N, 105, 105] (True = white) from PNG bytes, decoded by tf.io.decode_png."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  def decode(blob):
    return tf.ensure_shape(tf.io.decode_png(blob, channels=1), (IMAGE_SIZE, IMAGE_SIZE, 1))

  out = np.empty((len(blobs), IMAGE_SIZE, IMAGE_SIZE), bool)
  dataset = tf.data.Dataset.from_tensor_slices(tf.constant(blobs, tf.string))
  dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  start = 0
  try:
    for batch in dataset.batch(512).as_numpy_iterator():
      out[start:start + len(batch)] = batch[..., 0] > 127
      start += len(batch)
  except tf.errors.InvalidArgumentError:
    # Find the offending file to name it (slow, but only on the error path).
    for blob, name in zip(blobs, names):
      try:
        shape = tuple(tf.io.decode_png(blob, channels=1).shape)
      except tf.errors.InvalidArgumentError as e:
        raise ValueError(f"{name}: cannot decode it as a PNG ({e.message}); the file is "
                         f"probably damaged, fetch it again") from None
      if shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"{name}: image is {shape[0]}x{shape[1]}, Omniglot drawings are "
                         f"{IMAGE_SIZE}x{IMAGE_SIZE}") from None
    raise
  return out


def _read_npz_set(path, name):
  try:
    with np.load(path, allow_pickle=False) as archive:
      arrays = {key: archive[key] for key in ("images", "labels") if key in archive.files}
      files = sorted(archive.files)
  except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
    raise ValueError(f"{path}: cannot read it as an .npz file ({e}); fetch it again") from e
  if len(arrays) != 2:
    raise ValueError(f"{path}: holds {files}, expected `images` and `labels` "
                     f"({_layout('npz')})")
  images, labels = arrays["images"], arrays["labels"]
  if images.dtype != bool or images.ndim != 4 or images.shape[2:] != (IMAGE_SIZE, IMAGE_SIZE):
    raise ValueError(f"{path}: `images` is {images.dtype} {images.shape}, expected bool "
                     f"[characters, drawings, {IMAGE_SIZE}, {IMAGE_SIZE}]")
  if labels.shape != images.shape[:2]:
    raise ValueError(f"{path}: `labels` is {labels.shape}, expected {images.shape[:2]}")
  if not np.array_equal(labels, np.broadcast_to(np.arange(len(labels))[:, None], labels.shape)):
    raise ValueError(f"{path}: `labels` are not the character positions 0..{len(labels) - 1} "
                     f"(one row per character); the file is not in the expected order")
  count, first = OFFICIAL_SETS.get(name, (None, None))
  if count == len(images):
    indices = range(first, first + count)
  else:
    # Not the complete official set: the file says nothing about which characters it holds.
    indices = [0] * len(images)
  return images, [Character(i, "", "", name) for i in indices]


def _default_names(names):
  return not names or tuple(names) == tuple(str(i) for i in range(len(names)))


def _read_tfds(data_dir, sets, download):
  unknown = [name for name in sets if name not in TFDS_SPLITS]
  if unknown:
    raise ValueError(f"Omniglot source='tfds' has no set {unknown[0]!r}; valid sets: "
                     f"{', '.join(repr(s) for s in TFDS_SPLITS)}")
  # Imported here: tensorflow_datasets takes seconds to import and only this source needs it.
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  from common.data import tfds_source  # pylint: disable=import-outside-toplevel
  builder = tfds_source.prepared_builder(
      TFDS_NAME, data_dir, download, hint=f"Or use source='files' / 'npz'. {DOWNLOAD_HELP}.")
  alphabet_names = builder.info.features["alphabet"].names
  if _default_names(alphabet_names):
    alphabet_names = None   # a builder without its metadata only numbers the alphabets
  parts = []
  for name in sets:
    split = TFDS_SPLITS[name]
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    labels, alphabets, char_ids, images = [], [], [], []
    for batch in tfds.as_numpy(dataset.batch(2048)):
      images.append(batch["image"][..., 0] > 127)
      labels.append(batch["label"])
      alphabets.append(batch["alphabet"])
      char_ids.append(batch["alphabet_char_id"])
    where = f"TFDS {TFDS_NAME} split {split!r} in {builder.data_dir}"
    if not images:
      raise DataNotFoundError(f"{where} is empty")
    images, labels = np.concatenate(images), np.concatenate(labels).astype(np.int64)
    alphabets, char_ids = np.concatenate(alphabets), np.concatenate(char_ids)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
      raise ValueError(f"{where}: images are {images.shape[1:]}, expected "
                       f"{IMAGE_SIZE}x{IMAGE_SIZE}")
    order = np.argsort(labels, kind="stable")   # by global index; record order within one
    unique, first, counts = np.unique(labels[order], return_index=True, return_counts=True)
    if len(set(counts.tolist())) != 1:
      raise ValueError(f"{where}: characters hold different numbers of drawings "
                       f"({sorted(set(counts.tolist()))})")
    characters = []
    for label, k in zip(unique, first):
      row = order[k]
      alphabet = alphabet_names[alphabets[row]] if alphabet_names else ""
      characters.append(Character(int(label) + 1, alphabet, f"character{char_ids[row] + 1:02d}",
                                  name))
    parts.append((images[order].reshape(len(unique), counts[0], IMAGE_SIZE, IMAGE_SIZE),
                  characters))
  return _concatenate(parts, sets, f"{TFDS_NAME} in {builder.data_dir}", "tfds")


# ---------------------------------------------------------------------------------------------
# Preprocessing


def _is_int(value):
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def nearest_indices(size_in, size_out):
  """Pillow's NEAREST source pixel of each output pixel: floor((i + 0.5) * size_in / size_out)."""
  return (2 * np.arange(size_out) + 1) * size_in // (2 * size_out)


def preprocess(raw_images, image_size=28, resize_method="nearest"):
  """float32 [..., image_size, image_size, 1] strokes (1 - value/255) from bool drawings.

  `raw_images` is bool [..., 105, 105] with True = white background. "nearest" is the exact
  subsample of the original's data (see the module docstring); any other tf.image.resize
  method resizes with antialias=True and clips to [0, 1]. image_size=105 keeps the drawings.
  """
  raw_images = np.asarray(raw_images)
  if raw_images.dtype != bool or raw_images.ndim < 2:
    raise ValueError(f"expected bool drawings [..., H, W], got {raw_images.dtype} "
                     f"{raw_images.shape}")
  size_in = raw_images.shape[-1]
  if raw_images.shape[-2] != size_in:
    raise ValueError(f"drawings must be square, got {raw_images.shape[-2:]}")
  if not _is_int(image_size) or image_size < 1:
    raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
  strokes = ~raw_images   # pixel = 1 - value/255 with value 255 on the background
  if image_size == size_in:
    return strokes.astype(np.float32)[..., None]
  if resize_method == "nearest":
    idx = nearest_indices(size_in, image_size)
    return strokes[..., idx, :][..., idx].astype(np.float32)[..., None]

  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  lead = raw_images.shape[:-2]
  flat = strokes.reshape((-1, size_in, size_in))
  out = np.empty((len(flat), image_size, image_size), np.float32)
  for start in range(0, len(flat), RESIZE_CHUNK):
    chunk = flat[start:start + RESIZE_CHUNK].astype(np.float32)[..., None]
    try:
      resized = tf.image.resize(chunk, (image_size, image_size), method=resize_method,
                                antialias=True)
    except ValueError as e:
      raise ValueError(f"resize_method {resize_method!r}: {e}; use 'nearest' (the original's "
                       f"data) or a tf.image.ResizeMethod such as 'lanczos3' or 'area'") from e
    out[start:start + len(chunk)] = np.clip(resized.numpy()[..., 0], 0.0, 1.0)
  return out.reshape(lead + (image_size, image_size, 1))


def rotation_classes(images, rotations=True):
  """Class-major images [C * R, ...] where class R * c + r is character c rotated by r * 90.

  `images` is [C, drawings, H, W, channels] with H == W. Rotation index r turns the drawings by
  np.rot90(., r) over (H, W), the direction of scipy.ndimage.rotate(image, 90 * r). With
  rotations=False the characters are the classes (R = 1).
  """
  images = np.asarray(images)
  if not rotations:
    return images
  if images.ndim != 5 or images.shape[2] != images.shape[3]:
    raise ValueError(f"expected square images [characters, drawings, H, W, channels], got "
                     f"{images.shape}")
  out = np.empty((len(images), len(ROTATIONS)) + images.shape[1:], images.dtype)
  for r in range(len(ROTATIONS)):
    out[:, r] = np.rot90(images, r, axes=(2, 3))
  return out.reshape((-1,) + images.shape[1:])


def split_characters(total, num_train_characters=None):
  """(meta-train character count, note) under the reference's first-1200 rule.

  None: 1200 of the release's 1623, the same proportion (rounded down) of a smaller source.
  An integer: that many, as given.
  """
  if num_train_characters is None:
    if total >= TOTAL_CHARACTERS:
      n = REFERENCE_TRAIN_CHARACTERS
      note = (f"meta-train = the first {n} of {total} characters, as the reference "
              f"(test_classes_start = 1200)")
    else:
      n = total * REFERENCE_TRAIN_CHARACTERS // TOTAL_CHARACTERS
      note = (f"the source holds {total} characters, fewer than the release's "
              f"{TOTAL_CHARACTERS}: meta-train = the first {n} (the reference's 1200/1623, "
              f"rounded down), meta-test = the other {total - n}")
  else:
    if not _is_int(num_train_characters):
      raise ValueError(f"num_train_characters must be an integer or None, got "
                       f"{num_train_characters!r}")
    n = int(num_train_characters)
    note = f"meta-train = the first {n} of {total} characters (num_train_characters)"
  if not 0 < n < total:
    raise ValueError(f"the Omniglot split would leave meta-"
                     f"{'train' if n <= 0 else 'test'} empty: {note}. Load more characters or "
                     f"pass num_train_characters between 1 and {total - 1}.")
  return n, note


# ---------------------------------------------------------------------------------------------
# Loading


def load_omniglot(source="npz", data_dir="", image_size=28, rotations=True,
                  num_train_characters=None, sets=DEFAULT_SETS, tfds_download=False,
                  resize_method="nearest", cache_dir=None):
  """Meta-train and meta-test classes of Omniglot, preprocessed as the reference (§7.2).

  Args:
    source: "files", "npz" or "tfds" (module docstring).
    data_dir: folder of the PNG folders / zips / npz files, or the TFDS data directory.
    image_size: side of the resized images (28 in the reference).
    rotations: each character at 0/90/180/270 degrees is its own class (the reference).
    num_train_characters: meta-train characters; None = the reference's 1200 of 1623, the
      same proportion of a smaller source.
    sets: the sets to read, in order (default background then evaluation).
    tfds_download: let source="tfds" download and prepare the dataset (needs network).
    resize_method: "nearest" (the original's data) or a tf.image.resize method.
    cache_dir: if given, the resized drawings are kept there in an .npz keyed by source, sets,
      size and method (and checked against the source files' sizes and times), so later loads
      skip decoding and resizing.
  Returns:
    An Omniglot.
  """
  sets = _check_sets(sets)
  cache_path = stamp = None
  cached = None
  if cache_dir:
    cache_path, stamp = _cache_entry(cache_dir, source, data_dir, sets, image_size,
                                     resize_method)
    cached = _read_cache(cache_path, stamp)
  if cached is not None:
    images, characters, origin = cached
  else:
    raw = read_omniglot(source, data_dir, sets, tfds_download)
    images = preprocess(raw.images, image_size, resize_method)
    characters, origin = raw.characters, raw.origin
    if cache_path is not None:
      _write_cache(cache_path, stamp, images, characters, origin)
  n_train, split_note = split_characters(len(characters), num_train_characters)
  per_class = images.shape[1]
  angles = ROTATIONS if rotations else (0,)
  train = rotation_classes(images[:n_train], rotations)
  test = rotation_classes(images[n_train:], rotations)
  info = {
      "dataset": "omniglot",
      "source": source,
      "origin": origin,
      "sets": list(sets),
      "num_characters": len(characters),
      "num_train_characters": n_train,
      "num_test_characters": len(characters) - n_train,
      "num_train_classes": len(train),
      "num_test_classes": len(test),
      "images_per_class": int(per_class),
      "image_size": int(image_size),
      "resize_method": resize_method,
      "rotations": list(angles),
      "pixel_range": [0.0, 1.0],
      "split_note": split_note,
      "character_order": "sets in the order given, characters by global index",
      "cache": str(cache_path) if cache_path is not None else None,
      "cache_hit": cached is not None,
  }
  return Omniglot(train, test, tuple(characters), n_train, angles, info)


def _source_files(source, data_dir, sets):
  """The files a load reads, for the cache stamp (TFDS: its prepared folder)."""
  if source == "tfds":
    return [pathlib.Path(data_dir).expanduser() / TFDS_NAME] if data_dir else []
  root = pathlib.Path(data_dir).expanduser()
  files = []
  for name in sets:
    where = _locate(source, root, name) if root.is_dir() else None
    if where is None:
      continue
    files += sorted(where.rglob("*.png")) if where.is_dir() else [where]
  return files


def _cache_entry(cache_dir, source, data_dir, sets, image_size, resize_method):
  root = str(pathlib.Path(data_dir).expanduser().resolve()) if data_dir else ""
  key = f"{source}|{root}|{','.join(sets)}|{image_size}|{resize_method}"
  digest = hashlib.sha256(key.encode()).hexdigest()[:12]
  path = pathlib.Path(cache_dir).expanduser() / (
      f"omniglot_{source}_{image_size}_{resize_method}_{digest}.npz")
  return path, cachelib.file_stamp(key, _source_files(source, data_dir, sets))


def _read_cache(path, stamp):
  entry = cachelib.read(path, "Omniglot cache")
  if entry is None:
    return None
  if entry.meta.get("stamp") != stamp:
    logging.info("Omniglot cache %s is stale (the source files changed); rebuilding", path)
    return None
  a = entry.arrays
  try:
    characters = tuple(Character(int(i), str(al), str(n), str(st)) for i, al, n, st in zip(
        a["index"], a["alphabet"], a["name"], a["set"]))
    images = a["images"]
  except KeyError as e:
    logging.warning("Omniglot cache %s lacks %s; rebuilding it", path, e)
    return None
  return images, characters, f"{entry.meta.get('origin')} (cached in {path})"


def _write_cache(path, stamp, images, characters, origin):
  cachelib.write(path, {"stamp": stamp, "origin": origin}, {
      "images": images, "index": np.array([c.index for c in characters], np.int64),
      "alphabet": np.array([c.alphabet for c in characters], str),
      "name": np.array([c.name for c in characters], str),
      "set": np.array([c.set for c in characters], str)}, "Omniglot cache")
