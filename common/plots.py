"""Figures a person would rather look at than a table (matplotlib, no display needed)."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position


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
  """Histogram of learned importances (clean vs corrupted) and test accuracy per epoch."""
  fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
  bins = np.linspace(0.0, 1.0, 41)
  ax0.hist(importances[~corrupted], bins=bins, alpha=0.6, label=f"clean ({(~corrupted).sum()})")
  ax0.hist(importances[corrupted], bins=bins, alpha=0.6, label=f"corrupted ({corrupted.sum()})")
  ax0.set_xlabel("learned importance a")
  ax0.set_ylabel("training points")
  ax0.legend()
  ax0.set_title("importances at the end")
  for phase, (steps, vals) in curves.items():
    ax1.plot(np.arange(1, len(vals) + 1), vals, label=phase)
  ax1.set_xlabel("epoch of the phase")
  ax1.set_ylabel("test accuracy")
  ax1.legend()
  ax1.set_title("test accuracy per epoch")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
