"""Which ranking of a user's labels finds the wrong ones best? Every score an own-data run
computes, against cleanlab on a logistic regression, on data with planted flips.

  python importance_learning/run.py --config=importance_learning/configs/ranking_study.py \
      --workdir=runs/ranking_study

The study writes its datasets into ``<workdir>/data`` in the three formats the own-data path
reads, each with a trusted-id list and a separate test set:

  mnist_npz    embedded MNIST as an .npz of [N, 28, 28] uint8: 2,000 training images, 200
               trusted (20 a class), 1,000 test
  digits_png   scikit-learn's 8x8 digits as a PNG folder: 1,287 training, 150 trusted (15 a
               class), 360 test
  cancer_csv   scikit-learn's breast-cancer table (30 features, 2 classes) as a CSV with an id
               column: 400 training, 60 trusted, 109 test

Each (dataset, noise level) cell is the own-data command (configs/custom.py, its defaults)
with ``noise`` planting random flips among the training labels (``study.noise_type``), in
``cells/<dataset>_<noise>/``; cells are cached on their results.json. For every cell and
every candidate ranking (``candidates``: the method's score, both confident-learning quality
scores and rank averages of them), plus ``cleanlab_logreg`` (cleanlab's
``find_label_issues`` and ``get_label_quality_scores`` on 5-fold out-of-sample probabilities
of scikit-learn's LogisticRegression on the same noisy training pool, scaled features), the
table gives ROC AUC and average precision of the ranking, and precision / recall of its flags.
Writes ``ranking.json`` and ``ranking.md``.
"""

import csv
import json
import pathlib
import time

import numpy as np

from common import config_checks
from common import metrics as metriclib
from common import records
from importance_learning import experiment
from importance_learning import label_issues

DATASETS = ("mnist_npz", "digits_png", "cancer_csv")


def validate(config):
  config_checks.validated(_validate, config)


def _validate(config):
  unknown = sorted(set(config.study.datasets) - set(DATASETS))
  if unknown or not config.study.datasets:
    raise ValueError(f"study.datasets must name some of {list(DATASETS)}, got "
                     f"{list(config.study.datasets)}.")
  for noise in config.study.noise:
    if not 0.0 < float(noise) < 1.0:
      raise ValueError(f"study.noise levels must lie in (0, 1), got {noise}.")


# -- the datasets ----------------------------------------------------------------------------


def _split_rows(y, trusted_per_class, n_test, seed):
  """(train, trusted, test) row numbers: a seeded shuffle, the test rows first, then
  ``trusted_per_class`` of each class for the trusted subset."""
  order = np.random.default_rng(seed).permutation(len(y))
  test, rest = order[:n_test], order[n_test:]
  trusted = np.concatenate([rest[y[rest] == k][:trusted_per_class] for k in np.unique(y)])
  train = np.setdiff1d(rest, trusted)
  return np.sort(train), np.sort(trusted), np.sort(test)


def _write_ids(path, ids):
  records.write_text(path, "".join(f"{i}\n" for i in ids))


def write_dataset(name, folder):
  """The dataset ``name`` in ``folder``; returns the custom block's paths."""
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  if name == "mnist_npz":
    from common import data as datalib  # pylint: disable=import-outside-toplevel
    pools, _, _ = datalib.read_pools("mnist", "embedded", "")
    x, y = pools.x_train[..., 0], np.asarray(pools.y_train, np.int64)
    train, trusted, test = _split_rows(y, 20, 1000, 0)
    train = train[:2000]
    keep = np.sort(np.concatenate([train, trusted]))
    np.savez(folder / "train.npz", x=x[keep], y=y[keep])
    np.savez(folder / "test.npz", x=x[test], y=y[test])
    # An npz's ids are its row numbers.
    _write_ids(folder / "trusted.txt", np.flatnonzero(np.isin(keep, trusted)))
    return {"train": str(folder / "train.npz"), "test": str(folder / "test.npz"),
            "trusted_ids": str(folder / "trusted.txt")}
  if name == "digits_png":
    from PIL import Image  # pylint: disable=import-outside-toplevel
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
    digits = load_digits()
    x = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    y = digits.target.astype(np.int64)
    train, trusted, test = _split_rows(y, 15, 360, 0)
    ids = []
    for part, rows in (("train", np.concatenate([train, trusted])), ("test", test)):
      for r in rows:
        path = folder / part / str(y[r]) / f"{r:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[r]).save(path)
        if part == "train" and r in set(trusted.tolist()):
          ids.append(f"{y[r]}/{r:04d}.png")
    _write_ids(folder / "trusted.txt", sorted(ids))
    return {"train": str(folder / "train"), "test": str(folder / "test"),
            "trusted_ids": str(folder / "trusted.txt")}
  if name == "cancer_csv":
    from sklearn.datasets import load_breast_cancer  # pylint: disable=import-outside-toplevel
    table = load_breast_cancer()
    x, y = table.data, table.target.astype(np.int64)
    train, trusted, test = _split_rows(y, 30, 109, 0)
    columns = [f"f{j}" for j in range(x.shape[1])]
    for part, rows in (("train", np.concatenate([train, trusted])), ("test", test)):
      with open(folder / f"{part}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", *columns, "label"])
        for r in np.sort(rows):
          w.writerow([f"p{r}", *(repr(float(v)) for v in x[r]), int(y[r])])
    _write_ids(folder / "trusted.txt", [f"p{r}" for r in trusted])
    return {"train": str(folder / "train.csv"), "test": str(folder / "test.csv"),
            "trusted_ids": str(folder / "trusted.txt"), "id_column": "id"}
  raise ValueError(f"unknown study dataset {name!r}")


# -- the cells -------------------------------------------------------------------------------


def cell_config(config, paths, noise):
  c = config.own_data.copy_and_resolve_references()
  c.custom.update(paths)
  c.noise = float(noise)
  c.noise_type = config.study.noise_type
  return c


def cleanlab_logreg(x, y, seed=0, folds=5):
  """(flags, quality, seconds): cleanlab on 5-fold out-of-sample probabilities of a
  logistic regression (features scaled on the pool)."""
  from cleanlab import filter as clfilter  # pylint: disable=import-outside-toplevel
  from cleanlab import rank as clrank  # pylint: disable=import-outside-toplevel
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  from sklearn.model_selection import cross_val_predict  # pylint: disable=import-outside-toplevel
  from sklearn.model_selection import StratifiedKFold  # pylint: disable=import-outside-toplevel
  from sklearn.pipeline import make_pipeline  # pylint: disable=import-outside-toplevel
  from sklearn.preprocessing import StandardScaler  # pylint: disable=import-outside-toplevel
  t0 = time.time()
  feats = np.asarray(x, np.float64).reshape(len(x), -1)
  model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
  cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
  probs = cross_val_predict(model, feats, y, cv=cv, method="predict_proba")
  flags = clfilter.find_label_issues(y, probs)
  quality = clrank.get_label_quality_scores(y, probs)
  return flags, quality, time.time() - t0


def candidates(folder):
  """{name: (score, flags)}: every ranking an own-data run can offer, from its files."""
  folder = pathlib.Path(folder)
  res = json.loads((folder / "results.json").read_text())
  method = np.load(folder / "importances.npy")
  confident = {}
  for variant in experiment.CL_VARIANTS:
    path = folder / "confident_learning" / f"{variant}.npz"
    if path.exists():
      with np.load(path) as z:
        confident[variant] = (z["quality"], z["flagged"].astype(bool))
  return label_issues.rankings(res["method"], method,
                               method <= float(res["detection_threshold"]), confident)


def _detection(score, corrupted, flags):
  d = metriclib.detection(np.asarray(score, np.float64), corrupted, flagged=flags)
  return {k: d[k] for k in ("roc_auc", "average_precision", "precision", "recall", "flagged")}


def measure(config, folder, paths, noise, log):
  """Rows of one finished cell: each candidate ranking, then cleanlab_logreg."""
  folder = pathlib.Path(folder)
  corrupted = np.load(folder / "corrupted.npy").astype(bool)
  res = json.loads((folder / "results.json").read_text())
  default = label_issues.default_ranking(res["method"], experiment.per_step(res["method"]))
  rows = [{"ranking": name, "default": name == default, **_detection(score, corrupted, flags)}
          for name, (score, flags) in candidates(folder).items()]
  rows[0]["seconds"] = float(res.get("wall_seconds_this_invocation", float("nan")))
  data = experiment.training_data(cell_config(config, paths, noise))
  if not np.array_equal(data.corrupted, corrupted):
    raise RuntimeError(f"{folder}: the cell's corrupted labels differ from the study's data.")
  flags, quality, seconds = cleanlab_logreg(data.ds.x_train, data.y_noisy)
  rows.append({"ranking": "cleanlab_logreg", "seconds": seconds,
               **_detection(quality, corrupted, flags)})
  log(f"[ranking] {folder.name}: " + ", ".join(f"{r['ranking']} {r['roc_auc']:.3f}"
                                              for r in rows))
  return rows


def run(config, workdir, log=print):
  validate(config)
  t_start = time.time()
  workdir = pathlib.Path(workdir)
  records.check_or_write_sweep_config(workdir, config, "study", ("datasets", "noise"))
  cells = records.Sweep(lambda key: workdir / "cells" / key / "results.json",
                        written_by_run=True)
  table = []
  for name in config.study.datasets:
    paths = write_dataset(name, workdir / "data" / name)
    for noise in config.study.noise:
      key = f"{name}_{float(noise):g}"
      folder = workdir / "cells" / key
      log(f"[ranking] {key}")
      cells.run(key, lambda: experiment.run(cell_config(config, paths, noise), folder, log=log))
      for row in measure(config, folder, paths, noise, log):
        table.append({"dataset": name, "noise": float(noise), **row})
  results = {"experiment": "ranking_study", "rows": table, "git_commit": records.git_commit(),
             "wall_seconds_this_invocation": time.time() - t_start}
  records.write_json(workdir / "ranking.json", results)
  records.write_text(workdir / "ranking.md", markdown(table))
  log(f"Results written to {workdir / 'ranking.json'} and ranking.md.")
  return results


def summary(results):
  return markdown(results["rows"])


def markdown(table):
  lines = ["| dataset | noise | ranking | ROC AUC | avg precision | flagged | precision | "
           "recall | s |", "|---|---|---|---|---|---|---|---|---|"]
  for r in table:
    s = r.get("seconds")
    name = f"**{r['ranking']}** (default)" if r.get("default") else r["ranking"]
    lines.append(f"| {r['dataset']} | {r['noise']:g} | {name} | {r['roc_auc']:.3f} | "
                 f"{r['average_precision']:.3f} | {r['flagged']} | {r['precision']:.3f} | "
                 f"{r['recall']:.3f} | {'' if s is None else f'{s:.0f}'} |")
  return "\n".join(lines) + "\n"
