"""Source-stamped array caches: arrays prepared once from slow sources, kept beside metadata that
says what they were built from, so a changed source (or setting) rebuilds them.

One cache file holds named arrays and a small metadata dict (JSON-able scalars) in one of two
formats, chosen by the file's suffix:

  .npz  numpy archive; the metadata as the JSON string ``__meta__``
  .h5   HDF5 datasets (text arrays as UTF-8 bytes); the metadata as attributes of the root
        group

  meta = {"stamp": cache.file_stamp("omniglot|...", files)}
  entry = cache.read(path, "Omniglot cache")
  if entry is not None and entry.meta.get("stamp") == meta["stamp"]:
    arrays = entry.arrays
  else:
    arrays = build()
    cache.write(path, meta, arrays, "Omniglot cache")

``read`` returns None for a missing or unreadable file (a warning says why); ``write`` replaces
the file atomically (a reader sees the old file or the whole new one) and, where the folder
cannot be written, warns and carries on: a cache only ever costs or saves time. The users:
the Omniglot loader (resized drawings), the SVHN loader (grey pools) and the clean-label
poisoning features.
"""

import dataclasses
import hashlib
import json
import logging
import pathlib
import zipfile

import numpy as np

from common import records

_META = "__meta__"


@dataclasses.dataclass
class Entry:
  meta: dict
  arrays: dict


def file_stamp(key, files):
  """``key`` joined with a digest of the name, size and modification time of every one of
  ``files`` that exists: a source file replaced or touched changes the stamp."""
  digest = hashlib.sha256()
  for f in files:
    f = pathlib.Path(f)
    if f.exists():
      s = f.stat()
      digest.update(f"{f}|{s.st_size}|{s.st_mtime_ns}\n".encode())
  return f"{key}|{digest.hexdigest()}"


def read(path, what="cache", names=None):
  """The cache at ``path`` (only the arrays ``names`` when given), or None when it is absent or
  unreadable."""
  path = pathlib.Path(path)
  if not path.is_file():
    return None
  try:
    if path.suffix == ".h5":
      import h5py  # pylint: disable=import-outside-toplevel
      with h5py.File(path, "r") as f:
        meta = {k: _plain(v) for k, v in f.attrs.items()}
        arrays = {k: _text(f[k][()]) for k in (names or list(f.keys()))}
    else:
      with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive[_META])) if _META in archive.files else {}
        arrays = {k: archive[k] for k in (names or archive.files) if k != _META}
  except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
    logging.warning("%s %s is unreadable (%s); rebuilding it", what, path, e)
    return None
  return Entry(meta, arrays)


def write(path, meta, arrays, what="cache"):
  """Write ``arrays`` and ``meta`` to ``path`` atomically; True when written."""
  path = pathlib.Path(path)
  try:
    if path.suffix == ".h5":
      import h5py  # pylint: disable=import-outside-toplevel
      with records.atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, array in arrays.items():
          array = np.asarray(array)
          # HDF5 has no fixed-width unicode type: text is kept as UTF-8 bytes.
          f.create_dataset(name, data=np.char.encode(array, "utf-8")
                           if array.dtype.kind == "U" else array)
        for k, v in meta.items():
          f.attrs[k] = v
    else:
      records.save_npz(path, **{_META: np.array(json.dumps(meta))}, **arrays)
  except OSError as e:
    logging.warning("Could not write the %s %s (%s); continuing without it (the source is "
                    "read again next time)", what, path, e)
    return False
  return True


def _text(array):
  """HDF5 byte strings back to text (the writer encodes text arrays as UTF-8)."""
  return np.char.decode(array, "utf-8") if getattr(array, "dtype", None) is not None and \
      array.dtype.kind == "S" else array


def _plain(value):
  """An HDF5 attribute as a Python scalar."""
  if isinstance(value, bytes):
    return value.decode()
  if isinstance(value, np.generic):
    return value.item()
  return value
