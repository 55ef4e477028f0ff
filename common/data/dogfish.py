"""The dog/fish images of Koh & Liang (2017), as used by clean-label poisoning attacks.

The published file `dataset_dog-fish_train-900_test-300.npz` holds `X_train`, `Y_train`,
`X_test` and `Y_test`: 900 training and 300 test ImageNet images of dogs (label 0) and fish
(label 1), 299 x 299 x 3, already put through the Inception preprocessing (values in [-1, 1]),
so they go to an InceptionV3 feature extractor as they are.

    data = load_dogfish("~/data/dogfish")   # the folder holding the .npz, or the file itself
    data.x_train.shape                      # (900, 299, 299, 3), float32
"""

import dataclasses
import os
import pathlib
import zipfile

import numpy as np

from common.errors import DataNotFoundError

FILE_NAME = "dataset_dog-fish_train-900_test-300.npz"
URL = ("https://worksheets.codalab.org/rest/bundles/0x550cd344825049bdbb865b887381823c/"
       "contents/blob/dataset_dog-fish_train-900_test-300.npz")
_KEYS = ("X_train", "Y_train", "X_test", "Y_test")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class DogFish:
  """Train and test arrays: x float32 [N, H, W, 3], y int64 in {0, 1}, plus a json-able info."""

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  info: dict

  def __repr__(self):
    # The default dataclass repr would print the pixels.
    return (f"DogFish(train={self.x_train.shape}, test={self.x_test.shape}, "
            f"path={self.info.get('path')})")


def _resolve_path(path):
  """The .npz file that `path` (the file itself or the folder holding it) stands for."""
  path = pathlib.Path(os.fspath(path)).expanduser()
  if path.is_dir():
    return path / FILE_NAME
  if path.exists() or path.suffix == ".npz":
    return path
  # Neither an existing file nor something named like one: most likely a folder not yet made.
  return path / FILE_NAME


def _images(x, key, path):
  if x.ndim != 4 or x.shape[-1] != 3:
    raise ValueError(f"{path}: {key} should hold RGB images [N, H, W, 3], found an array of "
                     f"shape {x.shape}")
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
    raise ValueError(f"{path}: {key} should hold numbers, found dtype {x.dtype}")
  # asarray returns the array itself when it is already float32: the full training set is
  # about 1 GB and must not be copied for nothing.
  return np.asarray(x, dtype=np.float32)


def _labels(y, key, path):
  """int64 [N] class ids from ids [N] (or [N, 1]) or one-hot rows [N, 2]."""
  if y.ndim == 2 and y.shape[1] == 2:
    # One-hot: argmax alone would turn any garbage row into a label, so check the rows first.
    if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
      raise ValueError(f"{path}: {key} has shape {y.shape} but its rows are not one-hot "
                       "(one 1 and one 0 each)")
    return np.argmax(y, axis=1).astype(np.int64)
  if y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  if y.ndim != 1:
    raise ValueError(f"{path}: {key} should hold class ids [N] or one-hot rows [N, 2], found "
                     f"an array of shape {y.shape}")
  if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)
          or y.dtype == np.bool_):
    raise ValueError(f"{path}: {key} should hold class ids, found dtype {y.dtype}")
  bad = ~np.isin(y, (0, 1))
  if bad.any():
    found = np.unique(y[bad])[:5]
    raise ValueError(f"{path}: {key} should hold labels in {{0, 1}} (dog, fish), found "
                     f"{', '.join(str(v) for v in found)} ({int(bad.sum())} labels in all)")
  return y.astype(np.int64)


def _read_arrays(file):
  """The four arrays of `file`, or ValueError saying why they cannot be read."""
  try:
    archive = np.load(file, allow_pickle=False)
  except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
    # numpy says ValueError for a file that is no numpy format at all, OSError or BadZipFile
    # for a truncated archive.
    raise ValueError(f"{file}: cannot read it as an .npz archive ({e}); the download is "
                     f"probably incomplete, fetch it again from {URL}") from e
  if not isinstance(archive, np.lib.npyio.NpzFile):
    raise ValueError(f"{file}: holds a single array, not an .npz archive of "
                     f"{', '.join(_KEYS)}")
  with archive:
    missing = [k for k in _KEYS if k not in archive.files]
    if missing:
      raise ValueError(f"{file}: missing arrays {', '.join(missing)}; expected "
                       f"{', '.join(_KEYS)}, found {', '.join(sorted(archive.files)) or 'none'}")
    try:
      return {k: archive[k] for k in _KEYS}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
      # ValueError: an object array, which allow_pickle=False refuses to unpickle.
      raise ValueError(f"{file}: cannot read the dog/fish arrays ({e}); fetch the file again "
                       f"from {URL}") from e


def load_dogfish(path):
  """The dog/fish train and test sets as a `DogFish`.

  Args:
    path: the .npz file, or the folder holding `FILE_NAME`.

  Returns:
    DogFish with x float32 as stored (Inception-preprocessed) and y int64 in {0, 1}.

  Raises:
    DataNotFoundError: the file is not there; the message says where it was expected and
      where to download it.
    ValueError: the file is there but does not hold the dog/fish arrays.
  """
  file = _resolve_path(path)
  if not file.is_file():
    raise DataNotFoundError(
        f"dog/fish data not found: expected {file}. Download {FILE_NAME} from {URL} into a "
        f"folder and set --config.data_dir=<that folder> (or the path of the file itself).")
  arrays = _read_arrays(file)

  parts = {}
  for split in ("train", "test"):
    x = _images(arrays[f"X_{split}"], f"X_{split}", file)
    y = _labels(arrays[f"Y_{split}"], f"Y_{split}", file)
    if len(x) != len(y):
      raise ValueError(f"{file}: X_{split} holds {len(x)} images but Y_{split} {len(y)} labels")
    if len(x) == 0:
      raise ValueError(f"{file}: X_{split} holds no images")
    parts[split] = (x, y)
  (x_train, y_train), (x_test, y_test) = parts["train"], parts["test"]
  if x_train.shape[1:] != x_test.shape[1:]:
    raise ValueError(f"{file}: train images are {x_train.shape[1:]} but test images "
                     f"{x_test.shape[1:]}; both sets must have the same image shape")
  info = {
      "path": str(file),
      "num_train": int(len(x_train)),
      "num_test": int(len(x_test)),
      "image_shape": [int(d) for d in x_train.shape[1:]],
      "pixel_range": [float(x_train.min()), float(x_train.max())],
  }
  return DogFish(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, info=info)


__all__ = ["DogFish", "FILE_NAME", "URL", "load_dogfish"]
