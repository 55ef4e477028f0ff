"""Datasets for the experiments: one `load` whatever the source, label noise, the split rule.

    from common import data
    splits = data.load("mnist")                     # embedded: 5000 real images, no network
    splits = data.load("cifar10", source="files", data_dir="~/data/cifar10")
    y_noisy, corrupted = data.flip_labels(splits.y_train, 0.25, splits.num_classes, seed=0)

Every dataset a family reads is in ``REGISTRY`` (its kind, sources and loader), and a config's
dataset fields are validated once, by ``check``.

Sources: "files" reads the dataset's canonical published format from `data_dir`; "tfds" reads
a prepared TensorFlow Datasets directory (downloading only with `tfds_download=True`);
"embedded" (MNIST only) needs neither files nor network; "embedded_t10k" (MNIST) joins it
with the 10,000 canonical t10k IDX images in `data_dir` into one 15,000-image pool. A missing source is a
`DataNotFoundError` naming what is expected and where to get it, never a fallback to other data.
Splits are those of the reference experiments (penalty.md §6.2-6.5, and the Learning to
Reweight CIFAR runs); a source holding fewer images gives a proportionally smaller split, stated
in `info["note"]`.
"""

import contextlib
import dataclasses
import os
import pathlib
import zlib
from typing import Callable

import numpy as np

from common.data import cifar, cifar10, custom, dogfish, miniimagenet, mnist, omniglot, svhn
from common.data.noise import flip_labels
from common.data.splits import Pools, SplitSizes, Splits, apply_split, fixed_permutation
from common.errors import DataError, DataNotFoundError


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What `load` accepts for one dataset, and what it returns."""

  sources: tuple      # valid `source` values
  splits: dict        # split name -> SplitSizes(train, val, test)
  default_split: str  # what split="default" means
  image_shape: tuple
  num_classes: int
  class_names: tuple  # label ids in order, unless the files carry their own names
  files: tuple        # what source="files" reads from data_dir
  urls: tuple         # where to download those files
  tfds_name: str
  # split name -> m: that split's training part is cut to its first floor(n / m) * m images
  # (after the split rule, before any label noise).
  train_multiple: dict = dataclasses.field(default_factory=dict)


# Learning to Reweight CIFAR (generate_noisy_cifar_data.py): of the 50000 training images, 5000
# are held out as a clean validation set for model selection (not used here), `num_clean` form
# the clean meta set (our val) and the rest is the noisy training set; test is the test set.
# apply_split takes train first, then val, and leaves the last 5000 training images unused (a
# smaller source is scaled on train + val, so it leaves none). The original draws both hold-outs
# at random (seeded); here they are consecutive slices of the class-mixed file order. Neither
# balances the clean set per class, although the paper says 10 images per class for
# BACKGROUNDFLIP: the original draws `num_clean` images at random.
L2RW_UNIFORM = SplitSizes(44000, 1000, 10000)         # UNIFORMFLIP: 1000 clean images
L2RW_BACKGROUND_10 = SplitSizes(44900, 100, 10000)    # BACKGROUNDFLIP: 10 per class, CIFAR-10
L2RW_BACKGROUND_100 = SplitSizes(44000, 1000, 10000)  # BACKGROUNDFLIP: 10 per class, CIFAR-100
# Deep Bilevel Learning trains on all 50000 (noisy) images and has no clean set at all.
ALL_TRAIN = SplitSizes(50000, 0, 10000)

DATASETS = {
    "mnist": DatasetSpec(
        sources=("embedded", "files", "tfds", "embedded_t10k"),
        # small: logistic regression (§6.2); large: CNN (§6.3).
        splits={"small": SplitSizes(5000, 5000, 10000), "large": SplitSizes(59000, 1000, 10000)},
        default_split="small", image_shape=mnist.IMAGE_SHAPE, num_classes=10,
        class_names=mnist.CLASS_NAMES,
        files=mnist.FILES, urls=mnist.URLS, tfds_name="mnist"),
    "cifar10": DatasetSpec(
        sources=("files", "tfds"),
        splits={"default": SplitSizes(40000, 10000, 10000),  # §6.4
                "l2rw_uniform": L2RW_UNIFORM, "l2rw_background": L2RW_BACKGROUND_10,
                "all_train": ALL_TRAIN},
        default_split="default", image_shape=cifar10.IMAGE_SHAPE, num_classes=10,
        class_names=cifar10.CANONICAL_CLASSES,
        files=(f"{cifar10.BATCH_DIR}/{{data_batch_1..5,test_batch}} or "
               f"{{train,test}}/<class>/*.png|jpg",),
        urls=(cifar10.URL,), tfds_name="cifar10"),
    "svhn": DatasetSpec(
        sources=("files", "tfds"),
        # §6.5: the 73257 training images less 100 per class held out for validation leave
        # 72257; the original test scripts then keep the first int(72257 / 200) * 200 = 72200
        # ("Make dataset divisible by batch size"), before the label noise: the default.
        # "untrimmed" keeps all 72257.
        splits={"default": SplitSizes(72200, 1000, 26032),
                "untrimmed": SplitSizes(72257, 1000, 26032)},
        default_split="default", image_shape=svhn.IMAGE_SHAPE, num_classes=10,
        class_names=svhn.CLASS_NAMES,
        files=svhn.FILES, urls=svhn.URLS, tfds_name="svhn_cropped",
        train_multiple={"default": svhn.TRAIN_MULTIPLE}),
    "cifar100": DatasetSpec(
        sources=("files", "tfds"),
        # Only the Learning to Reweight experiments use CIFAR-100: their uniform-flip split is
        # the default.
        splits={"l2rw_uniform": L2RW_UNIFORM, "l2rw_background": L2RW_BACKGROUND_100,
                "all_train": ALL_TRAIN},
        default_split="l2rw_uniform", image_shape=cifar.IMAGE_SHAPE, num_classes=100,
        class_names=cifar.CIFAR100_CLASSES,
        files=(f"{cifar.CIFAR100_DIR}/{{{cifar.CIFAR100_TRAIN},{cifar.CIFAR100_TEST},"
               f"{cifar.CIFAR100_META}}} or {cifar.CIFAR100_TARBALL}",),
        urls=(cifar.CIFAR100_URL,), tfds_name="cifar100"),
}


def _choice_error(what, value, choices, context=""):
  return ValueError(f"Unknown {what} {value!r}{context}; valid choices: "
                    f"{', '.join(repr(c) for c in choices)}")


def _read(name, source, data_dir, tfds_download, svhn_val_seed):
  """(pools, class_names, origin) with images as the source holds them; a source that is there
  but cannot be used is a DataError naming it."""
  with usable(f"{name} (source {source!r}{f', {data_dir}' if data_dir else ''})"):
    return _read_source(name, source, data_dir, tfds_download, svhn_val_seed)


@contextlib.contextmanager
def usable(what):
  """Turn a damaged or malformed data file (ValueError, OSError, EOFError, zlib.error) met
  while reading ``what`` into a DataError; a missing one stays a DataNotFoundError."""
  try:
    yield
  except (DataNotFoundError, DataError):
    raise
  except FileNotFoundError as e:
    raise DataNotFoundError(f"{what}: {e}") from None
  except (ValueError, OSError, EOFError, zlib.error) as e:
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DataError(f"{what}: {reason}") from None


def _read_source(name, source, data_dir, tfds_download, svhn_val_seed):
  spec = DATASETS[name]
  if source == "tfds":
    from common.data import tfds_source  # pylint: disable=import-outside-toplevel
    x_train, y_train, x_test, y_test, names, origin = tfds_source.read_tfds(
        spec.tfds_name, data_dir, tfds_download)
    if names == tuple(str(i) for i in range(spec.num_classes)):
      # TFDS numbers the classes when it has no names (cifar10 and cifar100 read them while
      # preparing, so a builder without its metadata has none); its ids follow the canonical
      # order. cifar100's "label" is the fine label, as in the pickles.
      names = spec.class_names
    if name == "svhn":
      # svhn_cropped labels are already 0-9; the rest of the preprocessing is the .mat one.
      return svhn.preprocess(x_train, y_train, x_test, y_test, svhn_val_seed), names, origin
    return Pools(x_train, y_train, x_test, y_test), names, origin
  if source == "embedded":
    pools, origin = mnist.load_embedded(data_dir)
    return pools, spec.class_names, origin
  if source == "embedded_t10k":
    pools, origin = mnist.load_embedded_with_t10k(data_dir)
    return pools, spec.class_names, origin
  if not data_dir:
    raise DataNotFoundError(
        f"{name} source='files' needs data_dir, the folder holding "
        f"{', '.join(spec.files)} (from {' or '.join(spec.urls)}); or use "
        f"{' / '.join(repr(s) for s in spec.sources if s != 'files')} as source.")
  if name == "mnist":
    pools, origin = mnist.load_files(data_dir)
    return pools, spec.class_names, origin
  if name == "cifar10":
    return cifar10.load_files(data_dir)
  if name == "cifar100":
    return cifar.load_cifar100_files(data_dir)
  pools, origin = svhn.load_files(data_dir, svhn_val_seed)
  return pools, spec.class_names, origin


def check_present(name, source, data_dir):
  """A cheap check, before a sweep writes anything: source='files' needs an existing
  data_dir (DataNotFoundError saying what belongs there)."""
  if source != "files" or name not in DATASETS:
    return
  spec = DATASETS[name]
  if not data_dir:
    raise DataNotFoundError(
        f"{name} source='files' needs data_dir, the folder holding "
        f"{', '.join(spec.files)} (from {' or '.join(spec.urls)}); or use "
        f"{' / '.join(repr(s) for s in spec.sources if s != 'files')} as source.")
  if not pathlib.Path(data_dir).expanduser().is_dir():
    raise _missing_dir(spec, data_dir)


def _missing_dir(spec, data_dir):
  """One line for a data_dir that does not exist: what belongs there and where it comes from."""
  return DataNotFoundError(f"data_dir {data_dir} does not exist; it should hold "
                           f"{', '.join(spec.files)} (from {' or '.join(spec.urls)}).")


def read_pools(name, source="embedded", data_dir="", tfds_download=False):
  """The images a source holds, before any split: (pools, class_names, origin), pixels uint8.

  For protocols that cut their own splits (the poisoning attacks); ``load`` applies the
  reference splits of the denoising experiments instead. Same sources and errors as ``load``.
  """
  if name not in DATASETS:
    raise _choice_error("dataset", name, DATASETS)
  spec = DATASETS[name]
  if source not in spec.sources:
    raise _choice_error("source", source, spec.sources, f" for dataset {name!r}")
  data_dir = os.fspath(data_dir) if data_dir else ""
  try:
    return _read(name, source, data_dir, tfds_download, 0)
  except DataNotFoundError:
    if source == "files" and data_dir and not pathlib.Path(data_dir).expanduser().is_dir():
      raise _missing_dir(spec, data_dir) from None
    raise


def trim_train(parts, actual, note, multiple, split, untrimmed_splits=()):
  """Keep the first floor(n / multiple) * multiple training images of ``parts`` (the SVHN
  scripts' "Make dataset divisible by batch size"); returns (parts, actual, note).
  ``untrimmed_splits``: the dataset's splits without a cut, named when nothing would be left."""
  keep = actual.train // multiple * multiple
  if keep == 0:
    raise ValueError(f"too few images for split {split!r}: {note}; it keeps a multiple of "
                     f"{multiple} training images, so the train part would be empty"
                     + (f" (split {untrimmed_splits[0]!r} keeps them all)"
                        if untrimmed_splits else ""))
  if keep == actual.train:
    return parts, actual, note
  parts = dict(parts, x_train=parts["x_train"][:keep], y_train=parts["y_train"][:keep])
  note += (f"; training images cut from {actual.train} to the first {keep}, a multiple of "
           f"{multiple} (the original scripts')")
  return parts, actual._replace(train=keep), note


def _as_float(x, divide_by_255):
  x = np.asarray(x, dtype=np.float32)
  return x / np.float32(255.0) if divide_by_255 else np.ascontiguousarray(x)


def load(name, source="embedded", data_dir="", split="default", tfds_download=False,
         svhn_rescale=False, svhn_val_seed=0):
  """Train/val/test of dataset `name` as a `Splits` (x float32 NHWC, y int64 class ids).

  Args:
    name: a key of DATASETS ("mnist", "cifar10", "svhn", "cifar100").
    source: "embedded" (MNIST only), "files" (canonical files in data_dir) or "tfds".
    data_dir: folder of the files, or the TFDS data directory ("" = TFDS's default).
    split: a split name of the dataset, or "default".
    tfds_download: let source="tfds" download and prepare the dataset (needs network).
    svhn_rescale: divide SVHN grey values by 255 (the reference keeps them on 0-255).
    svhn_val_seed: seed of the 100-per-class SVHN validation hold-out.
  """
  if name not in DATASETS:
    raise _choice_error("dataset", name, DATASETS)
  spec = DATASETS[name]
  if source not in spec.sources:
    hint = (" (the embedded source exists for MNIST only; read files with source='files' and "
            "data_dir, or use source='tfds')" if source == "embedded" else "")
    raise _choice_error("source", source, spec.sources, f" for dataset {name!r}{hint}")
  split_name = spec.default_split if split == "default" else split
  if split_name not in spec.splits:
    raise _choice_error("split", split, ("default",) + tuple(spec.splits),
                        f" for dataset {name!r} ('default' = {spec.default_split!r})")
  if isinstance(svhn_val_seed, bool) or not isinstance(svhn_val_seed, (int, np.integer)):
    raise ValueError(f"svhn_val_seed must be an integer; got {svhn_val_seed!r}")
  data_dir = os.fspath(data_dir) if data_dir else ""

  try:
    pools, class_names, origin = _read(name, source, data_dir, tfds_download,
                                       int(svhn_val_seed))
  except DataNotFoundError:
    if source == "files" and data_dir and not pathlib.Path(data_dir).expanduser().is_dir():
      # The usual cause of "everything is missing" is a mistyped folder: say that alone.
      raise _missing_dir(spec, data_dir) from None
    raise
  requested = spec.splits[split_name]
  parts, actual, scaled, note = apply_split(pools, requested, source, split_name)
  if split_name in spec.train_multiple:
    parts, actual, note = trim_train(parts, actual, note, spec.train_multiple[split_name],
                                     split_name, [s for s in spec.splits
                                                  if s not in spec.train_multiple])
  # MNIST and CIFAR pixels are uint8 scaled to [0, 1] like the reference's /255; SVHN grey
  # values are already float and stay on 0-255 unless asked otherwise.
  divide = name != "svhn" or svhn_rescale
  info = {
      "dataset": name,
      "source": source,
      "split": split_name,
      "requested": requested.as_dict(),
      "actual": actual.as_dict(),
      "scaled": bool(scaled),
      "note": note,
      "origin": origin,
      "pixel_range": [0.0, 1.0] if divide else [0.0, 255.0],
  }
  if name == "svhn":
    info["svhn_val_seed"] = int(svhn_val_seed)
  arrays = {}
  for part in ("train", "val", "test"):
    arrays[f"x_{part}"] = _as_float(parts[f"x_{part}"], divide)
    arrays[f"y_{part}"] = np.asarray(parts[f"y_{part}"], dtype=np.int64).copy()
  return Splits(**arrays, num_classes=spec.num_classes, class_names=tuple(class_names),
                info=info)


# -- the registry of every dataset a family reads ----------------------------------------------

KINDS = {
    "splits": "train / val / test images with class labels (data.load; data.read_pools for "
              "protocols that cut their own splits)",
    "classes": "class-major images for few-shot episodes (data.load_classes)",
    "binary": "a two-class train / test set (dogfish.load_dogfish)",
    "folders": "ImageNet-style training/ and validation/ class folders, streamed "
               "(imagefolder.load_folders)",
}


def _load_folders(*args, **kwargs):
  # imagefolder streams through tf.data: imported when used, so reading a config (and checking
  # its dataset fields) does not start TensorFlow.
  from common.data import imagefolder  # pylint: disable=import-outside-toplevel
  return imagefolder.load_folders(*args, **kwargs)


@dataclasses.dataclass(frozen=True)
class Entry:
  """One dataset: what its loader returns (``kind``, a key of KINDS), the sources it reads,
  its named splits (kind "splits") and its loader."""

  kind: str
  sources: tuple
  loader: Callable
  splits: tuple = ()


REGISTRY = {
    **{name: Entry("splits", spec.sources, load,
                   ("default", *(s for s in spec.splits if s != "default")))
       for name, spec in DATASETS.items()},
    "omniglot": Entry("classes", omniglot.SOURCES, omniglot.load_omniglot),
    "miniimagenet": Entry("classes", ("files",), miniimagenet.load_miniimagenet),
    "dogfish": Entry("binary", ("files",), dogfish.load_dogfish),
    "imagenet": Entry("folders", ("files",), _load_folders),
    # Your own data (an image folder, .npz or CSV, and a trusted subset): custom.load(block).
    "custom": Entry("splits", ("files",), custom.load, ("custom",)),
}


def check(name, source=None, kinds=None, allowed=None, split=None):
  """The one validation of a config's dataset fields (ValueError, one line, before any work).

  ``name`` must be registered, of one of ``kinds`` (default: any) and, when the family names
  them, one of ``allowed``; ``source`` (if given) one its entry reads; ``split`` (if given and
  the dataset has named splits) one of them. Returns the entry.
  """
  choices = [n for n, e in REGISTRY.items() if (kinds is None or e.kind in kinds)
             and (allowed is None or n in allowed)]
  if name not in choices:
    raise ValueError(f"Unknown dataset {name!r}; choose one of {choices}.")
  entry = REGISTRY[name]
  if source is not None and source not in entry.sources:
    raise ValueError(f"Unknown source {source!r} for dataset {name!r}; choose one of "
                     f"{list(entry.sources)}.")
  if split is not None and entry.splits and split not in entry.splits:
    raise ValueError(f"Unknown split {split!r} for dataset {name!r}; choose one of "
                     f"{list(entry.splits)}.")
  return entry


def load_classes(name, source, data_dir, image_size=28, tfds_download=False,
                 resize_method="nearest", cache_dir=None, images_per_class=None, log=print):
  """(meta-train images, meta-test images, info) of a "classes" dataset: class-major arrays
  [classes, images per class, H, W, C]. Omniglot takes ``image_size``, ``tfds_download``,
  ``resize_method`` and ``cache_dir``; Mini-ImageNet reads ``images_per_class`` per class."""
  check(name, source, kinds=("classes",))
  if name == "omniglot":
    with usable(f"omniglot (source {source!r}{f', {data_dir}' if data_dir else ''})"):
      data = omniglot.load_omniglot(source, data_dir, image_size=image_size,
                                    tfds_download=tfds_download, resize_method=resize_method,
                                    cache_dir=cache_dir)
    if data.info.get("split_note"):
      log(f"NOTE: {data.info['split_note']}")
    return data.train_images, data.test_images, data.info
  with usable(f"mini-imagenet ({data_dir})"):
    data = miniimagenet.load_miniimagenet(data_dir, splits=("train", "test"),
                                          images_per_class=(images_per_class or
                                                            miniimagenet.IMAGES_PER_CLASS))
  return data.train.images, data.test.images, data.info


__all__ = ["DATASETS", "DataNotFoundError", "DatasetSpec", "Entry", "KINDS", "REGISTRY", "Splits",
           "SplitSizes", "check", "flip_labels", "fixed_permutation", "load", "load_classes",
           "read_pools"]
