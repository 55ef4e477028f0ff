"""SVHN (cropped digits, without `extra`) preprocessed as in the original pre_process_svhn_data.py.

penalty.md §6.5: transpose to N x 32 x 32 x 3, label 10 -> 0, hold out 100 random images per
class of the training file as validation, greyscale 0.2989 R + 0.5870 G + 0.1140 B as float32
left on the 0-255 scale (the published learning rates assume that scale; `svhn_rescale` in
`data.load` divides by 255). The grey arrays are cached in `data_dir` as
SVHN_single_grey_without_extra.h5, the original's file name.

The original test scripts (test_bilevel_importance_learning_svhn.py, ApproxGrad's
test_bilevel_approxgrad.py) then cut the 72257 training images to a multiple of their batch size
before corrupting any label: ``pts = int(len(X_train)/batch_size); X_train =
X_train[:pts*batch_size]``, i.e. the first 72200 (penalty.md §6.5). `data.load`'s default SVHN
split does the same (the first floor(n / 200) * 200 of whatever the source holds, so the label
noise then flips the first floor(noise * 72200) of them); split="untrimmed" keeps all 72257.
The cache holds the untrimmed arrays: the split rule cuts them.
"""

import json
import logging
import pathlib

import numpy as np

from common.data import cache as cachelib
from common.data.splits import Pools
from common.errors import DataNotFoundError

CLASS_NAMES = tuple(str(d) for d in range(10))
IMAGE_SHAPE = (32, 32, 1)
TRAIN_FILE = "train_32x32.mat"
TEST_FILE = "test_32x32.mat"
FILES = (TRAIN_FILE, TEST_FILE)
URLS = tuple(f"http://ufldl.stanford.edu/housenumbers/{name}" for name in FILES)
CACHE_FILE = "SVHN_single_grey_without_extra.h5"
# Marks a cache written by this module, as opposed to the original script's file of the same
# name (one-hot labels, unknown validation seed), which is read but never overwritten.
CACHE_FORMAT = "common.data.svhn/1"
GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)
VAL_PER_CLASS = 100
# The default split keeps a multiple of this many training images: the original scripts'
# batch size, to which they cut the training set (72257 -> 72200).
TRAIN_MULTIPLE = 200
_ARRAYS = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")


def to_grey(x):
  """float32 [N, 32, 32, 1] grey values on the 0-255 scale from uint8 RGB [N, 32, 32, 3]."""
  out = np.empty(x.shape[:-1] + (1,), dtype=np.float32)
  # The weighted sum is taken in float64 like numpy's dot in the original, then stored as
  # float32; chunks keep the float64 temporary small (the full train set would need 1.8 GB).
  weights = np.asarray(GREY_WEIGHTS, dtype=np.float64)
  for start in range(0, len(x), 8192):
    out[start:start + 8192, ..., 0] = x[start:start + 8192] @ weights
  return out


def hold_out_per_class(y, seed, per_class=VAL_PER_CLASS, num_classes=10):
  """Indices (sorted) of `per_class` random images of each class, drawn with `seed`.

  A class with fewer than 2 * per_class images gives half of them, so that a tiny source
  (a test file, mock data) still leaves images of every class for training.
  """
  rng = np.random.default_rng(seed)
  chosen = []
  for c in range(num_classes):
    members = np.flatnonzero(y == c)
    chosen.append(rng.choice(members, size=min(per_class, len(members) // 2), replace=False))
  # Sorted: the validation set keeps the training file's (class-mixed) order.
  return np.sort(np.concatenate(chosen))


def preprocess(x_train, y_train, x_test, y_test, val_seed):
  """Pools (grey, 0-255) from uint8 RGB NHWC arrays with labels already in 0-9."""
  val = hold_out_per_class(y_train, val_seed)
  keep = np.ones(len(y_train), dtype=bool)
  keep[val] = False
  return Pools(x_train=to_grey(x_train[keep]), y_train=y_train[keep].astype(np.int64),
               x_test=to_grey(x_test), y_test=y_test.astype(np.int64),
               x_val=to_grey(x_train[val]), y_val=y_train[val].astype(np.int64))


def read_mat(path):
  """uint8 images [N, 32, 32, 3] and int64 labels [N] (10 -> 0) from an SVHN .mat file."""
  import scipy.io  # pylint: disable=import-outside-toplevel
  try:
    mat = scipy.io.loadmat(path, variable_names=("X", "y"))
  except (ValueError, NotImplementedError, OSError) as e:
    raise ValueError(f"{path}: cannot read it as a MATLAB file ({e}); the download is "
                     f"probably incomplete, fetch it again from "
                     f"http://ufldl.stanford.edu/housenumbers/") from e
  if "X" not in mat or "y" not in mat:
    raise ValueError(f"{path}: expected variables 'X' and 'y', found {sorted(mat)}")
  x, y = mat["X"], mat["y"].reshape(-1)
  if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
    raise ValueError(f"{path}: 'X' is {x.dtype} {x.shape}, expected uint8 [32, 32, 3, N]")
  if len(y) != x.shape[3]:
    raise ValueError(f"{path}: {x.shape[3]} images but {len(y)} labels")
  y = y.astype(np.int64)
  if y.size and (y.min() < 0 or y.max() > 10):
    raise ValueError(f"{path}: labels outside 0-10 (SVHN stores digit 0 as 10)")
  y[y == 10] = 0
  return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), y


def _signature(paths):
  # Size and modification time of the .mat files: a cache built from other files is rebuilt.
  return json.dumps([[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in paths])


def _read_cache(path, val_seed, signature):
  """Pools from our cache, or None (with the reason) when it cannot be used."""
  entry = cachelib.read(path, "SVHN cache", _ARRAYS)
  if entry is None:
    return None, "unreadable"
  if entry.meta.get("format") != CACHE_FORMAT:
    return None, "foreign"
  if int(entry.meta["val_seed"]) != val_seed:
    return None, f"built with svhn_val_seed={int(entry.meta['val_seed'])}"
  if signature is not None and entry.meta.get("source_files") != signature:
    return None, "built from different .mat files"
  a = entry.arrays
  return Pools(a["X_train"], a["y_train"], a["X_test"], a["y_test"], a["X_val"], a["y_val"]), "ok"


def _read_original_h5(path):
  """Pools from the original script's grey h5 (one-hot labels), used when no .mat is present."""
  import h5py  # pylint: disable=import-outside-toplevel
  arrays = {}
  try:
    with h5py.File(path, "r") as f:
      for name in _ARRAYS:
        arrays[name] = f[name][()]
  except (OSError, KeyError) as e:
    raise ValueError(f"{path}: neither a cache written by this library nor the original "
                     f"pre_process_svhn_data.py output ({e})") from e
  for name in ("X_train", "X_val", "X_test"):
    x = arrays[name].astype(np.float32)
    arrays[name] = x[..., None] if x.ndim == 3 else x
  for name in ("y_train", "y_val", "y_test"):
    y = arrays[name]
    arrays[name] = (np.argmax(y, axis=1) if y.ndim == 2 else y.reshape(-1)).astype(np.int64)
  return Pools(arrays["X_train"], arrays["y_train"], arrays["X_test"], arrays["y_test"],
               arrays["X_val"], arrays["y_val"])


def _write_cache(path, pools, val_seed, signature):
  """Write the cache atomically; a folder we cannot write to only costs the speed-up."""
  cachelib.write(path, {"format": CACHE_FORMAT, "val_seed": val_seed,
                        "source_files": signature},
                 dict(zip(_ARRAYS, (pools.x_train, pools.y_train, pools.x_val, pools.y_val,
                                    pools.x_test, pools.y_test))), "SVHN cache")


def missing_message(root, missing):
  listed = "\n".join(f"  {root / name}  (from http://ufldl.stanford.edu/housenumbers/{name})"
                     for name in missing)
  return (f"SVHN source='files' needs the cropped-digit .mat files; missing:\n{listed}\n"
          f"(or a cache {root / CACHE_FILE} built from them earlier). Download them, or use "
          f"source='tfds' (downloads when online).")


def load_files(data_dir, val_seed):
  """Pools from `data_dir` (the .mat files, or the cache built from them); (pools, origin)."""
  root = pathlib.Path(data_dir).expanduser()
  mats = [root / name for name in FILES]
  have_mats = all(p.is_file() for p in mats)
  signature = _signature(mats) if have_mats else None
  cache = root / CACHE_FILE
  reason = "absent"
  if cache.is_file():
    pools, reason = _read_cache(cache, val_seed, signature)
    if pools is not None:
      return pools, f"SVHN cache {cache} (svhn_val_seed={val_seed})"
  if not have_mats:
    if reason == "foreign":
      logging.warning("Reading %s written by the original pre_process_svhn_data.py: its "
                      "validation images were drawn by that script, svhn_val_seed is ignored",
                      cache)
      return _read_original_h5(cache), f"original preprocessed file {cache}"
    missing = [p.name for p in mats if not p.is_file()]
    message = missing_message(root, missing)
    if reason.startswith("built with"):
      message += (f"\nThe cache {cache} exists but was {reason}; pass that seed or provide the "
                  f".mat files to rebuild it.")
    raise DataNotFoundError(message)
  x_train, y_train = read_mat(mats[0])
  x_test, y_test = read_mat(mats[1])
  pools = preprocess(x_train, y_train, x_test, y_test, val_seed)
  if reason == "foreign":
    logging.warning("Not overwriting %s: it was not written by this library (the original "
                    "script's output?); SVHN is preprocessed from the .mat files each time",
                    cache)
  else:
    _write_cache(cache, pools, val_seed, signature)
  return pools, f"SVHN .mat files in {root}"
