"""Figures a person would rather look at than a table (matplotlib, no display needed)."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position

from common import records  # noqa: E402  pylint: disable=wrong-import-position


def finish(fig, path, title="", dpi=110, rect=None, fontsize=None):
  """The end of every figure: its title, a tight layout, an atomic save, the figure closed."""
  if title:
    fig.suptitle(title, **({} if fontsize is None else {"fontsize": fontsize}))
  if rect is None:
    fig.tight_layout()
  else:
    fig.tight_layout(rect=rect)
  records.save_figure(fig, path, dpi=dpi)
  plt.close(fig)


def epoch_curves(metrics_path, key="test_accuracy"):
  """{phase: (epoch_end_steps, values)} of ``key`` from a run's metrics.jsonl."""
  curves = {}
  with open(metrics_path) as fh:
    for line in fh:
      rec = json.loads(line)
      if rec.get("kind") == "epoch" and key in rec:
        steps, vals = curves.setdefault(rec["phase"], ([], []))
        steps.append(rec["step"])
        vals.append(rec[key])
  return curves


def importance_figure(path, importances, corrupted, curves, title=""):
  """Histogram of learned importances (clean vs corrupted; ``corrupted`` None: labels without
  ground truth, one histogram) and test accuracy per epoch."""
  fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
  bins = np.linspace(0.0, max(1.0, float(np.max(importances))), 41)
  if corrupted is None:
    ax0.hist(importances, bins=bins, alpha=0.6, label=f"training points ({len(importances)})")
  else:
    ax0.hist(importances[~corrupted], bins=bins, alpha=0.6,
             label=f"clean ({(~corrupted).sum()})")
    ax0.hist(importances[corrupted], bins=bins, alpha=0.6,
             label=f"corrupted ({corrupted.sum()})")
  ax0.set_xlabel("learned importance a")
  ax0.set_ylabel("training points")
  ax0.legend()
  ax0.set_title("importances at the end")
  for phase, (steps, vals) in curves.items():
    ax1.plot(np.arange(1, len(vals) + 1), vals, label=phase)
  ax1.set_xlabel("epoch of the phase")
  ax1.set_ylabel("test accuracy")
  if curves:
    ax1.legend()
  ax1.set_title("test accuracy per epoch")
  finish(fig, path, title, dpi=110)


def _trial_axes(ax, c, x, y, color):
  """Every trial faint, the mean over trials bold (x: 'steps' or 'seconds')."""
  ys = np.asarray(c[y], np.float64)
  xs = c[x] if x == "seconds" else np.broadcast_to(c["steps"], ys.shape)
  for xi, yi in zip(xs, ys):
    ax.plot(xi, yi, color=color, alpha=0.25, lw=0.7)
  # The mean against the mean time per record (trials differ slightly in speed).
  ax.plot(np.mean(xs, axis=0), ys.mean(axis=0), color=color, lw=2.0)


def trial_curves_grid(path, grid, rows, cols, x, y, row_label="{}", title=""):
  """A rows x cols grid of panels; ``grid[(row, col)]`` is a dict of arrays [trials, records]
  holding ``x`` (or 'steps', shared) and ``y``. Log-scaled y, shared across panels."""
  fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.2 * len(cols), 2.5 * len(rows)),
                           sharey=True, squeeze=False)
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for i, r in enumerate(rows):
    for j, col in enumerate(cols):
      ax = axes[i][j]
      if (r, col) in grid:
        _trial_axes(ax, grid[(r, col)], x, y, colors[j % len(colors)])
      ax.set_yscale("log")
      if i == 0:
        ax.set_title(str(col))
      if j == 0:
        ax.set_ylabel(f"{row_label.format(r)}\n{y}")
      if i == len(rows) - 1:
        ax.set_xlabel("iteration" if x == "steps" else "wall-clock seconds")
      ax.grid(alpha=0.3)
  finish(fig, path, title, dpi=100)


def mean_curves_panels(path, panels, x, y, title=""):
  """One panel per key of ``panels``; in each, the trial-mean ``y`` against ``x`` of every
  (method, T) curve: colour by method, line style by T."""
  names = list(panels)
  fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names) + 1.6, 3.4), squeeze=False)
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  styles = ["-", "--", ":", "-."]
  for ax, name in zip(axes[0], names):
    methods = list(dict.fromkeys(m for m, _ in panels[name]))
    ts = list(dict.fromkeys(t for _, t in panels[name]))
    for (m, t), c in panels[name].items():
      ys = np.asarray(c[y], np.float64)
      xs = c[x] if x == "seconds" else np.broadcast_to(c["steps"], ys.shape)
      ax.plot(np.mean(xs, axis=0), ys.mean(axis=0), color=colors[methods.index(m) % len(colors)],
              ls=styles[ts.index(t) % len(styles)], lw=1.4, label=f"{m} T={t}")
    ax.set_yscale("log")
    ax.set_title(str(name).upper())
    ax.set_xlabel("iteration" if x == "steps" else "wall-clock seconds")
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel(y)
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(handles, labels, fontsize=7, loc="center right")
  finish(fig, path, title, dpi=100, rect=(0, 0, 1 - 1.5 / fig.get_figwidth(), 1))


def sweep_errorbars(path, xs, series, xlabel, ylabel, title="", categorical=False):
  """Mean +- std against a swept value; ``series[name] = (means, stds)``, one line each.
  ``categorical``: the values evenly spaced, labelled with their values (for 0.9 ... 0.995),
  each series shifted a little sideways so that the error bars do not hide each other."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for k, (name, (means, stds)) in enumerate(series.items()):
    at = xs
    if categorical:
      at = np.arange(len(xs)) + 0.06 * (k - (len(series) - 1) / 2)
    ax.errorbar(at, means, yerr=stds, marker="o", capsize=3, label=name)
  if categorical:
    ax.set_xticks(np.arange(len(xs)), [f"{x:g}" for x in xs])
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.grid(alpha=0.3)
  ax.legend()
  if title:
    ax.set_title(title)
  finish(fig, path, dpi=110)


def accuracy_curves(path, series, title="", ylabel="test accuracy"):
  """One line per approach: ``series[label] = (epochs, values)``."""
  fig, ax = plt.subplots(figsize=(8, 4.8))
  for label, (epochs, values) in series.items():
    ax.plot(epochs, values, label=label, lw=1.4)
  ax.set_xlabel("epoch")
  ax.set_ylabel(ylabel)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="lower right")
  finish(fig, path, title, dpi=110)


def curve_panels(path, panels, xlabel, ylabel, title=""):
  """One panel per key of ``panels`` (its title), each ``{label: (xs, ys)}``, one line each."""
  fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False,
                           sharey=True)
  for ax, (name, series) in zip(axes[0], panels.items()):
    for label, (xs, ys) in series.items():
      ax.plot(xs, ys, label=label, lw=1.3)
    ax.set_title(name, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel(ylabel)
  axes[0][-1].legend(fontsize=7)
  finish(fig, path, title, dpi=110)


def detection_curves(path, scores, title=""):
  """ROC and precision-recall curves of corruption scores: ``scores[label] = (corrupted mask,
  score)``, higher score = more likely corrupted; each curve labelled with its area."""
  from sklearn import metrics as skm  # pylint: disable=import-outside-toplevel
  fig, (roc, pr) = plt.subplots(1, 2, figsize=(11, 4.2))
  for label, (corrupted, score) in scores.items():
    corrupted = np.asarray(corrupted, bool)
    if not 0 < corrupted.sum() < len(corrupted):
      continue
    fpr, tpr, _ = skm.roc_curve(corrupted, score)
    roc.plot(fpr, tpr, label=f"{label} ({skm.roc_auc_score(corrupted, score):.3f})")
    precision, recall, _ = skm.precision_recall_curve(corrupted, score)
    pr.plot(recall, precision,
            label=f"{label} ({skm.average_precision_score(corrupted, score):.3f})")
  roc.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
  roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (AUC)")
  pr.set(xlabel="recall", ylabel="precision", title="precision-recall (average precision)")
  for ax in (roc, pr):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  finish(fig, path, title, dpi=110)


def data_parameter_figure(path, snapshots, learn_class, learn_inst, title=""):
  """How the learned temperatures evolve: per epoch, the median and the 5-95% and 25-75%
  bands of the class sigmas, and of the instance sigmas of clean and corrupted points."""
  panels = ([("class", "class sigma")] if learn_class else []) + \
      ([("inst", "instance sigma")] if learn_inst else [])
  fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.5 * max(1, len(panels)), 3.8),
                           squeeze=False)
  epochs = [s["epoch"] for s in snapshots]
  for ax, (key, label) in zip(axes[0], panels):
    series = [("class", "all classes")] if key == "class" else \
        [("inst_clean", "clean points"), ("inst_corrupted", "corrupted points")]
    for field, name in series:
      rows = [(e, s[field]) for e, s in zip(epochs, snapshots) if s.get(field)]
      if not rows:
        continue
      x = np.array([e for e, _ in rows])
      q = np.array([v for _, v in rows])      # percentiles 5, 25, 50, 75, 95
      line, = ax.plot(x, q[:, 2], label=f"{name} (median)")
      ax.fill_between(x, q[:, 0], q[:, 4], color=line.get_color(), alpha=0.12)
      ax.fill_between(x, q[:, 1], q[:, 3], color=line.get_color(), alpha=0.25)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=8)
  finish(fig, path, title + " (bands: 5-95% and 25-75%)" if title else "", dpi=110)
