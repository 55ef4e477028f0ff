"""Convergence of the bilevel methods on the synthetic problems with known optima.

For every (problem, method, T) of the config: ``trials`` independent trials, each from a fresh
state (method variables back to their initial values; A and the initial point drawn from
(seed, trial), so trial k is the same instance for every method and every T), the error to the
solution set, f and g recorded after iterations 1, 11, 21, ... together with the wall-clock
time. Outputs in the workdir:

  curves/{problem}_{method}_T{T}.npz   steps, and per trial: seconds, error, f, g, step metrics
  results.json, results.md            final error mean/std, success rate, time to success,
                                      time per iteration, per (problem, method, T)
  figures/{problem}_iterations.png    error vs iteration: rows T, one panel per method,
  figures/{problem}_time.png          error vs wall-clock time   (trials faint, mean bold)
  figures/summary_time.png            mean error vs time, every method, one panel per problem

A finished (problem, method, T) is written atomically; re-running the same command skips it.

``runner.distribute`` / ``runner.precision`` (common/runner.py's ``Setup``): the problems and
methods are built in its scope and every step runs replicated (each replica computes the same
full costs, the summed gradients are one device's) and in the chosen precision; a run that
sets either records it in config.json, so its curves are never mixed with another setting's.
"""

import pathlib
import sys
import time

import numpy as np
import tensorflow as tf
import tqdm

from common import bilevel
from common.bilevel import base as bilevel_base
from common import plots
from common import runner as runnerlib
from common import records
from common.errors import ConfigError
from synthetic.problems import PROBLEMS


def validate(config):
  unknown = sorted(set(config.problems) - set(PROBLEMS))
  if unknown or not config.problems:
    raise ConfigError(f"Unknown problems {unknown}; choose from {sorted(PROBLEMS)}.")
  for name in config.methods:
    try:
      method = bilevel.get_method(name)
    except ValueError as e:
      raise ConfigError(str(e)) from None
    if not method.needs_outer_variables:
      raise ConfigError(f"method {name!r} does not optimise the outer variables; choose from "
                        f"{sorted(n for n, m in bilevel.METHODS.items() if m.needs_outer_variables)}.")
    if name not in config:
      raise ConfigError(f"the config has no block '{name}' for method {name!r}.")
  if not config.methods:
    raise ConfigError("config.methods is empty.")
  if not config.inner_steps or min(config.inner_steps) < 1:
    raise ConfigError(f"inner_steps must be a non-empty list of T >= 1, got {config.inner_steps}.")
  for key in ("trials", "iterations", "record_every"):
    if int(config[key]) < 1:
      raise ConfigError(f"{key} must be >= 1, got {config[key]}.")
  if config.dtype not in ("float32", "float64"):
    raise ConfigError(f"dtype must be 'float32' or 'float64', got {config.dtype!r}.")


def record_steps(config):
  """0 (the initial point), then after iterations 1, 1 + k, 1 + 2k, ... (k = record_every)."""
  return [0] + list(range(1, int(config.iterations) + 1, int(config.record_every)))


def method_config(config, method, T):
  cfg = config[method].copy_and_resolve_references()
  for key, offset in config.tied_to_inner_steps.get(method, {}).items():
    cfg[key] = int(T) + int(offset)
  return cfg


def trial_seed(config, trial):
  return [int(config.seed), int(trial)]


def curves_path(workdir, problem, method, T):
  return pathlib.Path(workdir) / "curves" / f"{problem}_{method}_T{T}.npz"


def compute_dtype(config, precision):
  """The type f and g are evaluated in: bfloat16 / float16 under a mixed precision."""
  if precision == "float32":
    return tf.as_dtype(config.dtype)
  if config.dtype != "float32":
    raise ConfigError(f"runner.precision={precision!r} keeps float32 variables; set "
                      f"dtype='float32' (got {config.dtype!r}).")
  return tf.bfloat16 if precision == "mixed_bfloat16" else tf.float16


def run_one(config, problem_name, method_name, T, progress=None, setup=None):
  """All trials of one (problem, method, T): dict of arrays [trials, records]."""
  setup = setup or runnerlib.Setup(config.runner)
  dtype = tf.as_dtype(config.dtype)
  with setup.scope():
    problem = PROBLEMS[problem_name](dtype=dtype,
                                     compute_dtype=compute_dtype(config, setup.precision))
    method = bilevel.build_method(method_name, problem, method_config(config, method_name, T))
  setup.check(problem, method)
  initial_state = [v.numpy() for v in method.variables]
  step = setup.wrap(bilevel.combined_step(problem, method))

  def evaluate():
    u = bilevel_base.values(problem.outer_variables)
    v = bilevel_base.values(problem.inner_variables)
    return {"error": tf.sqrt(problem.squared_error(u, v)),
            "f": problem.outer_cost(u, v, None), "g": problem.inner_cost(u, v, None)}

  # No data: an empty batch (a replicated step splits nothing).
  loop = runnerlib.TimedLoop(lambda: step({}), evaluate, jit_compile=config.jit_compile)
  problem.reinitialise(trial_seed(config, 0))
  loop.warm_up()
  steps = record_steps(config)
  trials = []
  for trial in range(int(config.trials)):
    for var, value in zip(method.variables, initial_state):
      var.assign(value)
    problem.reinitialise(trial_seed(config, trial))
    trials.append(loop.run(steps, where=f"[{problem_name} {method_name} T={T} trial {trial}] "))
    if progress is not None:
      progress(trials[-1])
  out = {"steps": trials[0]["steps"],
         "seeds": np.asarray([trial_seed(config, k) for k in range(len(trials))])}
  for key in trials[0]:
    if key != "steps":
      out[key] = np.stack([t[key] for t in trials])
  out["tracing_count"] = np.asarray(loop.tracing_count)
  return out


def summarise(config, curves):
  """One row per (problem, method, T) from the curves."""
  rows = []
  for (problem, method, T), c in curves.items():
    final = c["error"][:, -1]
    reached = c["error"] <= config.success_error
    first = np.where(reached.any(axis=1), reached.argmax(axis=1), -1)
    times = [c["seconds"][k, i] for k, i in enumerate(first) if i >= 0]
    iters = [int(c["steps"][i]) for i in first if i >= 0]
    seconds = c["seconds"][:, -1]
    rows.append({
        "problem": problem, "method": method, "T": int(T), "trials": int(len(final)),
        "final_error_mean": float(final.mean()), "final_error_std": float(final.std()),
        "final_error_median": float(np.median(final)),
        "final_f_mean": float(c["f"][:, -1].mean()), "final_g_mean": float(c["g"][:, -1].mean()),
        "success_rate": float(np.mean(first >= 0)),
        "seconds_to_success_mean": float(np.mean(times)) if times else None,
        "iterations_to_success_mean": float(np.mean(iters)) if iters else None,
        "seconds_per_trial_mean": float(seconds.mean()),
        "ms_per_iteration": float(1e3 * seconds.mean() / int(c["steps"][-1])),
    })
  return rows


TABLE_COLUMNS = [("problem", "problem"), ("method", "method"), ("T", "T"),
                 ("final_error_mean", "final error mean"), ("final_error_std", "std"),
                 ("success_rate", "reached"), ("seconds_to_success_mean", "s to reach"),
                 ("ms_per_iteration", "ms/iter")]


def markdown_table(rows, success_error):
  head = "| " + " | ".join(h for _, h in TABLE_COLUMNS) + " |"
  sep = "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|"
  fmt = lambda v: "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))
  lines = [head, sep] + ["| " + " | ".join(fmt(r[k]) for k, _ in TABLE_COLUMNS) + " |"
                         for r in rows]
  note = (f"\n\n'reached': fraction of trials with error <= {success_error:g} at some record; "
          "'s to reach': mean wall-clock seconds until then, over those trials.\n")
  return "\n".join(lines) + note


def figures(config, curves, folder):
  folder.mkdir(parents=True, exist_ok=True)
  methods, Ts = list(config.methods), list(config.inner_steps)
  for problem in config.problems:
    grid = {(T, m): curves[(problem, m, T)] for T in Ts for m in methods
            if (problem, m, T) in curves}
    for x in ("iterations", "time"):
      plots.trial_curves_grid(folder / f"{problem}_{x}.png", grid, rows=Ts, cols=methods,
                              x="steps" if x == "iterations" else "seconds", y="error",
                              row_label="T = {}", title=f"{problem.upper()}: error to the "
                              f"solution set, {config.trials} trials (mean bold)")
  plots.mean_curves_panels(folder / "summary_time.png",
                           {p: {(m, T): curves[(p, m, T)] for m in methods for T in Ts
                                if (p, m, T) in curves} for p in config.problems},
                           x="seconds", y="error", title="mean error vs wall-clock time")


def defining(config):
  """The config that defines a run's curves: without the runner block when it holds the
  defaults (as before the block existed: earlier workdirs still match), else with it."""
  runner = config.get("runner")
  if runner is None or (runner.precision == "float32"
                        and runner.distribute.strategy == "none"):
    out = config.copy_and_resolve_references()
    with out.unlocked():
      if "runner" in out:
        del out["runner"]
    return out
  return config


def run(config, workdir, log=print):
  validate(config)
  # First, before TensorFlow starts: a CPU split into logical devices must happen now.
  setup = runnerlib.Setup(config.runner)
  compute_dtype(config, setup.precision)
  if setup.num_replicas > 1 and config.jit_compile:
    raise ConfigError("jit_compile=True: XLA cannot compile a step that spans several devices "
                      f"({setup.num_replicas} replicas); add --config.jit_compile=False.")
  setup.log_replicas(log)
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  records.check_or_write_config(workdir, defining(config), ignore=("progress_bar",))
  t_start = time.time()
  runs = [(p, m, int(T)) for p in config.problems for m in config.methods
          for T in config.inner_steps]
  bar = tqdm.tqdm(total=len(runs) * int(config.trials), unit="trial", file=sys.stderr,
                  disable=not config.progress_bar, dynamic_ncols=True)
  sweep = records.Sweep(lambda key: curves_path(workdir, *key))
  curves, skipped = {}, 0
  try:
    for p, m, T in runs:
      cached = sweep.load((p, m, T))
      if cached is not None:
        curves[(p, m, T)] = cached
        bar.update(int(config.trials))
        skipped += 1
        continue
      bar.set_description(f"{p} {m} T={T}")

      def progress(trial_curves):
        bar.update(1)
        bar.set_postfix(error=f"{trial_curves['error'][-1]:.3g}", refresh=False)

      c = run_one(config, p, m, T, progress, setup)
      sweep.store((p, m, T), c)
      curves[(p, m, T)] = c
      bar.write(f"{p} {m} T={T}: final error {c['error'][:, -1].mean():.3g} "
                f"(+- {c['error'][:, -1].std():.2g}), "
                f"{1e3 * c['seconds'][:, -1].mean() / config.iterations:.3f} ms/iteration")
  finally:
    bar.close()
  if skipped:
    log(f"{skipped} of {len(runs)} (problem, method, T) runs were already in {workdir}/curves.")
  rows = summarise(config, curves)
  records.write_text(workdir / "results.md", markdown_table(rows, config.success_error))
  figures(config, curves, workdir / "figures")
  results = {"rows": rows, "iterations": int(config.iterations), "git_commit":
             records.git_commit(), "wall_seconds_this_invocation": time.time() - t_start,
             "device": tf.config.list_logical_devices()[0].device_type}
  records.write_json(workdir / "results.json", results)
  return results


def summary(results):
  return records.summary_table(results["rows"], TABLE_COLUMNS)
