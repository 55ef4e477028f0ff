"""Importance learning on arrays in memory, in one call: which of your labels to trust.

    from importance_learning import api
    result = api.learn_importances(x, y, x_trusted, y_trusted, method="penalty", epochs=10)
    result.importances          # one per training point; low = suspicious label
    result.label_issues[:10]    # the most suspicious points, with the suggested labels
    result.results              # test accuracies and the baselines (as results.json)

It runs the same protocol as the command line (``importance_learning/configs/custom.py``, the
phases of ``importance_learning.experiment``): a baseline, pretraining on the trusted data,
the bilevel epochs, retraining, the configured baselines. Anything of that config can be
changed through ``overrides`` (a dict of dotted keys, e.g. ``{"penalty.lr_u": 0.1,
"baselines.run": ()}``). The run's files go to ``workdir``: give one to keep them and to
resume; without it they go to a temporary folder that is removed when the call returns
(``Result.workdir`` is then None). ``log=None`` silences the run: no lines, no progress bars.
"""

import csv
import dataclasses
import pathlib
import shutil
import tempfile

import numpy as np

from common import config_args
from common import models
from common.data.splits import Splits
from common.errors import ConfigError
from importance_learning import experiment
from importance_learning.configs import custom as custom_config


@dataclasses.dataclass
class Result:
  importances: np.ndarray   # per training point, in the order given; low = suspicious
  label_issues: list        # rows of label_issues.csv, most suspicious first
  results: dict             # what results.json holds
  workdir: pathlib.Path     # None: the run's temporary folder, removed


def _as_inputs(x, what):
  x = np.asarray(x)
  if x.ndim not in (2, 3, 4) or len(x) == 0:
    raise ConfigError(f"{what} must be features [N, D] or images [N, H, W, C] / [N, H, W] "
                      f"with N > 0; got shape {x.shape}.")
  if x.ndim == 3:
    x = x[..., None]      # [N, H, W] greyscale, as the .npz loader reads it
  if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
    raise ConfigError(f"{what} must hold numbers; got dtype {x.dtype}.")
  x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
  bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
  if bad.any():
    raise ConfigError(f"{what}: {int(bad.sum())} rows hold NaN or infinite values (the first: "
                      f"row {int(np.flatnonzero(bad)[0])}); impute or drop them first.")
  return x


def _as_labels(y, n, k, what):
  y = np.asarray(y)
  if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
    raise ConfigError(f"{what} must be {n} integer class ids; got shape {y.shape}, dtype "
                      f"{y.dtype}.")
  if len(y) and (y.min() < 0 or y.max() >= k):
    raise ConfigError(f"{what} holds labels outside the {k} classes 0..{k - 1} of y (e.g. "
                      f"{int(y[(y < 0) | (y >= k)][0])}).")
  return y.astype(np.int64)


def learn_importances(x, y, x_trusted, y_trusted, x_test=None, y_test=None, *,
                      method="penalty", model="auto", epochs=None, num_classes=None,
                      class_names=None, ids=None, noise=0.0, overrides=None, workdir=None,
                      seed=0, log=print):
  """Learn an importance (or example weight) per training point; returns a ``Result``.

  Args:
    x, y: the training data (labels as given, possibly noisy): features [N, D] or images
      [N, H, W, C] (uint8 images are scaled to [0, 1]), integer labels.
    x_trusted, y_trusted: the trusted subset (clean labels).
    x_test, y_test: a test set for the accuracies (default: the trusted subset).
    method: a registered importance method with a block in the config ("penalty", "l2rw",
      "proximal", "approxgrad", ...).
    model: a registry name ("auto": a small CNN for images, an MLP for features), a
      "package.module:function" spec, or a function (input_shape, num_classes) -> keras.Model.
    epochs: bilevel epochs (default: the config's).
    noise: corrupt this fraction of ``y`` first (to measure detection on known corruptions).
    overrides: {dotted config key: value} for anything else.
    workdir: where the run's files go (default: a new temporary folder).
  """
  if callable(model):
    name = f"api:{getattr(model, '__module__', '')}.{getattr(model, '__qualname__', 'model')}"
    models.MODELS[name] = model
    model = name
  x, x_trusted = _as_inputs(x, "x"), _as_inputs(x_trusted, "x_trusted")
  x_test = x_trusted if x_test is None else _as_inputs(x_test, "x_test")
  y_test = y_trusted if y_test is None else y_test
  # The classes are the training labels' (as on the command line), unless num_classes says.
  y = _as_labels(y, len(x), np.inf, "y")
  k = int(num_classes or int(np.max(y)) + 1)
  y = _as_labels(y, len(x), k, "y")
  y_trusted = _as_labels(y_trusted, len(x_trusted), k, "y_trusted")
  y_test = _as_labels(y_test, len(x_test), k, "y_test")
  for other, what in ((x_trusted, "x_trusted"), (x_test, "x_test")):
    if other.shape[1:] != x.shape[1:]:
      raise ConfigError(f"{what} has inputs of shape {other.shape[1:]}, x {x.shape[1:]}.")
  if num_classes is None:
    empty = np.flatnonzero(np.bincount(y, minlength=k) == 0)
    if len(empty):
      raise ConfigError(f"y names classes 0..{k - 1} but {len(empty)} of them have no training "
                        f"points (e.g. {int(empty[0])}); pass num_classes=K if that is meant.")
  if len(np.unique(y)) < 2:
    raise ConfigError("y holds one class; a classifier needs two or more.")
  names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(k))
  if len(names) != k:
    raise ConfigError(f"class_names has {len(names)} names for {k} classes.")
  splits = Splits(x, y, x_trusted, y_trusted, x_test, y_test, num_classes=k, class_names=names,
                  info={"dataset": "custom", "source": "arrays", "split": "custom",
                        "origin": "arrays in memory (importance_learning.api)",
                        "actual": {"train": len(x), "val": len(x_trusted), "test": len(x_test)},
                        "scaled": False, "note": ""},
                  train_ids=None if ids is None else np.asarray(ids).astype(str))

  config = custom_config.get_config()
  config.method, config.model, config.seed, config.noise = method, model, seed, float(noise)
  if epochs is not None:
    config.epochs = int(epochs)
  for key, value in (overrides or {}).items():
    try:
      config_args.set_field(config, key, value)
    except (KeyError, AttributeError, TypeError) as e:
      raise ConfigError(f"overrides: the config has no field {key!r} ({e}).") from None
  if log is None:
    config.runner.progress_bar = False
    log = lambda *a, **k: None  # noqa: E731
  experiment.validate(config, splits)        # before any folder is made
  temporary = not workdir
  workdir = pathlib.Path(workdir) if workdir else pathlib.Path(
      tempfile.mkdtemp(prefix="importances_"))
  try:
    results = experiment.run(config, workdir, log=log, splits=splits)
    # In the order given: nothing is permuted for data passed in memory.
    importances = np.load(workdir / "importances.npy")
    with open(workdir / "label_issues.csv", newline="") as fh:
      rows = [_typed(r) for r in csv.DictReader(fh)]
  finally:
    if temporary:
      shutil.rmtree(workdir, ignore_errors=True)
  if temporary:
    results = dict(results, label_issues=dict(results.get("label_issues") or {}, path=None))
  return Result(importances, rows, results, None if temporary else workdir)


TEXT_COLUMNS = ("id", "given_label", "suggested_label", "true_label")


def _typed(row):
  """A label_issues.csv row with its numbers and flags as Python values (ids and labels stay
  text; every score column becomes a float)."""
  out = {k: (v if k in TEXT_COLUMNS else float(v)) for k, v in row.items()
         if k not in ("rank", "flagged", "corrupted")}
  out.update(rank=int(row["rank"]), flagged=row["flagged"] == "True")
  if "corrupted" in row:
    out["corrupted"] = row["corrupted"] == "True"
  return out
