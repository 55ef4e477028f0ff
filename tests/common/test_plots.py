"""What the figures show: each figure is captured as it is saved and its plotted data, labels
and titles are checked against the inputs (not just that a PNG of some size was written)."""

import csv

import matplotlib.colors as mcolors
import numpy as np
import pytest
from sklearn import metrics as skm

from common import plots
from common import records
from importance_learning import label_issues


@pytest.fixture
def saved(monkeypatch):
  """The figures ``records.save_figure`` is asked to save, by path; nothing is written."""
  figures = {}

  def capture(fig, path, **kwargs):
    figures[str(path)] = fig

  monkeypatch.setattr(records, "save_figure", capture)
  return figures


def _legend_labels(ax):
  return [t.get_text() for t in ax.get_legend().get_texts()]


def _bar_heights(container):
  return np.array([p.get_height() for p in container.patches])


def test_importance_figure_histograms_and_accuracy_curves(saved):
  rng = np.random.default_rng(0)
  importances = np.concatenate([rng.uniform(0.5, 1.4, 30), rng.uniform(0.0, 0.3, 10)])
  corrupted = np.zeros(40, bool)
  corrupted[30:] = True
  curves = {"pretrain": ([10, 20, 30], [0.5, 0.6, 0.7]), "retrain": ([5, 10], [0.8, 0.85])}
  plots.importance_figure("imp.png", importances, corrupted, curves, title="run X")
  fig = saved["imp.png"]
  ax0, ax1 = fig.axes
  assert fig._suptitle.get_text() == "run X"
  # Histograms over 40 bins from 0 to max(1, largest importance), clean first.
  bins = np.linspace(0.0, importances.max(), 41)
  clean, dirty = ax0.containers
  for container, values in ((clean, importances[~corrupted]), (dirty, importances[corrupted])):
    np.testing.assert_array_equal(_bar_heights(container), np.histogram(values, bins)[0])
    np.testing.assert_allclose([p.get_x() for p in container.patches], bins[:-1])
  assert _bar_heights(clean).sum() == 30 and _bar_heights(dirty).sum() == 10
  assert _legend_labels(ax0) == ["clean (30)", "corrupted (10)"]
  assert (ax0.get_xlabel(), ax0.get_ylabel(), ax0.get_title()) == (
      "learned importance a", "training points", "importances at the end")
  # One accuracy line per phase against the epoch of the phase (1, 2, ...).
  lines = ax1.get_lines()
  assert [l.get_label() for l in lines] == ["pretrain", "retrain"]
  np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3])
  np.testing.assert_array_equal(lines[0].get_ydata(), [0.5, 0.6, 0.7])
  np.testing.assert_array_equal(lines[1].get_xdata(), [1, 2])
  np.testing.assert_array_equal(lines[1].get_ydata(), [0.8, 0.85])
  assert _legend_labels(ax1) == ["pretrain", "retrain"]
  assert (ax1.get_xlabel(), ax1.get_ylabel(), ax1.get_title()) == (
      "epoch of the phase", "test accuracy", "test accuracy per epoch")


def test_importance_figure_bins_span_zero_to_one_for_small_importances(saved):
  importances = np.array([0.05, 0.1, 0.12, 0.5, 0.95])
  corrupted = np.array([True, True, False, False, False])
  plots.importance_figure("imp.png", importances, corrupted, {})
  ax0, ax1 = saved["imp.png"].axes
  bins = np.linspace(0.0, 1.0, 41)
  np.testing.assert_array_equal(_bar_heights(ax0.containers[0]),
                                np.histogram(importances[~corrupted], bins)[0])
  np.testing.assert_array_equal(_bar_heights(ax0.containers[1]),
                                np.histogram(importances[corrupted], bins)[0])
  assert not ax1.get_lines() and ax1.get_legend() is None


def test_detection_curves_are_sklearns_roc_and_pr_curves(saved):
  corrupted = np.array([True, False, True, False, False, True, False, False])
  score_a = np.array([0.9, 0.1, 0.8, 0.4, 0.4, 0.3, 0.2, 0.6])     # ties at 0.4
  score_b = -score_a
  scores = {"a": (corrupted, score_a), "b": (corrupted, score_b),
            "degenerate": (np.zeros(8, bool), score_a)}             # no positives: skipped
  plots.detection_curves("det.png", scores, title="detection")
  fig = saved["det.png"]
  roc, pr = fig.axes
  assert fig._suptitle.get_text() == "detection"
  for label, score, line in zip(("a", "b"), (score_a, score_b), roc.get_lines()):
    fpr, tpr, _ = skm.roc_curve(corrupted, score)
    np.testing.assert_allclose(line.get_xdata(), fpr)
    np.testing.assert_allclose(line.get_ydata(), tpr)
    assert line.get_label() == f"{label} ({skm.roc_auc_score(corrupted, score):.3f})"
  for label, score, line in zip(("a", "b"), (score_a, score_b), pr.get_lines()):
    precision, recall, _ = skm.precision_recall_curve(corrupted, score)
    np.testing.assert_allclose(line.get_xdata(), recall)
    np.testing.assert_allclose(line.get_ydata(), precision)
    assert line.get_label() == (
        f"{label} ({skm.average_precision_score(corrupted, score):.3f})")
  # The areas by hand: of the 3 x 5 (corrupted, clean) pairs, a orders 12 correctly.
  assert _legend_labels(roc) == ["a (0.800)", "b (0.200)"]
  assert len(roc.get_lines()) == 3                      # two curves and the chance diagonal
  diagonal = roc.get_lines()[2]
  np.testing.assert_array_equal(diagonal.get_xdata(), [0, 1])
  np.testing.assert_array_equal(diagonal.get_ydata(), [0, 1])
  assert len(pr.get_lines()) == 2
  assert (roc.get_xlabel(), roc.get_ylabel(), roc.get_title()) == (
      "false positive rate", "true positive rate", "ROC (AUC)")
  assert (pr.get_xlabel(), pr.get_ylabel(), pr.get_title()) == (
      "recall", "precision", "precision-recall (average precision)")


def test_sweep_errorbars_plot_means_and_std_bars(saved):
  xs = [0.1, 0.2, 0.4]
  series = {"penalty": ([0.9, 0.8, 0.6], [0.01, 0.02, 0.05]),
            "l2rw": ([0.85, 0.7, 0.5], [0.03, 0.0, 0.1])}
  plots.sweep_errorbars("sweep.png", xs, series, "noise", "test accuracy", title="sweep")
  (ax,) = saved["sweep.png"].axes
  assert len(ax.containers) == 2
  for container, (name, (means, stds)) in zip(ax.containers, series.items()):
    data_line, _, (bars,) = container.lines
    np.testing.assert_allclose(np.asarray(data_line.get_xdata(), float), xs)
    np.testing.assert_allclose(np.asarray(data_line.get_ydata(), float), means)
    assert data_line.get_marker() == "o"
    segments = np.asarray(bars.get_segments())            # one vertical bar per x
    np.testing.assert_allclose(segments[:, 0, 0], xs)
    np.testing.assert_allclose(segments[:, 1, 0], xs)
    np.testing.assert_allclose(segments[:, 0, 1], np.subtract(means, stds))
    np.testing.assert_allclose(segments[:, 1, 1], np.add(means, stds))
    assert container.get_label() == name
  assert _legend_labels(ax) == ["penalty", "l2rw"]
  assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == (
      "noise", "test accuracy", "sweep")


def test_trial_curves_grid_plots_every_trial_and_the_mean(saved):
  steps = np.array([0, 1, 11])
  err = np.array([[4.0, 2.0, 1.0], [8.0, 4.0, 0.5]])
  seconds = np.array([[0.0, 0.1, 0.2], [0.0, 0.3, 0.4]])
  grid = {(2, "gd"): {"steps": steps, "error": err, "seconds": seconds}}
  plots.trial_curves_grid("grid.png", grid, rows=[2], cols=["gd", "rmd"], x="steps",
                          y="error", row_label="T = {}", title="SMD20")
  fig = saved["grid.png"]
  gd, rmd = fig.axes
  assert fig._suptitle.get_text() == "SMD20"
  lines = gd.get_lines()
  assert len(lines) == 3 and not rmd.get_lines()          # 2 trials + their mean; rmd empty
  for line, trial in zip(lines[:2], err):
    np.testing.assert_array_equal(line.get_xdata(), steps)
    np.testing.assert_array_equal(line.get_ydata(), trial)
  np.testing.assert_array_equal(lines[2].get_ydata(), [6.0, 3.0, 0.75])
  assert lines[2].get_linewidth() > lines[0].get_linewidth()
  assert (gd.get_title(), rmd.get_title()) == ("gd", "rmd")
  assert gd.get_ylabel() == "T = 2\nerror" and gd.get_xlabel() == "iteration"
  assert gd.get_yscale() == "log"
  # Against time: each trial at its own seconds, the mean at the mean time.
  plots.trial_curves_grid("time.png", grid, rows=[2], cols=["gd"], x="seconds", y="error")
  (ax,) = saved["time.png"].axes
  lines = ax.get_lines()
  np.testing.assert_array_equal(lines[1].get_xdata(), seconds[1])
  np.testing.assert_allclose(lines[2].get_xdata(), [0.0, 0.2, 0.3])
  assert ax.get_xlabel() == "wall-clock seconds"


def test_mean_curves_panels_one_line_per_method_and_t(saved):
  steps = np.array([0, 1, 11])
  curve = lambda scale: {"steps": steps, "error": scale * np.array([[4.0, 2.0, 1.0],
                                                                     [2.0, 2.0, 1.0]])}
  panels = {"smd20": {("gd", 1): curve(1.0), ("gd", 5): curve(2.0), ("rmd", 1): curve(3.0)},
            "smd23": {("gd", 1): curve(0.5)}}
  plots.mean_curves_panels("summary.png", panels, x="steps", y="error")
  left, right = saved["summary.png"].axes
  lines = left.get_lines()
  assert [l.get_label() for l in lines] == ["gd T=1", "gd T=5", "rmd T=1"]
  for line, scale in zip(lines, (1.0, 2.0, 3.0)):
    np.testing.assert_array_equal(line.get_xdata(), steps)
    np.testing.assert_allclose(line.get_ydata(), scale * np.array([3.0, 2.0, 1.0]))
  # Colour by method, line style by T.
  assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
  assert lines[0].get_linestyle() == lines[2].get_linestyle() != lines[1].get_linestyle()
  assert (left.get_title(), right.get_title()) == ("SMD20", "SMD23")
  assert left.get_ylabel() == "error"


def _issue_rows():
  # Scores rank points 3, 0, 4, 1, 2; points 3 and 4 were corrupted.
  scores = np.array([0.2, 0.6, 0.9, 0.1, 0.3])
  given = np.array([0, 1, 1, 2, 0])
  true = np.array([0, 1, 1, 0, 2])
  probs = np.eye(3)[[0, 1, 1, 0, 2]] * 0.8 + 0.2 / 3
  rows = label_issues.table(scores, given, probs, ["cat", "dog", "fox"], 0.5,
                            true_labels=true)
  return rows, np.argsort(scores, kind="stable")


def test_contact_sheet_panels_titles_colours_and_images(saved):
  rows, order = _issue_rows()
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(5, 4, 4, 3)).astype(np.float64)   # 0-255: rescaled
  label_issues.contact_sheet("sheet.png", images, rows, order, count=4, columns=3,
                             title="suspicious")
  fig = saved["sheet.png"]
  assert fig._suptitle.get_text() == "suspicious"
  axes = fig.axes
  assert len(axes) == 6                                   # ceil(4 / 3) = 2 rows of 3
  shown = [ax for ax in axes if ax.images]
  assert shown == axes[:4]
  titles = [ax.get_title() for ax in shown]
  assert titles == ["#1 fox\n-> cat", "#2 cat\n-> cat", "#3 cat\n-> fox", "#4 dog\n-> dog"]
  colours = [mcolors.to_hex(ax.title.get_color()) for ax in shown]
  assert colours == ["#ff0000", "#000000", "#ff0000", "#000000"]   # points 3 and 4 corrupted
  for ax, index in zip(shown, order):
    image = images[index]
    expected = (image - image.min()) / (image.max() - image.min())
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), expected)
  assert all(not ax.axison for ax in axes)


def test_contact_sheet_grayscale_and_unmarked_without_true_labels(saved):
  scores = np.array([0.5, 0.1])
  probs = np.array([[0.9, 0.1], [0.3, 0.7]])
  rows = label_issues.table(scores, np.array([1, 0]), probs, ["a", "b"], 0.5)
  order = np.argsort(scores, kind="stable")
  images = np.stack([np.full((3, 3, 1), 0.25), np.full((3, 3, 1), 0.75)])   # already in [0, 1]
  label_issues.contact_sheet("gray.png", images, rows, order, columns=2)
  shown = [ax for ax in saved["gray.png"].axes if ax.images]
  assert [ax.get_title() for ax in shown] == ["#1 a\n-> b", "#2 b\n-> a"]
  assert all(mcolors.to_hex(ax.title.get_color()) == "#000000" for ax in shown)
  np.testing.assert_array_equal(np.asarray(shown[0].images[0].get_array()), np.full((3, 3), 0.75))
  assert shown[0].images[0].get_cmap().name == "gray"


def test_label_issues_png_shows_each_ranks_own_image(saved, tmp_path):
  # Six images of six colours (in [0, 1]: shown as they are); the scores rank them 3, 1, 5, 4,
  # 0, 2. The panel titled "#r" must show the image that label_issues.csv ranks r.
  images = np.stack([np.broadcast_to([0.1 * i + 0.05, 0.5, 0.9 - 0.1 * i], (4, 4, 3))
                     for i in range(6)])
  scores = np.array([0.7, 0.2, 0.9, 0.1, 0.5, 0.3])
  given = np.array([0, 1, 2, 0, 1, 2])
  probs = np.eye(3)[[1, 1, 0, 2, 1, 2]] * 0.7 + 0.1
  ids = [f"img{i}" for i in range(6)]
  label_issues.write(tmp_path, scores, given, probs, ["ant", "bee", "cow"], 0.25,
                     images=images, ids=ids)
  with open(tmp_path / "label_issues.csv", newline="") as fh:
    image_of_rank = {int(r["rank"]): ids.index(r["id"]) for r in csv.DictReader(fh)}
  assert [image_of_rank[r] for r in range(1, 7)] == [3, 1, 5, 4, 0, 2]
  shown = [ax for ax in saved[str(tmp_path / "label_issues.png")].axes if ax.images]
  assert len(shown) == 6
  for ax in shown:
    rank = int(ax.get_title().split()[0].lstrip("#"))
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()),
                                  images[image_of_rank[rank]], err_msg=ax.get_title())
  # Rank 1 (point 3, score 0.1): given "ant", suggested "cow".
  assert shown[0].get_title() == "#1 ant\n-> cow"
  np.testing.assert_array_equal(np.asarray(shown[0].images[0].get_array()), images[3])
