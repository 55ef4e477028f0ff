"""Named evaluators: what a run measures at the end of an epoch, chosen by config.

A family's config lists evaluator names (``config.evaluators``); the family describes what it
can offer them in a :class:`Context` (the model under training, its test set, a corruption
score, ...); :func:`build` turns the names a phase can serve into :class:`Evaluator` objects,
and the runner (``Runner.run_phase(..., evaluators=...)``) calls each at its cadence, records
the scalars it returns in ``metrics.jsonl`` and TensorBoard, prints them on the epoch lines,
and writes the arrays it returns as TensorBoard histograms.

  evaluators = evaluatorslib.build(config.evaluators, evaluatorslib.Context(
      model=model, test=metrics.TestSet(x_test, y_test), scores=problem.scores,
      corrupted=corrupted), every=config.eval_every_epochs)
  runner.run_phase("bilevel", step, batch_fn, num_steps, steps_per_epoch,
                   evaluators=evaluators)

The registered names (``REGISTRY``), with the keys they record:

  accuracy          test_accuracy (and test_top<k>_accuracy for the test set's other k);
                    ``Context.accuracy_key`` renames it (poisoning: test_success)
  val_loss          val_loss: mean cross-entropy on ``Context.val`` (x, y)
  importance_stats  mean_importance, frac_above_0.1 of the corruption score, and its histogram
  detection         detect_precision, detect_recall, detect_roc_auc (metrics.detection)
  temperatures      class/instance sigma mean/highest/lowest, their clean/corrupted means and
                    ROC AUC, histograms, and one percentile line per epoch in a JSONL file
  task_accuracy     test_accuracy, test_accuracy_ci95 over few-shot test tasks

Cheap evaluators (importance_stats, detection, temperatures) run at every epoch end; the others
every ``every`` epochs and at the phase's last epoch.
"""

import dataclasses
import json
from typing import Any, Callable, Optional

import numpy as np

from common import metrics as metriclib
from common import records
from common.errors import ConfigError


@dataclasses.dataclass
class Context:
  """What a phase offers its evaluators. A field left None is not available there, and an
  evaluator that needs it is not built for that phase."""

  model: Any = None                 # the Keras model under training
  test: Optional[metriclib.TestSet] = None
  accuracy_key: str = "test_accuracy"
  val: Optional[tuple] = None       # (x, y) for val_loss
  loss: Optional[Callable] = None   # loss(model, x, y) -> float, for val_loss
  scores: Optional[Callable] = None  # () -> per-training-point trust score (low = suspect)
  scores_name: str = "importances"  # its TensorBoard histogram ("example_weights": mean weights)
  corrupted: Optional[np.ndarray] = None   # bool mask of the corrupted training labels
  threshold: float = 0.5            # a score at most this flags a point
  data_params: Any = None           # problems.DataParameters (curriculum)
  snapshots_path: Any = None        # where temperatures appends its percentile lines
  histograms_prefix: str = "data_parameters"
  tasks: Optional[Callable] = None  # () -> per-task accuracies over the few-shot test tasks


class Evaluator:
  """A named measurement: ``evaluator(epoch)`` -> {name: float or np.ndarray}."""

  def __init__(self, name, fn, every=1, last=None):
    self.name, self.fn, self.every, self.last = name, fn, max(1, int(every)), last
    self.latest = None

  def due(self, epoch, last_epoch):
    """Runs every ``every`` epochs and at the last one (``self.last`` when set, else the
    phase's)."""
    last = self.last if self.last is not None else last_epoch
    return epoch % self.every == 0 or epoch == last

  def __call__(self, epoch):
    self.latest = self.fn(epoch)
    return self.latest


# name -> (needs: Context fields that must not be None, cheap, factory(ctx) -> fn(epoch))
REGISTRY = {}


def register(name, needs, cheap=False):
  def wrap(factory):
    REGISTRY[name] = (tuple(needs), cheap, factory)
    return factory
  return wrap


def check(names, offered=None, family=""):
  """A one-line ConfigError for an unknown name, or (``offered``: the names the family can
  serve) for one the family cannot serve."""
  names = tuple(names)
  for name in names:
    if name not in REGISTRY:
      raise ConfigError(f"evaluators: unknown evaluator {name!r}; the registered ones are "
                        f"{', '.join(sorted(REGISTRY))}.")
    if offered is not None and name not in offered:
      raise ConfigError(f"evaluators: {family or 'this family'} cannot run {name!r}; it offers "
                        f"{', '.join(offered)}.")
  if len(set(names)) != len(names):
    raise ConfigError(f"evaluators: a name is listed twice in {names}.")


def build(names, ctx, every=1, last=None):
  """The evaluators of ``names`` (in that order) that ``ctx`` can serve; the others are left
  out (a plain phase has no corruption score to judge)."""
  check(names)
  out = []
  for name in names:
    needs, cheap, factory = REGISTRY[name]
    if all(getattr(ctx, field) is not None for field in needs):
      out.append(Evaluator(name, factory(ctx), 1 if cheap else every, last))
  return out


def run(evaluators, epoch, last_epoch):
  """(scalars, arrays) of the evaluators due at ``epoch``, in their order."""
  scalars, arrays = {}, {}
  for ev in evaluators:
    if not ev.due(epoch, last_epoch):
      continue
    for key, value in ev(epoch).items():
      if isinstance(value, np.ndarray):
        arrays[key] = value
      else:
        scalars[key] = value
  return scalars, arrays


# -- the registered evaluators -------------------------------------------------------------


@register("accuracy", needs=("model", "test"))
def _accuracy(ctx):
  def fn(epoch):
    del epoch
    acc = ctx.test.evaluate(ctx.model)
    out = {ctx.accuracy_key: acc[1]}
    out.update({f"test_top{k}_accuracy": v for k, v in acc.items() if k != 1})
    return out
  return fn


@register("val_loss", needs=("model", "val", "loss"))
def _val_loss(ctx):
  return lambda epoch: {"val_loss": ctx.loss(ctx.model, *ctx.val)}


@register("importance_stats", needs=("scores",), cheap=True)
def _importance_stats(ctx):
  def fn(epoch):
    del epoch
    a = ctx.scores()
    return {"mean_importance": float(a.mean()), "frac_above_0.1": float(np.mean(a > 0.1)),
            ctx.scores_name: np.asarray(a, np.float64)}      # a histogram per epoch
  return fn


@register("detection", needs=("scores", "corrupted"), cheap=True)
def _detection(ctx):
  def fn(epoch):
    del epoch
    det = metriclib.detection(ctx.scores(), ctx.corrupted, ctx.threshold)
    return {f"detect_{k}": det[k] for k in ("precision", "recall", "roc_auc")}
  return fn


def _stats(name, values):
  return {f"{name}_mean": float(np.mean(values)), f"{name}_highest": float(np.max(values)),
          f"{name}_lowest": float(np.min(values))}


@register("temperatures", needs=("data_params", "corrupted"), cheap=True)
def _temperatures(ctx):
  dp, corrupted, prefix = ctx.data_params, np.asarray(ctx.corrupted, bool), ctx.histograms_prefix
  n = len(corrupted)

  def fn(epoch):
    inst = np.exp(dp.inst_parameters.numpy())
    cls = np.exp(dp.class_parameters.numpy())
    out = {}
    if dp.learn_class_parameters:
      out.update(_stats("class_sigma", cls))
    if dp.learn_inst_parameters:
      out.update(_stats("inst_sigma", inst))
      if corrupted.any():
        out["inst_sigma_corrupted_mean"] = float(inst[corrupted].mean())
      if (~corrupted).any():
        out["inst_sigma_clean_mean"] = float(inst[~corrupted].mean())
      if 0 < corrupted.sum() < n:
        out["inst_sigma_roc_auc"] = metriclib.roc_auc(corrupted, inst)
    if dp.learn_class_parameters:
      out[f"{prefix}/class_sigma"] = cls
    if dp.learn_inst_parameters and corrupted.any():
      out[f"{prefix}/inst_sigma_clean"] = inst[~corrupted]
      out[f"{prefix}/inst_sigma_corrupted"] = inst[corrupted]
    elif dp.learn_inst_parameters:
      out[f"{prefix}/inst_sigma"] = inst
    if ctx.snapshots_path is not None:
      q = [5, 25, 50, 75, 95]
      append_snapshot(ctx.snapshots_path, {
          "epoch": epoch, "class": np.percentile(cls, q).tolist(),
          "inst_clean": (np.percentile(inst[~corrupted], q).tolist() if (~corrupted).any()
                         else None),
          "inst_corrupted": (np.percentile(inst[corrupted], q).tolist() if corrupted.any()
                             else None)})
    return out
  return fn


def append_snapshot(path, snap):
  """One JSON line per epoch; an epoch re-run after a resume replaces its earlier line."""
  lines = []
  if path.exists():
    lines = [l for l in path.read_text().splitlines() if json.loads(l)["epoch"] < snap["epoch"]]
  lines.append(json.dumps(snap))
  records.write_text(path, "\n".join(lines) + "\n")


def mean_ci95(values):
  """Mean and 95% confidence half-width (1.96 standard errors, ddof 0) of ``values``."""
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(1.96 * values.std() / np.sqrt(len(values)))


@register("task_accuracy", needs=("tasks",))
def _task_accuracy(ctx):
  def fn(epoch):
    del epoch
    accs = ctx.tasks()
    mean, ci = mean_ci95(accs)
    return {"test_accuracy": mean, "test_accuracy_ci95": ci, "task_accuracies": accs}
  return fn
