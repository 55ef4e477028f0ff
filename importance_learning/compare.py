"""One comparison: approaches x noise levels on one dataset, as tables and figures.

Two kinds of comparison config:

  compare.methods   importance-learning runs, one per (noise, method) cell, the first of which
                    trains the baselines (below; configs/compare.py, compare_cifar10.py)
  compare.approaches  declared approaches (importance_learning/approaches.py: a name, a
                    trainer, a score) over settings x seeds, every one on the config's one
                    network (configs/compare_deep_mnist.py)

  python importance_learning/run.py --config=importance_learning/configs/compare.py \
      --workdir=runs/compare

Every cell is an importance-learning run (``experiment.run``) of one method at one noise level,
in ``cells/noise<n>/<method>/`` (its own checkpoints, results, importances). The first method
that learns importance variables (penalty by default) also trains the baselines (noisy data,
clean split only, oracle, confident learning with and without the validation split in the
folds): they depend on the noise level, not on the method, so the other cells skip them. A
per-step reweighting method's cell keeps its own uniform-weight baseline.

The sweep is cached per cell (``records.Sweep``): re-running the command redoes nothing
finished, and adding methods or noise levels to ``compare.methods`` / ``compare.noise``
widens it in place (everything else in the config must stay the same). Writes
``comparison.json``, ``comparison.md``, ``accuracy.png`` (test accuracy of every approach
against the noise level) and ``detection_noise<n>.png`` (ROC and precision-recall curves of
every corruption score).
"""

import pathlib
import time

import numpy as np

from common import bilevel
from common import config_checks
from common import data as datalib
from common import plots
from common import records
from importance_learning import approaches
from importance_learning import experiment

# Fields a comparison may change between invocations (it grows in place).
SWEEP_FIELDS = ("methods", "noise")


def validate(config):
  if "approaches" in config.compare:
    config_checks.validated(approaches.validate, config)
    return
  config_checks.validated(_validate, config)


def _validate(config):
  methods, noise = list(config.compare.methods), list(config.compare.noise)
  if not methods or not noise:
    raise ValueError("compare.methods and compare.noise must each name at least one value.")
  usable = sorted(n for n, m in bilevel.METHODS.items()
                  if (m.needs_outer_variables or m.learns_example_weights) and n in config)
  unknown = [m for m in methods if m not in usable]
  if unknown:
    raise ValueError(f"compare.methods names {unknown}, which this config cannot run; choose "
                     f"from {usable}.")
  if len(set(methods)) < len(methods) or len(set(noise)) < len(noise):
    raise ValueError("compare.methods and compare.noise must not repeat a value.")
  for n in noise:
    if not 0.0 <= float(n) <= 1.0:
      raise ValueError(f"compare.noise holds {n}: noise levels are fractions in [0, 1].")
  for method in methods:     # every cell's own config is checked before any cell runs
    experiment.validate(_cell_config(config, method, float(noise[0]), True))


def _baseline_method(config):
  """The method whose cells train the baselines: the first one with importance variables,
  else the first one."""
  methods = list(config.compare.methods)
  return next((m for m in methods if bilevel.get_method(m).needs_outer_variables), methods[0])


def _cell_config(config, method, noise, with_baselines):
  cell = config.copy_and_resolve_references()
  with cell.unlocked():
    del cell["experiment"]
    del cell["compare"]
    cell.method = method
    cell.noise = float(noise)
    if not with_baselines:
      cell.baselines.run = ()
  return cell


def _cell_folder(workdir, method, noise):
  return pathlib.Path(workdir) / "cells" / f"noise{noise:g}" / method


def run(config, workdir, log=print):
  validate(config)
  if "approaches" in config.compare:   # a comparison of declared approaches
    return approaches.run(config, workdir, log)
  t_start = time.time()
  workdir = pathlib.Path(workdir)
  datalib.check_present(config.dataset, config.source, config.data_dir)  # before any write
  records.check_or_write_sweep_config(workdir, config, "compare", SWEEP_FIELDS)
  first = _baseline_method(config)
  # A finished cell is its run's results.json (written once, at the run's end).
  cells = records.Sweep(lambda key: _cell_folder(workdir, *key) / "results.json",
                        written_by_run=True)
  table = {}
  for noise in (float(n) for n in config.compare.noise):
    for method in config.compare.methods:
      log(f"[compare] noise {noise:g}, {method}")
      cell_config = _cell_config(config, method, noise, method == first)
      folder = _cell_folder(workdir, method, noise)
      result, cached = cells.run((method, noise),
                                 lambda: experiment.run(cell_config, folder, log=log))
      if cached:
        log(f"[compare] noise {noise:g}, {method}: cached in {folder}")
      table.setdefault(f"{noise:g}", {})[method] = result
  rows = _rows(table, first)
  results = {"experiment": "compare", "dataset": config.dataset, "model": config.model,
             "methods": list(config.compare.methods), "noise": [float(n) for n in
                                                                config.compare.noise],
             "rows": rows, "git_commit": records.git_commit(),
             "wall_seconds_this_invocation": time.time() - t_start}
  records.write_json(workdir / "comparison.json", results)
  records.write_text(workdir / "comparison.md", _markdown(results))
  _figures(workdir, rows, config, first)
  log(f"Results written to {workdir / 'comparison.json'}, comparison.md and figures.")
  return results


def _rows(table, first):
  """One row per (noise, approach): test accuracy and, for a corruption score, its detection
  metrics; the cell it came from."""
  rows = []
  for noise, by_method in table.items():
    base = by_method.get(first, {})
    if "baseline_test_accuracy" in base:
      rows.append({"noise": noise, "approach": "noisy data (baseline)",
                   "test_accuracy": base["baseline_test_accuracy"], "cell": first})
    for name, row in base.get("baselines", {}).items():
      rows.append({"noise": noise, "approach": experiment.BASELINE_LABELS[name],
                   "test_accuracy": row["test_accuracy"], "detection": row.get("detection"),
                   "score_file": f"{name}_quality.npy" if "detection" in row else None,
                   "cell": first})
    for method, res in by_method.items():
      if method != first and "baseline_test_accuracy" in res:
        # A per-step reweighting method's own baseline: its trainer with uniform weights.
        rows.append({"noise": noise, "approach": f"{method}: its trainer, uniform weights",
                     "test_accuracy": res["baseline_test_accuracy"], "cell": method})
      rows.append({"noise": noise, "approach": method,
                   "test_accuracy": res["method_test_accuracy"],
                   "detection": res["detection"], "score_file": "importances.npy",
                   "cell": method})
  return rows


def _markdown(results):
  lines = [f"# Comparison on {results['dataset']} ({results['model']})", ""]
  columns = [("noise", "noise"), ("approach", "approach"), ("test_accuracy", "test accuracy"),
             ("precision", "precision"), ("recall", "recall"), ("f1", "F1"),
             ("roc_auc", "ROC AUC"), ("average_precision", "avg precision")]
  flat = [{**r, **(r.get("detection") or {})} for r in results["rows"]]
  lines.append(records.markdown_table(flat, columns))
  lines += ["", "Test accuracy of each approach's final model; detection of the corrupted "
            "labels by its corruption score (methods: importances or mean weights; confident "
            "learning: cleanlab's label-quality score and flags). Each cell's workdir is "
            "`cells/noise<n>/<method>/`.", ""]
  return "\n".join(lines)


def _figures(workdir, rows, config, first):
  noise_levels = sorted({r["noise"] for r in rows}, key=float)
  approaches = list(dict.fromkeys(r["approach"] for r in rows))
  series = {}
  for approach in approaches:
    acc = {r["noise"]: r["test_accuracy"] for r in rows if r["approach"] == approach}
    if len(acc) == len(noise_levels):
      series[approach] = ([acc[n] for n in noise_levels], [0.0] * len(noise_levels))
  plots.sweep_errorbars(workdir / "accuracy.png", [float(n) for n in noise_levels], series,
                        xlabel="label noise", ylabel="test accuracy",
                        title=f"{config.dataset}: test accuracy per approach")
  for noise in noise_levels:
    scores = {}
    for r in rows:
      if r["noise"] != noise or not r.get("score_file"):
        continue
      folder = _cell_folder(workdir, r["cell"], float(noise))
      corrupted = np.load(folder / "corrupted.npy")
      # Scores are low for a likely corrupted point: negate them for the curves.
      scores[r["approach"]] = (corrupted, -np.load(folder / r["score_file"]))
    plots.detection_curves(workdir / f"detection_noise{noise}.png", scores,
                           title=f"{config.dataset}, {float(noise):.0%} label noise")


def summary(results):
  if results.get("experiment") == "compare_deep":
    return approaches.markdown(results)
  columns = [("noise", "noise"), ("approach", "approach"), ("test_accuracy", "test accuracy"),
             ("f1", "F1"), ("roc_auc", "ROC AUC"), ("average_precision", "avg precision")]
  flat = [{**r, **(r.get("detection") or {})} for r in results["rows"]]
  return records.summary_table(flat, columns)
