"""The poisoning figures: poison images next to the images they started from."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position

from common import plots  # noqa: E402  pylint: disable=wrong-import-position


def _show(ax, image, low=None, high=None):
  image = np.asarray(image, np.float32)
  if image.shape[-1] == 1:
    ax.imshow(image[..., 0], cmap="gray", vmin=0.0 if low is None else low,
              vmax=1.0 if high is None else high)
  else:
    lo = float(image.min()) if low is None else low
    hi = float(image.max()) if high is None else high
    ax.imshow(np.clip((image - lo) / max(hi - lo, 1e-12), 0.0, 1.0))
  ax.set_xticks([])
  ax.set_yticks([])


def poison_grid(path, start, true_labels, poison_labels, rows, columns=10, title=""):
  """Top row: the starting images (``true -> poison label``); one row per poison set below.

  ``rows`` maps a name (the attacker or baseline) to poisons shaped like ``start``.
  """
  n = min(columns, len(start))
  names = list(rows)
  fig, axes = plt.subplots(1 + len(names), n, figsize=(1.2 * n + 1.4, 1.35 * (1 + len(names))),
                           squeeze=False)
  for j in range(n):
    _show(axes[0, j], start[j])
    axes[0, j].set_title(f"{int(true_labels[j])}->{int(poison_labels[j])}", fontsize=8)
    for i, name in enumerate(names, start=1):
      _show(axes[i, j], rows[name][j])
  axes[0, 0].set_ylabel("start", fontsize=9)
  for i, name in enumerate(names, start=1):
    axes[i, 0].set_ylabel(name, fontsize=9)
  plots.finish(fig, path, title, dpi=100, fontsize=9)


def clean_label_grid(path, triples, low, high, title=""):
  """One column per target: target image, base image, poison (rows), with its outcome."""
  n = len(triples)
  if n == 0:
    return
  fig, axes = plt.subplots(3, n, figsize=(1.6 * n + 1.2, 5.0), squeeze=False)
  for j, (target, base, poison, caption) in enumerate(triples):
    for i, image in enumerate((target, base, poison)):
      _show(axes[i, j], image, low, high)
    axes[0, j].set_title(caption, fontsize=8)
  for i, name in enumerate(("target", "base", "poison")):
    axes[i, 0].set_ylabel(name, fontsize=9)
  plots.finish(fig, path, title, dpi=100, fontsize=9)
