"""The CIFAR python pickles, shared by CIFAR-10 and CIFAR-100, and the CIFAR-100 loader.

Both datasets are published as pickled dicts with bytes keys (b'data' uint8 [N, 3072], each row
the red, green and blue 32x32 planes in turn) in a folder distributed as a .tar.gz. The
readers here unpickle with encoding='bytes' and index with bytes keys: the Learning to Reweight
generator indexed the CIFAR-100 dicts with str keys, which fails under Python 3.
"""

import pathlib
import pickle
import tarfile

import numpy as np

from common.data.splits import Pools
from common.errors import DataNotFoundError

IMAGE_SHAPE = (32, 32, 3)

CIFAR100_DIR = "cifar-100-python"
CIFAR100_TRAIN = "train"
CIFAR100_TEST = "test"
CIFAR100_META = "meta"
CIFAR100_TARBALL = "cifar-100-python.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
# The fine label names of the `meta` pickle, in label-id order (alphabetical). Used when `meta`
# is absent and for TFDS builders without their metadata, so that ids mean the same everywhere.
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab",
    "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl",
    "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard",
    "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree",
    "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain",
    "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose",
    "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm")


# ---------------------------------------------------------------------------------------------
# Shared by both datasets


def unpickle(raw, keys, where, what):
  """The values of the bytes `keys` in the pickled dict `raw`; a clear error if it is not one."""
  try:
    record = pickle.loads(raw, encoding="bytes")
    return [record[key] for key in keys]
  except (pickle.UnpicklingError, EOFError, KeyError, TypeError) as e:
    wanted = " and ".join(repr(key) for key in keys)
    raise ValueError(f"{where}: not {what} (expected a pickled dict with {wanted}): "
                     f"{e!r}") from e


def rows_to_images(data, labels, num_classes, where):
  """uint8 images [N, 32, 32, 3] (HWC) and int64 labels [N] from the pickles' CHW rows."""
  data = np.asarray(data)
  labels = np.asarray(labels, dtype=np.int64)
  if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
    raise ValueError(f"{where}: b'data' is {data.dtype} {data.shape}, expected uint8 [N, 3072]")
  if len(labels) != len(data):
    raise ValueError(f"{where}: {len(data)} images but {len(labels)} labels")
  if labels.size and (labels.min() < 0 or labels.max() > num_classes - 1):
    raise ValueError(f"{where}: labels outside 0-{num_classes - 1}")
  # Each row is the red plane, then green, then blue (CHW); the library works in NHWC.
  return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def decode_names(names, expected, where, what):
  """Class names from a meta pickle's bytes list, checked to number `expected`."""
  try:
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
  except (TypeError, UnicodeDecodeError) as e:
    raise ValueError(f"{where}: not {what}: {e!r}") from e
  if len(names) != expected:
    raise ValueError(f"{where}: {len(names)} label names, expected {expected}")
  return names


def read_folder(folder, required, optional, what, url):
  """`read(name)` over the pickles in `folder`: a file's bytes, or None for an absent optional.

  All the `required` files are checked first, so that one error names every missing file.
  """
  missing = [name for name in required if not (folder / name).is_file()]
  if missing:
    listed = "\n".join(f"  {folder / name}" for name in missing)
    raise DataNotFoundError(f"{what} python pickles incomplete in {folder}; missing:\n"
                            f"{listed}\nDownload {url} and unpack it (tar xzf), or use "
                            f"source='tfds'.")

  def read(name):
    path = folder / name
    if name in optional and not path.is_file():
      return None
    return path.read_bytes()

  return read


def read_tarball(path, inner_dir, optional, parse, what, url):
  """`parse(read, where)` with `read(name)` reading `inner_dir/name` out of the .tar.gz `path`.

  The archive is read without unpacking it; `read` returns None for an absent optional member.
  """
  try:
    with tarfile.open(path, "r:gz") as tar:
      members = {m.name: m for m in tar.getmembers() if m.isfile()}

      def read(name):
        member = members.get(f"{inner_dir}/{name}")
        if member is None:
          if name in optional:
            return None
          raise DataNotFoundError(f"{path} holds no {inner_dir}/{name}; it is not the "
                                  f"{what} python archive ({url}) or it is incomplete")
        return tar.extractfile(member).read()

      return parse(read, f"{path}:{inner_dir}")
  except DataNotFoundError:
    raise
  except (tarfile.TarError, EOFError, OSError) as e:
    raise ValueError(f"{path}: cannot read the archive ({e}); the download is probably "
                     f"incomplete, fetch it again") from e


# ---------------------------------------------------------------------------------------------
# CIFAR-100


def load_cifar100_files(data_dir):
  """Pools of CIFAR-100 (fine labels, 100 classes) from `data_dir`; (pools, class_names, origin).

  Reads the pickles `train` and `test` (and `meta` for the class names when present) in
  `data_dir/cifar-100-python/` or in `data_dir` itself, else the downloaded
  `cifar-100-python.tar.gz` without unpacking it. The training pickle is already class-mixed,
  so it is kept in file order like the CIFAR-10 pickles (only class-ordered sources get the
  fixed permutation). The pickles are trusted like any downloaded code: load only files you
  fetched.
  """
  root = pathlib.Path(data_dir).expanduser()
  for folder in (root / CIFAR100_DIR, root):
    if any((folder / name).is_file() for name in (CIFAR100_TRAIN, CIFAR100_TEST)):
      read = read_folder(folder, (CIFAR100_TRAIN, CIFAR100_TEST), (CIFAR100_META,), "CIFAR-100",
                         CIFAR100_URL)
      pools, names = _cifar100_pools(read, str(folder))
      return pools, names, f"CIFAR-100 python pickles in {folder}"
  if (root / CIFAR100_TARBALL).is_file():
    pools, names = read_tarball(root / CIFAR100_TARBALL, CIFAR100_DIR, (CIFAR100_META,),
                                _cifar100_pools, "CIFAR-100", CIFAR100_URL)
    return pools, names, f"CIFAR-100 python archive {root / CIFAR100_TARBALL}"
  raise DataNotFoundError(
      f"CIFAR-100 source='files' found no data in {root}. Expected either\n"
      f"  the python pickles {root / CIFAR100_DIR}/{{{CIFAR100_TRAIN},{CIFAR100_TEST}}} (and "
      f"{CIFAR100_META} for the class names),\n"
      f"  or the same files directly in {root}, or\n"
      f"  the archive {root / CIFAR100_TARBALL} itself.\n"
      f"Download the pickles from {CIFAR100_URL}, or use source='tfds' (downloads when online).")


def _cifar100_pools(read, where):
  """`read(name)` returns a file's bytes (None for the optional meta when it is absent)."""
  parts = []
  for name in (CIFAR100_TRAIN, CIFAR100_TEST):
    data, labels = unpickle(read(name), (b"data", b"fine_labels"), f"{where}/{name}",
                            "a CIFAR-100 python pickle")
    parts += rows_to_images(data, labels, 100, f"{where}/{name}")
  meta = read(CIFAR100_META)
  names = CIFAR100_CLASSES
  if meta is not None:
    where_meta = f"{where}/{CIFAR100_META}"
    what = "a CIFAR-100 meta pickle"
    (raw_names,) = unpickle(meta, (b"fine_label_names",), where_meta, what)
    names = decode_names(raw_names, 100, where_meta, what)
  return Pools(*parts), names
