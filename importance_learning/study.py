"""Where does an importance-learning method's detection of corrupted labels come from? One
switch at a time, measured.

  python importance_learning/run.py --config=importance_learning/configs/detection_study.py \
      --workdir=runs/detection_study

Every variant (``study.variants``: name -> the fields it changes, nested as in the config) is an
importance-learning
run of the study's config with those fields changed, in ``cells/<name>/``, with the noisy
baseline, the extra baselines and the retraining off (they do not touch the importances).
For each, the table gives:

  * the pretrained classifier's test accuracy (the classifier that initialises the
    importances: a point whose noisy label it predicts starts at a_hi, the others at a_lo);
  * the detection of the corrupted labels by the *initial* importances (that split alone) and
    by the final ones: ROC AUC, average precision, and precision / recall / F1 at the method's
    threshold (importance <= 0.5 flags a point);
  * how the bilevel epochs moved the importances: the share of points whose side of 0.5
    changed, and the share left at the clips (< 0.01 or > 0.99);
  * the best F1 over all thresholds of the final importances, with its threshold (what a
    tuned threshold could give; not a fair number to compare, since it is chosen on the
    labels it is judged by).

Cells are cached (``records.Sweep`` on each run's results.json): a re-run redoes nothing, and
more variants can be added to the same workdir. Writes ``study.json``, ``study.md`` and
``study.png`` (initial and final ROC AUC per variant).
"""

import json
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common import bilevel  # noqa: E402
from common import config_args  # noqa: E402
from common import config_checks
from common import data as datalib  # noqa: E402
from common import metrics as metriclib  # noqa: E402
from common import plots  # noqa: E402
from common import records  # noqa: E402
from importance_learning import experiment  # noqa: E402


def validate(config):
  config_checks.validated(_validate, config)


def _validate(config):
  variants = config.study.variants
  if not variants:
    raise ValueError("study.variants is empty: name at least one variant (e.g. "
                     "{'default': {}}).")
  if bilevel.get_method(config.method).learns_example_weights:
    raise ValueError(f"the detection study measures learned importance variables; method "
                     f"{config.method!r} computes per-step weights instead.")
  for name in variants:
    if "/" in name or name in ("", ".", ".."):
      raise ValueError(f"study variant name {name!r} must be usable as a folder name.")
    experiment.validate(_cell_config(config, name))


def _cell_config(config, name):
  cell = config.copy_and_resolve_references()
  with cell.unlocked():
    del cell["experiment"]
    del cell["study"]
    cell.baseline.enabled = False
    cell.baselines.run = ()
    cell.retrain.enabled = False
  for key, value in changes_of(config, name).items():
    try:
      config_args.set_field(cell, key, value)
    except (KeyError, AttributeError, TypeError) as e:
      raise ValueError(f"study variant {name!r} sets {key!r}, which is not a field of the "
                       f"config ({e}).") from e
  return cell


def _flatten(tree, prefix=""):
  out = {}
  for key, value in tree.items():
    if hasattr(value, "items"):
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def changes_of(config, name):
  """Variant ``name``'s changes as {dotted key: value}."""
  return _flatten(config.study.variants[name])


def run(config, workdir, log=print):
  validate(config)
  t_start = time.time()
  workdir = pathlib.Path(workdir)
  datalib.check_present(config.dataset, config.source, config.data_dir)  # before any write
  records.check_or_write_sweep_config(workdir, config, "study", ("variants",))
  cells = records.Sweep(lambda name: workdir / "cells" / name / "results.json",
                        written_by_run=True)
  rows = []
  for name in config.study.variants:
    changes = changes_of(config, name)
    folder = workdir / "cells" / name
    log(f"[study] {name}: {changes or 'the config as it is'}")
    _, cached = cells.run(name, lambda: experiment.run(_cell_config(config, name), folder,
                                                       log=log))
    if cached:
      log(f"[study] {name}: cached in {folder}")
    rows.append({"variant": name, "changes": {k: _plain(v) for k, v in changes.items()},
                 **measure(folder)})
  results = {"experiment": "detection_study", "dataset": config.dataset,
             "method": config.method, "noise": config.noise, "rows": rows,
             "git_commit": records.git_commit(),
             "wall_seconds_this_invocation": time.time() - t_start}
  records.write_json(workdir / "study.json", results)
  records.write_text(workdir / "study.md", _markdown(results))
  _figure(workdir / "study.png", rows, f"{config.dataset}, {config.noise:.0%} noise, "
          f"{config.method}")
  log(f"Results written to {workdir / 'study.json'}, study.md and study.png.")
  return results


def _plain(v):
  return list(v) if isinstance(v, tuple) else v


def measure(folder, threshold=0.5):
  """The study's numbers for one finished run in ``folder``."""
  folder = pathlib.Path(folder)
  corrupted = np.load(folder / "corrupted.npy")
  init = np.load(folder / "importances_init.npy")
  final = np.load(folder / "importances.npy")
  res = json.loads((folder / "results.json").read_text())
  pretrain = [json.loads(line) for line in (folder / "metrics.jsonl").open()]
  pretrain = [r["test_accuracy"] for r in pretrain
              if r.get("phase") == "pretrain" and r.get("kind") == "epoch"
              and "test_accuracy" in r]
  d_init = metriclib.detection(init, corrupted, threshold)
  d_final = metriclib.detection(final, corrupted, threshold)
  best_f1, best_t = best_threshold(final, corrupted)
  return {
      "pretrain_test_accuracy": pretrain[-1] if pretrain else None,
      "bilevel_model_test_accuracy": res["bilevel_model_test_accuracy"],
      "init": {k: d_init[k] for k in ("roc_auc", "average_precision", "precision", "recall",
                                      "f1")},
      "final": {k: d_final[k] for k in ("roc_auc", "average_precision", "precision", "recall",
                                        "f1")},
      "changed_side": float(np.mean((init > threshold) != (final > threshold))),
      "at_clips": float(np.mean((final < 0.01) | (final > 0.99))),
      "best_f1": best_f1, "best_f1_threshold": best_t,
  }


def best_threshold(scores, corrupted):
  """(F1, threshold) of the best rule 'score <= t flags a point' over every distinct t."""
  scores = np.asarray(scores, np.float64)
  corrupted = np.asarray(corrupted, bool)
  best = (0.0, None)
  for t in np.unique(scores):
    flagged = scores <= t
    tp = np.sum(flagged & corrupted)
    if tp == 0:
      continue
    f1 = 2 * tp / (flagged.sum() + corrupted.sum())
    if f1 > best[0]:
      best = (float(f1), float(t))
  return best


def _markdown(results):
  lines = [f"# Detection study: {results['method']} on {results['dataset']}, "
           f"{results['noise']:.0%} label noise", ""]
  flat = []
  for r in results["rows"]:
    flat.append({
        "variant": r["variant"],
        "changes": ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "-",
        "pretrain": r["pretrain_test_accuracy"], "model": r["bilevel_model_test_accuracy"],
        "init_auc": r["init"]["roc_auc"], "auc": r["final"]["roc_auc"],
        "ap": r["final"]["average_precision"], "p": r["final"]["precision"],
        "r": r["final"]["recall"], "f1": r["final"]["f1"], "moved": r["changed_side"],
        "clips": r["at_clips"], "best": f"{r['best_f1']:.4f} (t={r['best_f1_threshold']:.3g})"
        if r["best_f1_threshold"] is not None else "-"})
  lines.append(records.markdown_table(flat, [
      ("variant", "variant"), ("changes", "changes"), ("pretrain", "pretrained test acc"),
      ("model", "bilevel model test acc"), ("init_auc", "initial ROC AUC"),
      ("auc", "final ROC AUC"), ("ap", "avg precision"), ("p", "precision"), ("r", "recall"),
      ("f1", "F1"), ("moved", "changed side of 0.5"), ("clips", "at clips"),
      ("best", "best F1 (threshold)")]))
  lines += ["", "Precision, recall and F1 at the method's threshold (importance <= 0.5 flags a "
            "point). 'initial': the importances the pretrained classifier's agreement sets "
            "before the first bilevel step. 'best F1' picks its threshold on the very labels "
            "it is scored against: an upper bound, not a result. Each variant's workdir is "
            "`cells/<variant>/`.", ""]
  return "\n".join(lines)


def _figure(path, rows, title):
  names = [r["variant"] for r in rows]
  x = np.arange(len(rows))
  fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4))
  ax.bar(x - 0.2, [r["init"]["roc_auc"] for r in rows], 0.4, label="initial importances")
  ax.bar(x + 0.2, [r["final"]["roc_auc"] for r in rows], 0.4, label="after the bilevel epochs")
  ax.set_xticks(x, names, rotation=30, ha="right")
  ax.set_ylim(0.5, 1.0)
  ax.set_ylabel("ROC AUC (corrupted labels)")
  ax.legend(loc="lower right")
  ax.grid(axis="y", alpha=0.3)
  plots.finish(fig, path, title)


def summary(results):
  flat = [{"variant": r["variant"], "init_auc": r["init"]["roc_auc"],
           "auc": r["final"]["roc_auc"], "p": r["final"]["precision"],
           "r": r["final"]["recall"], "moved": r["changed_side"]} for r in results["rows"]]
  return records.summary_table(flat, [("variant", "variant"), ("init_auc", "initial ROC AUC"),
                                      ("auc", "final ROC AUC"), ("p", "precision"),
                                      ("r", "recall"), ("moved", "changed side")])
