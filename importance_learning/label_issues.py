"""Which training labels a run distrusts, as a ranked table and a contact sheet.

``label_issues.csv`` holds every training point, most suspicious first: its id (the file's path
for an image folder, the source's id or row number otherwise), the label it was given, the
label the run's final classifier suggests and that label's probability, its score (the learned
importance, or the mean example weight; low = suspicious), its rank (1 = most suspicious) and
whether the run flags it (score <= the method's detection threshold). Where the run corrupted
the labels itself (``noise`` > 0) two more columns say which points were corrupted and their
true label, so the ranking can be judged.

A run computes several corruption scores: its method's (``rankings``: the learned importance or
mean example weight) and, when its confident-learning baselines ran, cleanlab's label quality
of each variant (out-of-fold probabilities of the run's own network, with and without the
trusted subset in every fold). Each is a column of the table; ``ranked_by`` names the one (or
the rank average of several) that orders the rows and sets ``flagged``.
"""

import csv

import numpy as np

from common import records
from common.errors import ConfigError

# What "auto" ranks by, measured (importance_learning/assets/ranking_study: embedded MNIST,
# 8x8 digits and a 30-feature table at 20% and 40% flips): for an importance-learning run, the
# rank average of its importances and confident learning with trusted folds (ROC AUC 0.978 to
# 0.995, above cleanlab on a logistic regression in all six cells: 0.838 to 0.989). The
# per-step methods' scores were not part of that measurement (L2RW's mean weight ranks at
# 0.69 on the table): their runs rank by the two confident-learning scores.
def default_ranking(method, per_step):
  return "rank_average(cl, cl_trusted)" if per_step else f"rank_average({method}, cl_trusted)"

COLUMNS = ("rank", "id", "given_label", "suggested_label", "suggested_probability", "score",
           "flagged")


def rank_average(*scores):
  """Mean of each score's normalised ascending rank (0 = the lowest score, the most
  suspicious; ties in the data's order): an ensemble that ignores the scores' scales."""
  ranks = [np.argsort(np.argsort(np.asarray(s, np.float64), kind="stable"), kind="stable")
           / max(len(s) - 1, 1) for s in scores]
  return np.mean(ranks, axis=0)


def top_k(score, k):
  """Flags of the ``k`` lowest scores (ties in the data's order)."""
  flags = np.zeros(len(score), bool)
  flags[ranking(score)[:int(k)]] = True
  return flags


CL_SHORT = {"confident_learning": "cl", "confident_learning_trusted": "cl_trusted"}


def rankings(method, method_score, method_flags, confident=None):
  """{name: (score, flags)}: every ranking a run can offer. ``method``'s own score and flags;
  each confident-learning variant's quality and cleanlab's flags (``confident``: {variant:
  (quality, flags)}); with both variants, rank averages, which flag as many points as the
  trusted-fold variant's cleanlab flags (its estimate of how many labels are wrong)."""
  out = {method: (np.asarray(method_score, np.float64), np.asarray(method_flags, bool))}
  for variant, (quality, flags) in (confident or {}).items():
    out[variant] = (np.asarray(quality, np.float64), np.asarray(flags, bool))
  if "confident_learning" in out and "confident_learning_trusted" in out:
    cl, clt = out["confident_learning"], out["confident_learning_trusted"]
    k = int(clt[1].sum())
    for parts in (("confident_learning", "confident_learning_trusted"),
                  (method, "confident_learning_trusted"),
                  (method, "confident_learning", "confident_learning_trusted")):
      name = "rank_average(" + ", ".join(CL_SHORT.get(p, p) for p in parts) + ")"
      score = rank_average(*(out[p][0] for p in parts))
      out[name] = (score, top_k(score, k))
  return out


def ranking(scores):
  """Row numbers from the most to the least suspicious: ascending score, ties in the data's
  order."""
  return np.argsort(np.asarray(scores, np.float64), kind="stable")


def possible(method, confident_learning=True):
  """Every ranking name a run of ``method`` can offer (with its confident-learning baselines,
  when ``confident_learning``), plus "auto"."""
  if not confident_learning:
    return ["auto", method]
  dummy = {v: (np.zeros(2), np.zeros(2, bool)) for v in CL_SHORT}
  return ["auto", *rankings(method, np.zeros(2), np.zeros(2, bool), dummy)]


def check_rule(rule, method, confident_learning=True):
  """``label_issues_ranking`` before any work (ConfigError, one line)."""
  names = possible(method, confident_learning)
  if rule not in names:
    raise ConfigError(f"label_issues_ranking={rule!r} is not a ranking a {method} run "
                      f"offers{'' if confident_learning else ' without confident learning'}; "
                      f"choose one of {names}.")


def precheck(config):
  """A config's ``label_issues_ranking`` (where it has one) against its method: the check the
  command line runs before it imports TensorFlow, and the run repeats."""
  if "label_issues_ranking" in config:
    check_rule(config.label_issues_ranking, config.method,
               "confident_learning" in config.baselines.run)


def choose(offered, rule, method, log=print, per_step=False):
  """The name of the ranking of ``offered`` (``rankings``) that orders the table: ``rule``
  is one of its names, or "auto": ``default_ranking`` where the run offers it, else
  ``method``'s own score (also when ``rule`` needs a score this run did not compute, with a
  note). ``per_step``: ``method`` computes per-step weights (or temperatures), not
  importances."""
  if rule != "auto" and rule not in offered:
    log(f"NOTE: label_issues_ranking={rule!r} needs a score this run did not compute (no "
        "trusted subset for confident learning's trusted folds?); ranking as 'auto'.")
    rule = "auto"
  if rule == "auto":
    default = default_ranking(method, per_step)
    return default if default in offered else method
  return rule


def table(scores, given, probs, class_names, threshold, ids=None, true_labels=None,
          flagged=None, columns=None):
  """Rows (dicts) of every point, in ``ranking`` order: flagged where ``scores`` <=
  ``threshold``, or where the mask ``flagged`` says; ``columns``: {name: per-point score},
  each written as a column."""
  scores = np.asarray(scores, np.float64)
  flagged = scores <= threshold if flagged is None else np.asarray(flagged, bool)
  columns = {k: np.asarray(v, np.float64) for k, v in (columns or {}).items()}
  order = ranking(scores)
  suggested = np.argmax(probs, axis=1)
  ids = np.arange(len(scores)).astype(str) if ids is None else np.asarray(ids).astype(str)
  rows = []
  for rank, i in enumerate(order, start=1):
    row = {"rank": rank, "id": ids[i], "given_label": class_names[given[i]],
           "suggested_label": class_names[suggested[i]],
           "suggested_probability": round(float(probs[i, suggested[i]]), 4),
           "score": round(float(scores[i]), 6), "flagged": bool(flagged[i]),
           **{k: round(float(v[i]), 6) for k, v in columns.items()}}
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
          true_labels=None, title="", flagged=None, columns=None):
  """``label_issues.csv`` in ``workdir`` and, for images, ``label_issues.png``; returns the
  rows."""
  rows = table(scores, given, probs, class_names, threshold, ids, true_labels, flagged,
               columns)
  write_csv(workdir / "label_issues.csv", rows)
  if images is not None and np.ndim(images) == 4 and rows:
    contact_sheet(workdir / "label_issues.png", images, rows, ranking(scores),
                  title=title or "most suspicious labels: given -> suggested")
  return rows
