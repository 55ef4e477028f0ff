"""Which training labels a run distrusts, as a ranked table and a contact sheet.

``label_issues.csv`` holds every training point, most suspicious first: its id (the file's path
for an image folder, the source's id or row number otherwise), the label it was given, the
label the run's final classifier suggests and that label's probability, its score (the learned
importance, or the mean example weight; low = suspicious), its rank (1 = most suspicious) and
whether the run flags it (score <= the method's detection threshold). Where the run corrupted
the labels itself (``noise`` > 0) two more columns say which points were corrupted and their
true label, so the ranking can be judged.
"""

import csv

import numpy as np

from common import records

COLUMNS = ("rank", "id", "given_label", "suggested_label", "suggested_probability", "score",
           "flagged")


def ranking(scores):
  """Row numbers from the most to the least suspicious: ascending score, ties in the data's
  order."""
  return np.argsort(np.asarray(scores, np.float64), kind="stable")


def table(scores, given, probs, class_names, threshold, ids=None, true_labels=None):
  """Rows (dicts) of every point, in ``ranking`` order."""
  scores = np.asarray(scores, np.float64)
  order = ranking(scores)
  suggested = np.argmax(probs, axis=1)
  ids = np.arange(len(scores)).astype(str) if ids is None else np.asarray(ids).astype(str)
  rows = []
  for rank, i in enumerate(order, start=1):
    row = {"rank": rank, "id": ids[i], "given_label": class_names[given[i]],
           "suggested_label": class_names[suggested[i]],
           "suggested_probability": round(float(probs[i, suggested[i]]), 4),
           "score": round(float(scores[i]), 6), "flagged": bool(scores[i] <= threshold)}
    if true_labels is not None:
      row["corrupted"] = bool(true_labels[i] != given[i])
      row["true_label"] = class_names[true_labels[i]]
    rows.append(row)
  return rows


def write_csv(path, rows):
  """The table as CSV, written atomically."""
  with records.atomic_path(path) as tmp:
    with open(tmp, "w", newline="") as fh:
      writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else list(COLUMNS))
      writer.writeheader()
      writer.writerows(rows)


def contact_sheet(path, images, rows, indices, count=32, columns=8, title=""):
  """The ``count`` most suspicious images with their given and suggested labels (``rows`` from
  ``table``; ``indices[j]``: the row of ``images`` that ``rows[j]`` describes); red titles mark
  the points the run corrupted, when it did."""
  from common import plots  # pylint: disable=import-outside-toplevel  (matplotlib)
  top = rows[:count]
  n_rows = max(1, -(-len(top) // columns))
  fig, axes = plots.plt.subplots(n_rows, columns, figsize=(1.6 * columns, 1.9 * n_rows),
                                 squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  for ax, row, index in zip(axes.ravel(), top, indices):
    image = np.asarray(images[index], np.float64)
    lo, hi = image.min(), image.max()
    if lo < 0.0 or hi > 1.0:      # not pixels in [0, 1] (e.g. 0-255 or standardised): rescale
      image = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image,
              cmap="gray" if image.shape[-1] == 1 else None)
    color = "red" if row.get("corrupted") else "black"
    ax.set_title(f"#{row['rank']} {row['given_label']}\n-> {row['suggested_label']}",
                 fontsize=7, color=color)
  plots.finish(fig, path, title, dpi=100, fontsize=9)


def write(workdir, scores, given, probs, class_names, threshold, images=None, ids=None,
          true_labels=None, title=""):
  """``label_issues.csv`` in ``workdir`` and, for images, ``label_issues.png``; returns the
  rows."""
  rows = table(scores, given, probs, class_names, threshold, ids, true_labels)
  write_csv(workdir / "label_issues.csv", rows)
  if images is not None and np.ndim(images) == 4 and rows:
    contact_sheet(workdir / "label_issues.png", images, rows, ranking(scores),
                  title=title or "most suspicious labels: given -> suggested")
  return rows
