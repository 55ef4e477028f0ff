"""Your own labelled data: an image folder, an ``.npz`` or a CSV, plus a trusted subset.

Sources (the format is read from the path):

  folder   one sub-folder per class, images inside (png, jpg, bmp, gif, webp); the id of an
           image is its path relative to the folder ("cat/0001.jpg")
  .npz     arrays ``x`` (images [N, H, W, C] or features [N, D]) and ``y`` (integer class ids),
           optionally ``ids`` (one string per row; default: the row number) and
           ``class_names``
  .csv     a header line, feature columns and one label column (``label_column``); the id is
           ``id_column`` if given, else the row number (0 = the first row after the header).
           Labels may be integers (class ids) or any strings (class names, sorted)

The trusted subset (the clean data the methods learn from): ``trusted``, a second folder / file
of the same format, or ``trusted_ids``, a text file of ids from ``train`` (one per line; blank
lines and lines starting with # are skipped), which are then taken out of the training pool.
The test set: ``test`` (same format) or, without it, ``test_fraction`` of the training pool
held out (its labels are then as given: noisy if the data is).

Every mistake (a missing path, mixed image sizes, an empty class folder, labels outside the
classes, trusted ids that do not exist, a malformed row) is a one-line DataError or
DataNotFoundError raised while loading, before a run writes anything.
"""

import csv
import dataclasses
import pathlib
import zipfile

import ml_collections
import numpy as np

from common.data.splits import Splits, fixed_permutation
from common.errors import ConfigError, DataError, DataNotFoundError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
FORMATS = ("folder", "npz", "csv")


def default_config():
  return ml_collections.ConfigDict({
      "train": "",            # folder, .npz or .csv: the (possibly noisy) training data
      "trusted": "",          # same format: the trusted subset ("" = none, or trusted_ids)
      "trusted_ids": "",      # text file of ids of `train` that are trusted (one per line)
      "test": "",             # same format: the test set ("" = hold out test_fraction)
      "test_fraction": 0.1,   # of the training pool, when there is no test set
      "label_column": "label",  # CSV: the column holding the labels
      "id_column": "",        # CSV: a column of ids ("" = row numbers)
      "image_size": 0,        # images: 0 = all must share one size; N = resize to N x N
      "channels": 0,          # images: 0 = as stored (all must agree); 1 or 3 = convert
      "standardize": True,    # features (rank-1 inputs): z-score with the training pool's stats
  })


def source_format(path):
  """"folder", "npz" or "csv" for ``path`` (ConfigError for anything else)."""
  p = pathlib.Path(path)
  if p.suffix.lower() == ".npz":
    return "npz"
  if p.suffix.lower() == ".csv":
    return "csv"
  if p.is_dir() or not p.suffix:
    return "folder"
  raise ConfigError(f"cannot tell the format of {path}: give a folder (one sub-folder per "
                    "class), an .npz (arrays x and y) or a .csv (features and a label column).")


def check(cfg):
  """The custom block, before anything is read: paths present, one kind of trusted subset,
  matching formats, sane numbers (ConfigError / DataNotFoundError, one line)."""
  if not cfg.train:
    raise ConfigError("custom.train is empty: give your training data (a folder with one "
                      "sub-folder per class, an .npz with x and y, or a .csv).")
  if cfg.trusted and cfg.trusted_ids:
    raise ConfigError("give custom.trusted (a separate folder / file) or custom.trusted_ids "
                      "(ids of custom.train), not both.")
  fmt = source_format(cfg.train)
  for key in ("train", "trusted", "test", "trusted_ids"):
    path = cfg[key]
    if path and not pathlib.Path(path).expanduser().exists():
      raise DataNotFoundError(f"custom.{key}={path} does not exist.")
    if path and key in ("trusted", "test") and source_format(path) != fmt:
      raise ConfigError(f"custom.{key}={path} is a {source_format(path)} but custom.train is a "
                        f"{fmt}: give both in the same format.")
  if not 0.0 <= float(cfg.test_fraction) < 1.0:
    raise ConfigError(f"custom.test_fraction must lie in [0, 1), got {cfg.test_fraction}.")
  if int(cfg.channels) not in (0, 1, 3):
    raise ConfigError(f"custom.channels must be 0 (as stored), 1 or 3, got {cfg.channels}.")
  if int(cfg.image_size) < 0:
    raise ConfigError(f"custom.image_size must be >= 0 (0: keep the size), got "
                      f"{cfg.image_size}.")


@dataclasses.dataclass
class _Table:
  """One source as read: inputs, raw labels (ints or strings), string ids."""

  x: np.ndarray
  labels: np.ndarray
  ids: np.ndarray
  where: str
  class_names: tuple = ()   # npz: its own class_names, if any


def _read_folder(root, image_size, channels):
  root = pathlib.Path(root).expanduser()
  classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
  if not classes:
    raise DataError(f"{root} holds no class folders: an image folder needs one sub-folder per "
                    "class (e.g. cat/, dog/) with that class's images inside.")
  paths, labels = [], []
  for name in classes:
    files = sorted(p for p in (root / name).rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
      raise DataError(f"class folder {root / name} holds no images "
                      f"({'/'.join(IMAGE_EXTENSIONS)}): put its images there or remove it.")
    paths += files
    labels += [name] * len(files)
  for path in paths:
    _check_name(path.relative_to(root), root)
  ids = np.asarray([p.relative_to(root).as_posix() for p in paths])
  x = _decode(paths, image_size, channels, root)
  return _Table(x, np.asarray(labels), ids, str(root))


def _check_name(relative, root):
  """A file or folder name that is not valid UTF-8 (Python keeps its bytes as surrogates)
  cannot be an id, a label or a line of label_issues.csv: refused, naming it."""
  try:
    str(relative).encode("utf-8")
  except UnicodeEncodeError:
    shown = str(relative).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    raise DataError(f"{root}: the name {shown!r} is not valid UTF-8 (\ufffd marks the bytes "
                    "that are not); rename it.") from None


def _decode(paths, image_size, channels, root):
  """uint8 [N, H, W, C]; every image the same size and channel count (or converted)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  def decode(path):
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels,
                               expand_animations=False)
    if image_size:
      image = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(
          image, (image_size, image_size), antialias=True)), 0, 255), tf.uint8)
    return image

  images = []
  for path in paths:
    try:
      image = decode(tf.constant(str(path))).numpy()
    except tf.errors.InvalidArgumentError as e:
      raise DataError(f"cannot decode {path}: {e.message.strip().splitlines()[0]}") from None
    if images and image.shape != images[0].shape:
      first = images[0].shape
      what = ("sizes" if image.shape[:2] != first[:2] else "channel counts")
      hint = ("set custom.image_size=N to resize every image to N x N" if what == "sizes"
              else "set custom.channels=1 or 3 to convert them")
      raise DataError(f"images of mixed {what} in {root}: {paths[0]} is "
                      f"{'x'.join(map(str, first))} but {path} is "
                      f"{'x'.join(map(str, image.shape))}; {hint}.")
    images.append(image)
  return np.stack(images)


def _read_npz(path):
  path = pathlib.Path(path).expanduser()
  if not zipfile.is_zipfile(path):
    raise DataError(f"{path} is not an .npz archive (a zip of .npy arrays, as numpy.savez "
                    "writes); save your arrays with numpy.savez(path, x=..., y=...).")
  try:
    with np.load(path, allow_pickle=False) as f:
      keys = set(f.files)
      if not {"x", "y"} <= keys:
        raise DataError(f"{path} needs arrays 'x' and 'y'; it holds {sorted(keys)}.")
      x, y = f["x"], f["y"]
      ids = f["ids"].astype(str) if "ids" in keys else np.arange(len(x)).astype(str)
      names = tuple(str(n) for n in f["class_names"]) if "class_names" in keys else ()
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    if isinstance(e, DataError):
      raise
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
    if "pickle" in reason:
      reason = "an array holds Python objects; give numeric arrays (ids and names as strings)"
    raise DataError(f"{path} cannot be read as an .npz of arrays: {reason}.") from None
  if y.ndim != 1 or len(y) != len(x) or len(ids) != len(x):
    raise DataError(f"{path}: x has {len(x)} rows but y has shape {y.shape}"
                    f"{f' and ids {len(ids)} rows' if len(ids) != len(x) else ''}; y must be "
                    "one class id per row of x.")
  if x.ndim not in (2, 3, 4) or len(x) == 0:
    raise DataError(f"{path}: x has shape {x.shape}; give images [N, H, W, C] / [N, H, W] or "
                    "features [N, D], N > 0.")
  if not np.issubdtype(y.dtype, np.integer):
    if not (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))):
      raise DataError(f"{path}: y must hold integer class ids, got dtype {y.dtype}.")
    y = y.astype(np.int64)
  if x.ndim == 3:
    x = x[..., None]       # [N, H, W] greyscale
  return _Table(x, y.astype(np.int64), ids, str(path), names)


def _read_csv(path, label_column, id_column):
  path = pathlib.Path(path).expanduser()
  try:
    with open(path, newline="", encoding="utf-8") as fh:
      rows = list(csv.reader(fh))
  except UnicodeDecodeError as e:
    raise DataError(f"{path} is not UTF-8 text (byte {e.start} is not): give a CSV saved as "
                    "UTF-8.") from None
  except csv.Error as e:
    raise DataError(f"{path} is not a CSV file ({e}).") from None
  rows = [r for r in rows if r]
  if len(rows) < 2:
    raise DataError(f"{path} needs a header line and at least one row.")
  header = [h.strip() for h in rows[0]]
  for key, col in (("label_column", label_column), ("id_column", id_column)):
    if col and col not in header:
      raise DataError(f"{path} has no column {col!r} (custom.{key}); its columns: {header}.")
  li = header.index(label_column)
  ii = header.index(id_column) if id_column else None
  feature_cols = [i for i in range(len(header)) if i not in (li, ii)]
  if not feature_cols:
    raise DataError(f"{path} has no feature columns besides the label"
                    f"{' and id' if id_column else ''}.")
  x = np.empty((len(rows) - 1, len(feature_cols)), np.float32)
  labels, ids = [], []
  for r, row in enumerate(rows[1:]):
    if len(row) != len(header):
      raise DataError(f"{path} line {r + 2} has {len(row)} fields, the header {len(header)}.")
    try:
      x[r] = [float(row[i]) for i in feature_cols]
    except ValueError:
      bad = next(i for i in feature_cols if not _is_float(row[i]))
      raise DataError(f"{path} line {r + 2}: column {header[bad]!r} holds {row[bad]!r}, not a "
                      "number; feature columns must be numeric (set custom.label_column / "
                      "id_column for the others).") from None
    labels.append(row[li].strip())
    ids.append(row[ii].strip() if ii is not None else str(r))
  return _Table(x, np.asarray(labels), np.asarray(ids), str(path))


def _is_float(s):
  try:
    float(s)
    return True
  except ValueError:
    return False


def _read(path, cfg):
  fmt = source_format(path)
  if fmt == "folder":
    table = _read_folder(path, int(cfg.image_size), int(cfg.channels))
  elif fmt == "npz":
    table = _read_npz(path)
  else:
    table = _read_csv(path, cfg.label_column, cfg.id_column)
  _check_table(table)
  return table


def _check_table(t):
  """What would silently give a wrong result: empty labels, repeated ids, non-finite inputs
  (DataError, one line, naming the first offending row)."""
  labels = t.labels.astype(str) if t.labels.dtype.kind in "US" else None
  if labels is not None:
    empty = np.flatnonzero(np.char.str_len(np.char.strip(labels)) == 0)
    if len(empty):
      raise DataError(f"{t.where}: {len(empty)} rows have an empty label (the first: id "
                      f"{str(t.ids[empty[0]])!r}); give every row its class or drop it.")
  ids, counts = np.unique(t.ids, return_counts=True)
  if (counts > 1).any():
    dup = ids[counts > 1]
    raise DataError(f"{t.where}: {len(dup)} ids occur more than once (e.g. {str(dup[0])!r}); ids "
                    "must name one row each (fix the id column, or leave custom.id_column empty "
                    "to use row numbers).")
  if np.issubdtype(t.x.dtype, np.floating):
    bad = ~np.isfinite(t.x.reshape(len(t.x), -1)).all(axis=1)
    if bad.any():
      raise DataError(f"{t.where}: {int(bad.sum())} rows hold NaN or infinite values (the "
                      f"first: id {str(t.ids[np.flatnonzero(bad)[0]])!r}); impute or drop them "
                      "first.")


def _class_ids(train, others):
  """(class names, label ids of train, [label ids of each other table]); labels of the other
  tables outside train's classes are a DataError."""
  integer = np.issubdtype(train.labels.dtype, np.integer)
  if not integer:
    digits = np.array([l.lstrip("-").isdigit() for l in train.labels.tolist()])
    if digits.any() and not digits.all():
      named = np.flatnonzero(~digits)
      raise DataError(f"{train.where}: labels mix integers and names ({int(digits.sum())} "
                      f"integers, {len(named)} names such as {str(train.labels[named[0]])!r} at id "
                      f"{str(train.ids[named[0]])!r}); use one kind.")
    integer = bool(digits.all())
  if integer:
    y = [_int_labels(t) for t in [train] + others]
    k = len(train.class_names) or int(y[0].max()) + 1
    names = train.class_names or tuple(str(i) for i in range(k))
    for t, yt in zip([train] + others, y):
      bad = (yt < 0) | (yt >= k)
      if bad.any():
        raise DataError(f"{t.where}: label {int(yt[bad][0])} (id {t.ids[bad][0]}) is outside "
                        f"the {k} classes 0..{k - 1} of {train.where}.")
    if not train.class_names:
      empty = np.flatnonzero(np.bincount(y[0], minlength=k) == 0)
      if len(empty):
        top = int(y[0].max())
        raise DataError(f"{train.where}: integer labels name classes 0..{top}, but "
                        f"{len(empty)} of them have no rows (e.g. {int(empty[0])}); class ids "
                        f"must be 0..K-1, each used (is label {top} at id "
                        f"{str(train.ids[np.flatnonzero(y[0] == top)[0]])!r} a typo?).")
    _check_classes(train, names, y[0])
    return names, y[0], y[1:]
  names = tuple(sorted(set(train.labels.tolist())))
  index = {n: i for i, n in enumerate(names)}
  out = []
  for t in [train] + others:
    unknown = [l for l in t.labels.tolist() if l not in index]
    if unknown:
      raise DataError(f"{t.where}: label {unknown[0]!r} is not one of the classes of "
                      f"{train.where} ({', '.join(names[:10])}{', ...' if len(names) > 10 else ''}).")
    out.append(np.asarray([index[l] for l in t.labels.tolist()], np.int64))
  _check_classes(train, names, out[0])
  return names, out[0], out[1:]


def _check_classes(train, names, y):
  if len(np.unique(y)) < 2:
    raise DataError(f"{train.where} holds one class ({names[int(y[0])]!r}); a classifier needs "
                    "two or more.")


def _int_labels(t):
  try:
    return t.labels.astype(np.int64)
  except ValueError:
    raise DataError(f"{t.where}: labels mix integers and names (e.g. {t.labels[0]!r}); use one "
                    "kind.") from None


def _read_ids(path):
  with open(pathlib.Path(path).expanduser()) as fh:
    ids = [l.strip() for l in fh if l.strip() and not l.lstrip().startswith("#")]
  if not ids:
    raise DataError(f"custom.trusted_ids file {path} holds no ids.")
  return ids


def _as_float(x):
  if x.dtype == np.uint8:
    return x.astype(np.float32) / np.float32(255.0)
  return x.astype(np.float32)


def load(cfg):
  """The ``Splits`` of the custom block ``cfg``: train = the training pool less the trusted
  ids (and the held-out test part), in a fixed class-mixed order; val = the trusted subset;
  test = the test source or the held-out part. ``Splits.train_ids`` holds each training
  point's id (path or id) in that order."""
  check(cfg)
  train = _read(cfg.train, cfg)
  trusted = _read(cfg.trusted, cfg) if cfg.trusted else None
  test = _read(cfg.test, cfg) if cfg.test else None
  for t in (trusted, test):
    if t is not None and t.x.shape[1:] != train.x.shape[1:]:
      raise DataError(f"{t.where} holds inputs of shape {t.x.shape[1:]} but {train.where} "
                      f"holds {train.x.shape[1:]}; give both in one shape"
                      f"{' (custom.image_size=N resizes images)' if train.x.ndim == 4 else ''}.")
  others = [t for t in (trusted, test) if t is not None]
  names, y, y_others = _class_ids(train, others)
  y_trusted = y_others.pop(0) if trusted is not None else None
  y_test = y_others.pop(0) if test is not None else None

  n = len(train.x)
  trusted_rows = np.zeros(n, bool)
  if cfg.trusted_ids:
    wanted = _read_ids(cfg.trusted_ids)
    row_of = {i: r for r, i in enumerate(train.ids.tolist())}
    missing = [i for i in wanted if i not in row_of]
    if missing:
      raise DataError(f"{len(missing)} of the {len(wanted)} ids in custom.trusted_ids="
                      f"{cfg.trusted_ids} are not in {train.where} (e.g. {missing[0]!r}); ids "
                      "are paths relative to the folder, the npz's ids (or row numbers) or the "
                      "CSV's id column (or row numbers).")
    trusted_rows[[row_of[i] for i in wanted]] = True
  pool = np.flatnonzero(~trusted_rows)
  # A fixed class-mixed order (independent of the run seed), as for the other image folders:
  # noise corrupts the first points of the pool, and the held-out test set is its last ones.
  pool = pool[fixed_permutation(len(pool))]
  n_test = 0 if test is not None else int(round(float(cfg.test_fraction) * len(pool)))
  train_rows, test_rows = pool[:len(pool) - n_test], pool[len(pool) - n_test:]
  if len(train_rows) == 0:
    raise DataError(f"{train.where}: no training points are left after the trusted ids and the "
                    "test hold-out.")

  x_val = (trusted.x if trusted is not None else train.x[trusted_rows])
  y_val = (y_trusted if trusted is not None else y[trusted_rows])
  x_test = test.x if test is not None else train.x[test_rows]
  y_test = y_test if test is not None else y[test_rows]
  arrays = {"x_train": _as_float(train.x[train_rows]), "y_train": y[train_rows],
            "x_val": _as_float(x_val), "y_val": y_val,
            "x_test": _as_float(x_test), "y_test": y_test}
  if arrays["x_train"].ndim == 2 and cfg.standardize:
    mean = arrays["x_train"].mean(0)
    std = arrays["x_train"].std(0)
    std[std == 0] = 1.0
    for part in ("train", "val", "test"):
      arrays[f"x_{part}"] = (arrays[f"x_{part}"] - mean) / std
  fmt = source_format(cfg.train)
  sizes = {p: int(len(arrays[f"y_{p}"])) for p in ("train", "val", "test")}
  note = ("" if test is not None or not n_test else
          f"no custom.test: {n_test} points of the training pool held out as the test set "
          "(their labels are as given)")
  info = {"dataset": "custom", "source": fmt, "split": "custom", "origin": train.where,
          "trusted": cfg.trusted or (f"ids in {cfg.trusted_ids}" if cfg.trusted_ids else ""),
          "test": cfg.test or f"held out ({cfg.test_fraction:g} of the pool)",
          "requested": sizes, "actual": sizes, "scaled": False, "note": note,
          "input_shape": list(arrays["x_train"].shape[1:]),
          "pixel_range": [0.0, 1.0] if train.x.dtype == np.uint8 else None}
  return Splits(**arrays, num_classes=len(names), class_names=tuple(names), info=info,
                train_ids=train.ids[train_rows])


__all__ = ["FORMATS", "check", "default_config", "load", "source_format"]
