"""Learning to Reweight's MNIST 4-vs-9 class-imbalance experiment, with its baselines.

For every proportion p of 9s, every method and every seed, one run: the official CNN (one
logit, sigmoid cross-entropy) trained with momentum SGD on batches of 100, and test accuracy
on a balanced 4-vs-9 test set. Methods:

  l2rw         Learning to Reweight: weights from the 10 clean validation images each step
  plain        uniform weights (the mean loss)
  class_ratio  w = p for a 4, 1 - p for a 9 (not normalised)
  random       w = max(N(0, 1), 0), normalised

Only ``l2rw`` uses the clean images as a validation set; the baselines train on them (the
original's n_val = 0: nothing is taken out of their training budget). Seeds are the original's
(k * 123456789) mod 100000.

Two rules give the training part (``common.data.imbalance``): the original's budget
(``imbalance.n_train`` > 0: int(n_train * p) 9s) and, for a pool too small for it, the
all-nines rule (n_train 0: every 9 the pool has left, and as many 4s as p asks for).

Outputs in the workdir:

  runs/p{p}/{method}/seed{seed}/   one Runner workdir per run (checkpoints, metrics.jsonl,
                                   TensorBoard, and for l2rw the mean weight every training
                                   image received over the run in weights.npy)
  runs/.../results.json            that run's accuracy, counts and, for l2rw, the share of
                                   the weight on the 4s and the fraction of all-zero batches
  results.json, results.md        test accuracy mean, std and every value, per (p, method)
  accuracy_vs_proportion.png      mean +- std against p, one line per method

A finished run is skipped when the command is re-run; an interrupted one resumes.
"""

import itertools
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from common import bilevel
from common import config_checks
from common import evaluators as evaluatorslib
from common import metrics as metriclib
from common import models
from common import plots
from common import runner as runnerlib
from common import records
from common.errors import ConfigError
from common.data import imbalance as imbalancelib
from common.problems import ExampleReweighting

METHODS = ("l2rw", "plain", "class_ratio", "random")
_RULES = {"plain": "uniform", "class_ratio": "class_ratio", "random": "random"}
SWEEP_FIELDS = ("proportions", "methods", "num_seeds")


def seeds(num_seeds):
  """The original's run seeds: (k * 123456789) mod 100000 for k = 0, 1, ..."""
  return [(k * 123456789) % 100000 for k in range(int(num_seeds))]


def validate(config):
  """Fail fast, before any data is read or any file written, on a bad config."""
  config_checks.validated(_validate, config)


def _validate(config):
  imb = config.imbalance
  if config.dataset != "mnist":
    raise ConfigError(f"the imbalance experiment is MNIST 4-vs-9; got dataset {config.dataset!r}.")
  unknown = sorted(set(imb.methods) - set(METHODS))
  if unknown or not imb.methods:
    raise ConfigError(f"Unknown imbalance methods {unknown}; choose from {list(METHODS)}.")
  if int(imb.n_train) < 0:
    raise ConfigError(f"imbalance.n_train must be >= 0 (0: every 9 of the pool), got "
                      f"{imb.n_train}.")
  if not imb.proportions:
    raise ConfigError("imbalance.proportions is empty.")
  for p in imb.proportions:
    if not 0.0 < p < 1.0:
      raise ConfigError(f"a proportion of 9s must lie in (0, 1), got {p}.")
    if "l2rw" in imb.methods and imb.n_train:   # the all-nines rule is checked on the pool
      fours, _ = imbalancelib.class_counts(p, imb.n_train, imb.n_val)
      if fours < 1:
        raise ConfigError(
            f"proportion {p} with n_train {imb.n_train} leaves {fours} fours for training after "
            f"the {imb.n_val // 2} clean validation fours; drop it from imbalance.proportions or "
            "raise imbalance.n_train (the full MNIST files allow the paper's 5000).")
  for key in ("n_val", "n_test", "batch_size", "num_seeds", "l2rw_steps",
              "baseline_steps", "eval_every_steps"):
    if int(imb[key]) < 1:
      raise ConfigError(f"imbalance.{key} must be >= 1, got {imb[key]}.")
  if imb.n_val % 2 or imb.n_test % 2:
    raise ConfigError(f"imbalance.n_val and n_test must be even, got {imb.n_val}, {imb.n_test}.")
  evaluatorslib.check(config.evaluators, ("accuracy",), "the imbalance experiment")
  models.resolve(config.model)


def _batcher(x, y, batch_size, seed):
  """Epoch-wise reshuffled batches (the original's DataSet.next_batch), a function of step."""
  n = len(x)
  per_epoch = n // batch_size
  cache = {}
  x, y = tf.constant(x), tf.constant(y)

  def batch(step):
    epoch, k = divmod(step, per_epoch)
    if epoch not in cache:
      cache.clear()
      cache[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
    index = tf.constant(cache[epoch][k * batch_size:(k + 1) * batch_size], tf.int64)
    return {"x": tf.gather(x, index), "y": tf.gather(y, index), "index": index}

  return batch


def split(config, pools, proportion, method, seed):
  """The data of one run: L2RW's training and validation parts, or the baselines' training
  part, which holds L2RW's validation images as well (under either rule)."""
  imb = config.imbalance
  l2rw = method == "l2rw"
  # The budget rule draws the baselines' part with n_val 0 (the original's); the all-nines
  # rule adds L2RW's validation images to its training part.
  n_val = imb.n_val if l2rw or not imb.n_train else 0
  return imbalancelib.four_vs_nine(*pools, proportion, imb.n_train, n_val, imb.n_test, seed,
                                   merge_val=not l2rw and not imb.n_train)


def check_counts(config, pools):
  """ConfigError, before anything is written, for a proportion the pool cannot give."""
  for p in config.imbalance.proportions:
    try:
      split(config, pools, p, "l2rw", 0)
    except ValueError as e:
      raise ConfigError(f"imbalance.proportions holds {p}: {e}") from None


class _Diagnostics(tf.Module):
  """L2RW's weights over a run, checkpointed with it: steps, steps whose batch got all-zero
  weights, and the summed share of each batch's weight that went to its 4s."""

  def __init__(self):
    super().__init__(name="l2rw_diagnostics")
    self.sums = tf.Variable(tf.zeros([3], tf.float64), trainable=False)

  def record(self, weights, labels):
    w = tf.cast(weights, tf.float64)
    total = tf.reduce_sum(w)
    on_fours = tf.reduce_sum(w * tf.cast(tf.equal(labels, 0), tf.float64))
    self.sums.assign_add(tf.stack([tf.constant(1.0, tf.float64),
                                   tf.cast(tf.equal(total, 0.0), tf.float64),
                                   tf.math.divide_no_nan(on_fours, total)]))

  def summary(self):
    steps, zero, share = self.sums.numpy()
    nonzero = steps - zero
    return {"all_zero_weight_batch_fraction": float(zero / steps) if steps else None,
            "mean_weight_share_on_4s": float(share / nonzero) if nonzero else None}


def run_one(config, workdir, pools, proportion, method, seed, log=print):
  """One (proportion, method, seed) run (resuming from ``workdir``); its results dict."""
  workdir = pathlib.Path(workdir)
  imb = config.imbalance
  d = split(config, pools, proportion, method, seed)
  n_val = len(d.y_val)
  if len(d.y_train) < imb.batch_size:
    raise ConfigError(f"{len(d.y_train)} training images are fewer than one batch of "
                      f"{imb.batch_size}.")
  keras.utils.set_random_seed(seed)
  model = models.build(config.model, d.x_train.shape[1:], 1)
  problem = ExampleReweighting(model, imb.batch_size, 0.0, training=True,
                               num_train=len(d.y_train))
  if method == "l2rw":
    method_obj = bilevel.L2RW(problem, config.l2rw)
    steps = imb.l2rw_steps
  else:
    cfg = bilevel.get_method(_RULES[method]).default_config()
    cfg.update(dict(lr=config.l2rw.lr, momentum=config.l2rw.momentum,
                    seed=seed, class_weights=(proportion, 1.0 - proportion)))
    method_obj = bilevel.build_method(_RULES[method], problem, cfg)
    steps = imb.baseline_steps
  state = dict(model=model, problem=problem, method=method_obj)
  step_fn = bilevel.combined_step(problem, method_obj)
  if method == "l2rw":
    diagnostics = state["diagnostics"] = _Diagnostics()
    combined = step_fn

    def step_fn(batch):
      metrics = combined(batch)
      diagnostics.record(method_obj.weights, batch["train"]["y"])
      return metrics
  run_ = runnerlib.Runner(workdir, config.runner, state, ("train",), log=log)
  train = _batcher(d.x_train, d.y_train, imb.batch_size, seed)
  val = {"x": tf.constant(d.x_val), "y": tf.constant(d.y_val)} if n_val else None

  def batch_fn(step):
    b = {"train": train(step)}
    if val is not None:
      b["val"] = val                  # the whole clean set at every step, as the original
    return b

  test = metriclib.TestSet(d.x_test, d.y_test, 1000)
  run_.run_phase("train", step_fn, batch_fn, steps,
                 steps_per_epoch=imb.eval_every_steps, evaluators=evaluatorslib.build(
                     config.evaluators, evaluatorslib.Context(model=model, test=test)))
  w = problem.scores()
  results = {"proportion": proportion, "method": method, "seed": seed, "steps": steps,
             "counts": d.counts, "test_accuracy": test.accuracy(model)}
  if method == "l2rw":
    records.save_npy(workdir / "weights.npy", w)
    results["mean_weight_4"] = float(w[d.y_train == 0].mean())
    results["mean_weight_9"] = float(w[d.y_train == 1].mean())
    results.update(diagnostics.summary())
  return run_.stamped(results)


def aggregate(runs, proportions, methods):
  """{p: {method: {mean, std, values}}} over seeds (std with ddof 0, as numpy's default)."""
  table = {}
  for p in proportions:
    for m in methods:
      vals = [r["test_accuracy"] for r in runs if r["proportion"] == p and r["method"] == m]
      if vals:
        table.setdefault(str(p), {})[m] = {"mean": float(np.mean(vals)),
                                           "std": float(np.std(vals)), "values": vals}
  return table


def four_counts(runs):
  """{p: text}: how many 4s (and 9s) each proportion leaves for training, L2RW's (with its
  clean validation images) and the baselines'."""
  by_p = {}
  for r in runs:
    c = r["counts"]
    text = (f"{c['train_4']} + {c['val_4']} clean / {c['train_9']} + {c['val_9']} clean"
            if r["method"] == "l2rw" else f"{c['train_4']} / {c['train_9']}")
    by_p.setdefault(str(r["proportion"]), {})["l2rw" if r["method"] == "l2rw" else "rest"] = text
  return {p: "; ".join(f"{'L2RW' if k == 'l2rw' else 'baselines'} {v}"
                       for k, v in sorted(row.items())) for p, row in by_p.items()}


def markdown(table, methods, runs=None):
  counts = four_counts(runs) if runs else {}
  lines = ["| proportion of 9s | " + " | ".join(methods) + " |" + (
               " training 4s / 9s |" if counts else ""),
           "|---|" + "---|" * (len(methods) + bool(counts))]
  for p, row in table.items():
    cells = [f"{row[m]['mean']:.4f} ± {row[m]['std']:.4f} ({len(row[m]['values'])})"
             if m in row else "-" for m in methods]
    if counts:
      cells.append(counts.get(p, "-"))
    lines.append(f"| {p} | " + " | ".join(cells) + " |")
  text = "\n".join(lines) + "\n\nCells: test accuracy, mean ± std over seeds (number of seeds).\n"
  weights = [r for r in runs or () if r.get("all_zero_weight_batch_fraction") is not None]
  if weights:
    text += ("\nL2RW's weights over training, mean over seeds: the fraction of steps whose "
             "whole batch got weight 0, and the share of a batch's weight on its 4s (steps "
             "with some weight).\n\n| proportion of 9s | all-zero batches | weight share on "
             "4s | 4s' share of the batch |\n|---|---|---|---|\n")
    for p in table:
      rs = [r for r in weights if str(r["proportion"]) == p]
      if rs:
        c = rs[0]["counts"]
        share = [r["mean_weight_share_on_4s"] for r in rs
                 if r["mean_weight_share_on_4s"] is not None]
        text += (f"| {p} | {np.mean([r['all_zero_weight_batch_fraction'] for r in rs]):.3f} | "
                 + (f"{np.mean(share):.3f}" if share else "-")
                 + f" | {c['train_4'] / (c['train_4'] + c['train_9']):.3f} |\n")
  return text


def step_curves(folder, runs):
  """{f"p = {p}": {method: (steps, mean test accuracy over seeds)}}: where each method's
  accuracy settles, from every run's evaluations in its metrics.jsonl."""
  panels = {}
  for p in dict.fromkeys(r["proportion"] for r in runs):
    for method in dict.fromkeys(r["method"] for r in runs):
      curves = []
      for r in runs:
        path = folder((p, method, r["seed"])) / "metrics.jsonl"
        if r["proportion"] == p and r["method"] == method and path.exists():
          steps, values = plots.epoch_curves(path).get("train", ([], []))
          if steps:
            curves.append((steps, values))
      if curves:
        n = min(len(c[1]) for c in curves)
        panels.setdefault(f"p = {p}", {})[method] = (
            curves[0][0][:n], np.mean([c[1][:n] for c in curves], axis=0))
  return panels


def run(config, workdir, log=print):
  validate(config)
  t_start = time.time()
  workdir = pathlib.Path(workdir)
  # Which proportions, methods and seeds a sweep covers may change between invocations (each
  # run is self-contained and cached); everything else must match.
  defining = config.copy_and_resolve_references()
  with defining.unlocked():
    for key in SWEEP_FIELDS:
      del defining.imbalance[key]
  imb = config.imbalance
  *pools, note = imbalancelib.digit_pools(
      config.source, config.data_dir, imb.n_train, imb.n_test, config.tfds_download,
      tutorial_train_split_only=imb.get("tutorial_train_split", True))
  check_counts(config, pools)
  workdir.mkdir(parents=True, exist_ok=True)
  records.check_or_write_config(workdir, defining)
  log(f"NOTE: {note}")
  folder = lambda key: workdir / "runs" / f"p{key[0]}" / key[1] / f"seed{key[2]}"  # noqa: E731
  sweep = records.Sweep(lambda key: folder(key) / "results.json")
  runs = []
  for key in itertools.product(imb.proportions, imb.methods, seeds(imb.num_seeds)):
    p, method, seed = key
    log(f"[imbalance] p={p} {method} seed {seed}")
    rec, cached = sweep.run(key, lambda: run_one(config, folder(key), pools, p, method, seed,
                                                 log))
    log(f"[imbalance] p={p} {method} seed {seed}: test accuracy {rec['test_accuracy']:.4f}"
        + (" (cached)" if cached else ""))
    runs.append(rec)
  table = aggregate(runs, imb.proportions, imb.methods)
  results = {"experiment": "imbalance", "note": note, "table": table, "runs": runs,
             "wall_seconds_this_invocation": time.time() - t_start,
             "git_commit": records.git_commit()}
  records.write_json(workdir / "results.json", results)
  records.write_text(workdir / "results.md",
      f"# MNIST 4-vs-9 imbalance\n\n{note}\n\n" + markdown(table, list(imb.methods), runs))
  plots.sweep_errorbars(
      workdir / "accuracy_vs_proportion.png", [float(p) for p in table],
      {m: ([table[p][m]["mean"] for p in table], [table[p][m]["std"] for p in table])
       for m in imb.methods},
      xlabel="proportion of 9s in training", ylabel="test accuracy",
      title=f"MNIST 4 vs 9, mean ± std over {imb.num_seeds} seeds", categorical=True)
  plots.curve_panels(workdir / "accuracy_vs_step.png", step_curves(folder, runs),
                     xlabel="training step", ylabel="test accuracy",
                     title="Test accuracy during training, mean over seeds")
  log(f"Results written to {workdir / 'results.json'}, results.md, accuracy_vs_proportion.png, "
      "accuracy_vs_step.png")
  return results


def summary(results):
  methods = list(next(iter(results["table"].values())))
  return markdown(results["table"], methods, results.get("runs"))
