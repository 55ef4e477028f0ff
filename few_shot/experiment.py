"""Few-shot learning with a bilevel method (penalty, ApproxGrad, ...) through the shared runner.

One phase, ``meta_train``: every meta-iteration draws a meta-batch of N-way K-shot tasks from
the meta-train classes, re-initialises the heads (the method's state is kept) and takes one
method step (``inner_steps`` head steps, one encoder step). Every ``eval_every`` meta-iterations
and at the end the encoder is evaluated by the original's protocol (``adapt_and_evaluate``):
``eval_tasks`` tasks of the meta-test classes, fresh heads trained ``eval_steps`` Adam steps on
each support set with the encoder frozen, accuracy on the query sets; reported as the mean with
a 95% confidence interval (1.96 std / sqrt(tasks)).

Which test tasks (``eval_episode_indices``): by default (``eval_fresh_tasks``) every evaluation
draws new ones, as the original's ``get_tasks`` does at each evaluation, keyed on the
meta-iteration the evaluation happens at (the runner's checkpointed step count), so a resumed
run evaluates on the tasks an uninterrupted one would. The reported final accuracy is the
evaluation at ``meta_iterations``: the last periodic one, or, when ``meta_iterations`` is not a
multiple of ``eval_every`` (20001, 10001, 5001), an extra one with fresh tasks of its own.
``eval_fresh_tasks=False`` reuses one fixed set at every evaluation instead (lower variance
between evaluations; not the original's protocol).

Outputs: results.json, accuracy.png (test accuracy with its interval per evaluation),
task_accuracies.npy (the last evaluation, one entry per task), metrics.jsonl, TensorBoard,
checkpoints. Re-running the same command resumes.
"""

import json
import time

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import bilevel  # noqa: E402
from common import config_checks  # noqa: E402
from common import evaluators as evaluatorslib  # noqa: E402
from common import runner as runnerlib  # noqa: E402
from common import records
from common.errors import ConfigError  # noqa: E402
from common.data import episodes as episodelib  # noqa: E402
from common import data as datalib  # noqa: E402
from few_shot import models  # noqa: E402
from few_shot.problem import FewShotProblem, adapt_and_evaluate  # noqa: E402

PHASE = "meta_train"


def validate(config):
  """Fail fast, before any data is read or any file written, on a bad config."""
  config_checks.validated(_validate, config)


def _validate(config):
  datalib.check(config.dataset, config.source, kinds=("classes",))
  evaluatorslib.check(config.evaluators, ("task_accuracy",), "few-shot learning")
  if "task_accuracy" not in config.evaluators:
    raise ValueError("evaluators must hold 'task_accuracy': the meta-test accuracy is what a "
                     "few-shot run reports.")
  method = bilevel.get_method(config.method)
  if not method.needs_outer_variables:
    raise ValueError(f"method {config.method!r} learns no outer variables; few-shot learning "
                     f"needs a bilevel method that trains the encoder (penalty, approxgrad, "
                     f"gd, rmd).")
  if config.method not in config:
    raise ValueError(f"config has no block for method {config.method!r}.")
  if config.method == "approxgrad" and config.approxgrad.correction not in ("all_groups",
                                                                            "first_group"):
    raise ValueError(f"approxgrad.correction must be 'all_groups' or 'first_group' (the "
                     f"original's task-0-only encoder correction), got "
                     f"{config.approxgrad.correction!r}.")
  for key in ("ways", "shots", "meta_batch", "meta_iterations", "eval_every", "eval_tasks",
              "eval_steps"):
    if int(config[key]) < 1:
      raise ValueError(f"{key} must be >= 1, got {config[key]}.")
  if int(config.queries) < 1:
    raise ValueError(f"queries must be >= 1, got {config.queries}.")
  if int(config.ways) < 2:
    raise ValueError(f"ways must be >= 2 (a 1-way task is always answered right), got "
                     f"{config.ways}.")
  if config.eval_tasks % config.meta_batch:
    raise ValueError(f"eval_tasks ({config.eval_tasks}) must be a multiple of meta_batch "
                     f"({config.meta_batch}): test tasks are drawn meta-batch by meta-batch, "
                     f"as in the original (600 = test batches x meta-batch).")
  if not isinstance(config.eval_fresh_tasks, bool):
    raise ValueError(f"eval_fresh_tasks must be True or False, got {config.eval_fresh_tasks!r}.")
  if not config.eval_lr > 0:
    raise ValueError(f"eval_lr must be > 0, got {config.eval_lr}.")
  if config.encoder not in models.ENCODERS and ":" not in config.encoder:
    raise ValueError(f"Unknown encoder {config.encoder!r}; built-ins: "
                     f"{sorted(models.ENCODERS)}, or 'module.path:function'.")


def run(config, workdir, log=print):
  """Meta-train (resuming from ``workdir``) and return the results dict."""
  validate(config)
  t_start = time.time()
  if config.deterministic:
    # Independent ops run one at a time (their float sums in one order) and each op is
    # deterministic: two runs of one seed log the same numbers. Measured on the real Omniglot:
    # op determinism alone left metrics.jsonl differing from step 1 (3e-4 relative) in 2 runs
    # of 5. Only before the runtime's start: a run inside a process that already ran
    # TensorFlow (the Python API, the tests) keeps that process's thread pool.
    if tf.config.threading.get_inter_op_parallelism_threads() != 1:
      try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
      except RuntimeError:
        pass
    tf.config.experimental.enable_op_determinism()
  # First, before TensorFlow starts: a CPU split into logical devices must happen now.
  setup = runnerlib.Setup(config.runner)
  setup.check_batch_size("meta_batch", config.meta_batch)    # the tasks are the rows
  setup.log_replicas(log, "the meta-batch's tasks split among them")
  keras.utils.set_random_seed(config.seed)
  train_images, test_images, info = datalib.load_classes(
      config.dataset, config.source, config.data_dir, image_size=config.image_size,
      tfds_download=config.tfds_download, resize_method=config.resize_method,
      cache_dir=config.cache_dir or None, images_per_class=config.get("images_per_class"),
      log=log)
  log(f"{config.dataset} ({info['source']}): meta-train {len(train_images)} classes, meta-test "
      f"{len(test_images)} classes, {train_images.shape[1]} images each, "
      f"{'x'.join(str(s) for s in train_images.shape[2:])}.")
  n, k, q, m = config.ways, config.shots, config.queries, config.meta_batch
  try:      # the task shape against the classes and images the data holds
    train = episodelib.EpisodeSampler(train_images, n, k, q, m, seed=config.seed)
    test = episodelib.EpisodeSampler(test_images, n, k, q, m, seed=config.eval_seed)
  except ValueError as e:
    raise ConfigError(f"{config.dataset}: {e}") from None

  with setup.scope():
    encoder, set_aware = models.build_encoder(config.encoder, train_images.shape[2:])
    problem = FewShotProblem(encoder, set_aware, m, n, config.encoder_one_call)
    method = bilevel.build_method(config.method, problem, config[config.method])
  setup.check(problem, method)
  log(f"{n}-way {k}-shot, {q} queries per class, meta-batch {m}; encoder {config.encoder} "
      f"({encoder.count_params():,} parameters), {m} heads of "
      f"{problem.feature_dim * n + n:,}; method {config.method}.")
  run_ = runnerlib.Runner(workdir, config.runner,
                          dict(encoder=encoder, problem=problem, method=method), (PHASE,),
                          run_config=config, log=log, setup=setup)
  step_fn = bilevel.combined_step(problem, method)

  def meta_step(batch):
    problem.init_heads(batch["head_seed"][0])
    return step_fn(batch)

  def batch_fn(step):
    ep = train.sample(step)
    # The heads' seed once per task (every row the same): a replicated step splits every
    # array of the batch by tasks, and each replica initialises all heads from its first row.
    return {"support_x": ep.support_x, "support_y": ep.support_y, "query_x": ep.query_x,
            "query_y": ep.query_y,
            "head_seed": np.tile(np.array([config.seed, step], np.int64), (m, 1))}

  evaluate_batch = tf.function(
      lambda batch, seed: adapt_and_evaluate(problem, batch, seed, int(config.eval_steps),
                                             float(config.eval_lr)),
      jit_compile=bool(config.runner.jit_compile))
  if config.runner.eager:
    evaluate_batch = lambda batch, seed: adapt_and_evaluate(  # noqa: E731
        problem, batch, seed, int(config.eval_steps), float(config.eval_lr))
  def test_tasks(step):
    """Accuracy of each of the eval_tasks test tasks of the evaluation at meta-iteration
    ``step``, adapted from the current encoder. Each test meta-batch's head seed is keyed on its
    sampler index, so fresh tasks come with fresh heads, as in the original."""
    accs = []
    for index in eval_episode_indices(step, config.eval_tasks // m, config.eval_fresh_tasks):
      ep = test.sample(index)
      batch = {"support_x": ep.support_x, "support_y": ep.support_y, "query_x": ep.query_x,
               "query_y": ep.query_y}
      accs.append(evaluate_batch(batch, tf.constant([config.eval_seed, index], tf.int64)).numpy())
    return np.concatenate(accs)

  # The evaluation's key is the runner's step count, not a counter of this process: it is part
  # of the checkpoint, so a resumed run draws what an uninterrupted one would. At a periodic
  # evaluation it is that evaluation's meta-iteration; after the phase, ``meta_iterations``.
  (evaluator,) = evaluatorslib.build(config.evaluators, evaluatorslib.Context(
      tasks=lambda: test_tasks(run_.steps_done(PHASE))))
  run_.run_phase(PHASE, meta_step, batch_fn, config.meta_iterations, config.eval_every,
                 evaluators=[evaluator])

  curves = _eval_curve(run_.metrics_path)
  if curves and curves[-1][0] == config.meta_iterations and evaluator.latest is None:
    # Resumed after the last evaluation: it is the final one; re-evaluate for the per-task file.
    evaluator(config.meta_iterations // config.eval_every)
  elif not curves or curves[-1][0] != config.meta_iterations:
    final = evaluator(config.meta_iterations // config.eval_every)
    run_.record(PHASE, config.meta_iterations,
                {k: v for k, v in final.items() if not isinstance(v, np.ndarray)}, kind="epoch")
    curves = _eval_curve(run_.metrics_path)
  accs = evaluator.latest["task_accuracies"]
  mean, ci = evaluatorslib.mean_ci95(accs)
  records.save_npy(run_.workdir / "task_accuracies.npy", accs)
  _figure(run_.workdir / "accuracy.png", curves,
          f"{config.dataset} {n}-way {k}-shot, {config.method}")
  results = {"dataset": config.dataset, "ways": n, "shots": k, "queries": q, "meta_batch": m,
             "method": config.method, "encoder": config.encoder,
             "meta_iterations": config.meta_iterations, "eval_tasks": len(accs),
             "eval_fresh_tasks": bool(config.eval_fresh_tasks),
             "test_accuracy": mean, "test_accuracy_ci95": ci,
             "curve": [{"meta_iteration": s, "test_accuracy": a, "ci95": c}
                       for s, a, c in curves],
             "data": info, "wall_seconds_this_invocation": time.time() - t_start}
  run_.write_results(results, summary(results))
  return results


def eval_episode_indices(step, batches, fresh=True):
  """The test sampler's meta-batch indices (``EpisodeSampler.sample``) of the evaluation at
  meta-iteration ``step``, ``batches`` meta-batches of test tasks.

  ``fresh``: ``step * batches`` to ``(step + 1) * batches - 1``, new tasks at every evaluation
  (the original draws new test tasks each time it evaluates), a pure function of the step so
  that a resumed run and the re-evaluation of a finished one see the same tasks; evaluations
  happen at steps >= 1, so they never meet the fixed set. Otherwise ``0 .. batches - 1`` at
  every step: one fixed set.
  """
  step, batches = int(step), int(batches)
  if step < 0 or batches < 1:
    raise ValueError(f"need step >= 0 and batches >= 1, got step={step}, batches={batches}.")
  start = step * batches if fresh else 0
  return range(start, start + batches)


def _eval_curve(metrics_path):
  out = {}
  if metrics_path.exists():
    for line in metrics_path.open():
      rec = json.loads(line)
      if rec.get("kind") == "epoch" and "test_accuracy" in rec:
        out[rec["step"]] = (rec["step"], rec["test_accuracy"], rec.get("test_accuracy_ci95"))
  return [out[s] for s in sorted(out)]


def _figure(path, curves, title):
  fig, ax = plt.subplots(figsize=(6, 4))
  if curves:
    steps, accs, cis = zip(*curves)
    ax.errorbar(steps, accs, yerr=[c or 0.0 for c in cis], marker="o", capsize=3)
  ax.set_xlabel("meta-iteration")
  ax.set_ylabel("meta-test accuracy (95% CI)")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  records.save_figure(fig, path, dpi=120)
  plt.close(fig)


def summary(results):
  paper = PAPER.get((results["dataset"], results["ways"], results["shots"]))
  rows = [{"what": f"{results['method']}, {results['meta_iterations']} meta-iterations",
           "acc": f"{results['test_accuracy']:.4f} +- {results['test_accuracy_ci95']:.4f}",
           "tasks": results["eval_tasks"]}]
  out = records.summary_table(rows, [("what", "run"), ("acc", "meta-test accuracy (95% CI)"),
                                       ("tasks", "test tasks")])
  if paper:
    out += f"\n\npaper (penalty method): {paper}"
  return out


# What the reference holds of the paper's few-shot numbers (penalty.md §11): one Omniglot
# figure whose setting is not stated, nothing for Mini-ImageNet.
PAPER = {("omniglot", n, k): "99.45% on Omniglot (setting not stated in the reference)"
         for n in (5, 20) for k in (1, 5)}
