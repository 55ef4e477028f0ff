"""Speed and memory of every method's training step, side by side in one process.

  python benchmarks/run.py --quick            # < 5 minutes on 2 CPU cores
  python benchmarks/run.py                    # the full run (paper loop lengths; long on CPU)

Sections (``--sections``; all but before_after by default):
  ratios   each method's step on the MNIST CNN and the CIFAR-10 CNN at batch 200, compiled
           with tf.function, as a multiple of a momentum-SGD step on the same model and batch
  modes    eager vs tf.function vs tf.function(jit_compile=True), per method
  memory   memory after warm-up, at the end and at the peak over --memory_steps steps
  scaling  step time, ratio to SGD and peak memory against batch size and against model width
           (4 points per axis), with the fitted exponent k of time ~ batch^k and time ~
           parameters^k per step, so the cost of another model or batch can be predicted
  before_after  the steps whose passes changed, timed as they were (before) and as they are
           (after), alternately in this one process: ApproxGrad and the penalty method on the
           MNIST CNN (``cases.BEFORE_AFTER``). The few-shot meta-iteration with and without
           the u-step's pull-back is timed by its family: few_shot/speed.py

Prints the tables, checks the targets (L2RW <= 3.5 x SGD, penalty inner step <= 3 x,
data-parameters step <= 1.1 x, tf.function >= 5 x eager for every bilevel step, memory growth
after warm-up < 2 %), and writes ``benchmark.json`` and ``benchmark.md`` into --out_dir.
"""

import datetime
import gc
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import tqdm  # noqa: E402

from benchmarks import cases as caselib  # noqa: E402
from benchmarks import harness  # noqa: E402
from common import records  # noqa: E402

SECTIONS = ("ratios", "modes", "memory", "scaling", "before_after")
# before_after runs when asked for (--sections=before_after): it checks no target, and each of
# its MNIST CNN steps takes seconds on a CPU (benchmarks/results/before_after_mnist_quick/).
DEFAULT_SECTIONS = ("ratios", "modes", "memory", "scaling")
# The targets, as multiples of the SGD step (ratios) or of eager (speed-ups).
RATIO_TARGETS = {"l2rw": 3.5, "penalty_inner": 3.0, "data_parameters": 1.1}
SPEEDUP_TARGET = 5.0
GROWTH_TARGET = 0.02
# Steps that are not bilevel: the baseline and single-level training.
NOT_BILEVEL = ("sgd", "plain", "penalty_hvp")

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Small settings that finish in minutes on a 2-core CPU.")
flags.DEFINE_string("out_dir", "runs/benchmarks", "Where benchmark.json / benchmark.md go.")
flags.DEFINE_list("sections", list(DEFAULT_SECTIONS), f"Which of {SECTIONS} to run.")
flags.DEFINE_list("models", ["mnist_cnn", "cifar10_cnn"], "Models of the ratios section.")
flags.DEFINE_list("cases", None, "Cases to time (default: all: " + ", ".join(caselib.case_names())
                  + ").")
flags.DEFINE_integer("loop_steps", None,
                     "Inner-loop length of the looped methods (default: 20, the denoising "
                     "experiments' T; 1 with --quick).")
flags.DEFINE_integer("repeats", None, "Timed steps per measurement (default 10; 3 with --quick).")
flags.DEFINE_integer("warmup", None, "Untimed steps first (default 2; 1 with --quick).")
flags.DEFINE_list("modes_models", None,
                  "Models of the modes section (default: mnist_logreg and mnist_cnn; "
                  "mnist_logreg with --quick).")
flags.DEFINE_string("memory_model", "mnist_logreg", "Model of the memory section.")
flags.DEFINE_integer("memory_steps", 2000, "Measured steps per case in the memory section.")
flags.DEFINE_list("scaling_cases", ["sgd", "penalty_inner", "l2rw", "data_parameters"],
                  "Cases of the scaling section (MNIST CNN).")
flags.DEFINE_list("scaling_batches", None, "Batch sizes (default 50,100,200,400; 50,400 quick).")
flags.DEFINE_list("scaling_widths", None,
                  "MNIST CNN width multipliers (default 0.25,0.5,1,2; 0.25,1 quick).")
flags.DEFINE_list("before_after_cases", None,
                  "Steps of the before_after section as method@where (default: all of "
                  + ", ".join(f"{m}@{w}" for m, w in caselib.BEFORE_AFTER) + ").")
flags.DEFINE_integer("seed", 0, "Seed of models and random inputs.")
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                  "Keras dtype policy of every model built (mixed: compute in 16 bits, "
                  "variables in float32).")


def settings():
  quick = FLAGS.quick
  pick = lambda value, full, small: value if value is not None else (small if quick else full)
  s = {
      "quick": quick,
      "sections": [x for x in FLAGS.sections],
      "models": list(FLAGS.models),
      "cases": list(FLAGS.cases) if FLAGS.cases else caselib.case_names(),
      "loop_steps": pick(FLAGS.loop_steps, 20, 1),
      "repeats": pick(FLAGS.repeats, 10, 3),
      "warmup": pick(FLAGS.warmup, 2, 1),
      "modes_models": pick(FLAGS.modes_models, ["mnist_logreg", "mnist_cnn"], ["mnist_logreg"]),
      "memory_model": FLAGS.memory_model,
      "memory_steps": FLAGS.memory_steps,
      "scaling_cases": list(FLAGS.scaling_cases),
      "scaling_batches": [int(b) for b in pick(FLAGS.scaling_batches, [50, 100, 200, 400],
                                               [50, 100, 200, 400])],
      "scaling_widths": [float(w) for w in pick(FLAGS.scaling_widths, [0.25, 0.5, 1, 2],
                                                [0.25, 0.5, 1, 2])],
      "seed": FLAGS.seed,
      "precision": FLAGS.precision,
      "before_after_cases": list(FLAGS.before_after_cases or
                                 [f"{m}@{w}" for m, w in caselib.BEFORE_AFTER]),
  }
  bad = sorted(set(s["sections"]) - set(SECTIONS))
  if bad:
    _bad_flags(f"Unknown sections {bad}; choose from {list(SECTIONS)}.")
  names = caselib.case_names()
  for key in ("cases", "scaling_cases"):
    bad = sorted(set(s[key]) - set(names))
    if bad:
      _bad_flags(f"Unknown {key} {bad}; choose from {names}.")
  for key in ("models", "modes_models"):
    bad = sorted(set(s[key]) - set(caselib.MODELS))
    if bad:
      _bad_flags(f"Unknown {key} {bad}; choose from {sorted(caselib.MODELS)}.")
  known = [f"{m}@{w}" for m, w in caselib.BEFORE_AFTER]
  bad = sorted(set(s["before_after_cases"]) - set(known))
  if bad:
    _bad_flags(f"Unknown before_after_cases {bad}; choose from {known}.")
  if s["memory_model"] not in caselib.MODELS:
    _bad_flags(f"Unknown memory_model {s['memory_model']!r}; choose from "
                         f"{sorted(caselib.MODELS)}.")
  if s["memory_steps"] < 2000 and not quick:
    print(f"note: --memory_steps={s['memory_steps']} is below the 2000 the targets ask for.")
  return s


def environment():
  cpu = platform.processor() or platform.machine()
  try:
    for line in open("/proc/cpuinfo"):
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  gpus = tf.config.list_physical_devices("GPU")
  details = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
             for g in gpus]
  return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
          "git_commit": records.git_commit(), "python": platform.python_version(),
          "tensorflow": tf.__version__, "cpu": cpu, "cpu_cores": os.cpu_count(),
          "gpus": details, "device": ", ".join(details) if details else f"CPU ({cpu})"}


def _case(name, model, s, batch_size=None, loop_steps=None):
  spec = caselib.MODELS[model]
  return caselib.build_case(name, spec["builder"], batch_size or spec["batch_size"],
                            spec["input_shape"], loop_steps=loop_steps or s["loop_steps"],
                            seed=s["seed"])


def _free():
  """Drop the finished case's model and graphs before the next one is built."""
  gc.collect()
  keras.backend.clear_session()


def section_ratios(s, bar):
  rows = []
  for model in s["models"]:
    base = None
    for name in [caselib.BASELINE] + [c for c in s["cases"] if c != caselib.BASELINE]:
      case = _case(name, model, s)
      t = harness.time_step(harness.compile_step(case.fn, "function"), s["warmup"],
                            s["repeats"])
      if name == caselib.BASELINE:
        base = t["median_s"]
      rows.append({"model": model, "case": name, "what": case.what, "params": case.model_params,
                   "batch": caselib.MODELS[model]["batch_size"],
                   "loop_steps": s["loop_steps"] if name in caselib.LOOPED else None,
                   "ms": 1e3 * t["median_s"], "ratio_to_sgd": t["median_s"] / base, **t})
      bar.update(1)
      del case
      _free()
  return rows


def section_modes(s, bar):
  rows = []
  for model in s["modes_models"]:
    for name in s["cases"]:
      row = {"model": model, "case": name}
      for mode in harness.MODES:
        case = _case(name, model, s)
        t = harness.time_step(harness.compile_step(case.fn, mode), s["warmup"], s["repeats"])
        row[f"{mode}_ms"] = 1e3 * t["median_s"]
        row[f"{mode}_first_call_s"] = t["first_call_s"]
        del case
        _free()
      row["function_speedup"] = row["eager_ms"] / row["function_ms"]
      row["xla_speedup"] = row["eager_ms"] / row["xla_ms"]
      # Per-op dispatch cost eager pays and a compiled step does not.
      row["eager_overhead_ms"] = row["eager_ms"] - row["function_ms"]
      rows.append(row)
      bar.update(1)
  return rows


def section_memory(s, bar):
  rows = []
  model = s["memory_model"]
  for name in s["cases"]:
    case = _case(name, model, s)
    m = harness.memory_run(harness.compile_step(case.fn, "function"), s["memory_steps"])
    rows.append({"model": model, "case": name,
                 "loop_steps": s["loop_steps"] if name in caselib.LOOPED else None,
                 "after_warmup_mb": m["after_warmup_bytes"] / 2**20,
                 "end_mb": m["end_bytes"] / 2**20, "peak_mb": m["peak_bytes"] / 2**20,
                 "growth_pct": 100 * m["growth_fraction"],
                 "slope_kb_per_1000_steps": m["slope_bytes_per_step"],  # bytes/step = kB/1000
                 **m})
    bar.update(1)
    del case
    _free()
  return rows


def section_scaling(s, bar):
  rows = []
  spec = caselib.MODELS["mnist_cnn"]

  def measure(axis, value, builder, batch):
    base = None
    for name in [caselib.BASELINE] + [c for c in s["scaling_cases"] if c != caselib.BASELINE]:
      _free()
      before = harness.current_bytes()
      harness.reset_peak()
      case = caselib.build_case(name, builder, batch, spec["input_shape"],
                                loop_steps=s["loop_steps"], seed=s["seed"])
      t = harness.time_step(harness.compile_step(case.fn, "function"), s["warmup"],
                            s["repeats"])
      base = t["median_s"] if name == caselib.BASELINE else base
      rows.append({"axis": axis, "value": value, "case": name, "batch": batch,
                   "params": case.model_params, "ms": 1e3 * t["median_s"],
                   "ratio_to_sgd": t["median_s"] / base,
                   # What building and running this case added at its peak (process RSS on a
                   # CPU, whose allocator may reuse memory freed by earlier cases; the
                   # allocator's own peak on a GPU).
                   "peak_added_mb": max(0, harness.peak_bytes() - before) / 2**20})
      bar.update(1)
      del case
      _free()

  for batch in s["scaling_batches"]:
    measure("batch", batch, "mnist_cnn", batch)
  for width in s["scaling_widths"]:
    measure("width", width, caselib.scaled_mnist_cnn(width), spec["batch_size"])
  return rows


def section_before_after(s, bar):
  rows = []
  sgd = {}
  for method, where in (c.split("@") for c in s["before_after_cases"]):
    if where in caselib.MODELS and where not in sgd:
      case = _case(caselib.BASELINE, where, s)
      sgd[where] = harness.time_step(harness.compile_step(case.fn, "function"), s["warmup"],
                                     s["repeats"])["median_s"]
      del case
      _free()
    before, after = caselib.build_before_after(method, where, s["loop_steps"], s["seed"])
    fns = {k: harness.compile_step(c.fn, "function") for k, c in (("before", before),
                                                                   ("after", after))}
    # Alternate the two, so a slower or busier stretch of the machine falls on both alike.
    times = {"before": [], "after": []}
    for _ in range(2):
      for key in ("before", "after"):
        times[key].append(harness.time_step(fns[key], s["warmup"], s["repeats"])["median_s"])
    b, a = min(times["before"]), min(times["after"])
    base = sgd.get(where)
    rows.append({"method": method, "where": where, "loop_steps": s["loop_steps"],
                 "before_ms": 1e3 * b, "after_ms": 1e3 * a, "speedup": b / a,
                 "before_x_sgd": b / base if base else None,
                 "after_x_sgd": a / base if base else None,
                 "before_what": before.what, "after_what": after.what})
    bar.update(1)
    del before, after, fns
    _free()
  return rows


def check_targets(results):
  """Each target: the measured value, the limit, met or not, per model or case."""
  checks = []
  for row in results.get("ratios", []):
    limit = RATIO_TARGETS.get(row["case"])
    if limit is not None:
      checks.append({"target": f"{row['case']} step <= {limit} x SGD", "where": row["model"],
                     "value": row["ratio_to_sgd"], "limit": limit,
                     "met": row["ratio_to_sgd"] <= limit})
  for row in results.get("modes", []):
    if row["case"] not in NOT_BILEVEL:
      checks.append({"target": f"tf.function >= {SPEEDUP_TARGET:g} x eager",
                     "where": f"{row['case']} / {row['model']}",
                     "value": row["function_speedup"], "limit": SPEEDUP_TARGET,
                     "met": row["function_speedup"] >= SPEEDUP_TARGET})
  for row in results.get("memory", []):
    checks.append({"target": f"memory growth after warm-up < {100 * GROWTH_TARGET:g} %",
                   "where": f"{row['case']} / {row['model']}",
                   "value": row["growth_pct"], "limit": 100 * GROWTH_TARGET,
                   "met": row["growth_fraction"] < GROWTH_TARGET})
  return checks


TABLES = {
    "ratios": [("model", "model"), ("case", "step"), ("loop_steps", "T"), ("ms", "ms"),
               ("ratio_to_sgd", "x SGD"), ("first_call_s", "trace+first s")],
    "modes": [("model", "model"), ("case", "step"), ("eager_ms", "eager ms"),
              ("function_ms", "tf.function ms"), ("xla_ms", "XLA ms"),
              ("function_speedup", "function/eager"), ("xla_speedup", "XLA/eager"),
              ("eager_overhead_ms", "eager overhead ms")],
    "memory": [("model", "model"), ("case", "step"), ("loop_steps", "T"),
               ("after_warmup_mb", "after warm-up MiB"), ("end_mb", "end MiB"),
               ("peak_mb", "peak MiB"), ("growth_pct", "growth %"),
               ("slope_kb_per_1000_steps", "kB / 1000 steps")],
    "scaling": [("axis", "axis"), ("value", "value"), ("case", "step"), ("batch", "batch"),
                ("params", "params"), ("ms", "ms"), ("ratio_to_sgd", "x SGD"),
                ("peak_added_mb", "peak added MiB")],
    "scaling_fits": [("axis", "axis"), ("case", "step"), ("against", "time ~ x^k, x ="),
                     ("points", "points"), ("exponent", "k"), ("r2", "R^2")],
    "before_after": [("method", "step"), ("where", "model / problem"), ("loop_steps", "T"),
                     ("before_ms", "before ms"), ("after_ms", "after ms"),
                     ("speedup", "before / after"), ("before_x_sgd", "before x SGD"),
                     ("after_x_sgd", "after x SGD")],
    "targets": [("target", "target"), ("where", "where"), ("value", "measured"),
                ("limit", "limit"), ("met", "met")],
}


def _bad_flags(message):
  """One line for a bad flag value (absl's UsageError would print the whole help first)."""
  sys.exit(f"error (flags): {message}")


def main(argv):
  if len(argv) > 1:
    _bad_flags(f"Unexpected arguments: {argv[1:]}")
  s = settings()
  keras.mixed_precision.set_global_policy(s["precision"])
  os.makedirs(FLAGS.out_dir, exist_ok=True)
  env = environment()
  print(f"Benchmark on {env['device']}, {env['cpu_cores']} cores, TensorFlow "
        f"{env['tensorflow']}; settings: {json.dumps(s)}", flush=True)
  n = len(s["cases"])
  total = {"ratios": len(s["models"]) * (n + (caselib.BASELINE not in s["cases"])),
           "modes": len(s["modes_models"]) * n, "memory": n,
           "scaling": (len(s["scaling_batches"]) + len(s["scaling_widths"]))
           * len(set(s["scaling_cases"]) | {caselib.BASELINE}),
           "before_after": len(s["before_after_cases"])}
  results = {"environment": env, "settings": s}
  runners = {"ratios": section_ratios, "modes": section_modes, "memory": section_memory,
             "scaling": section_scaling, "before_after": section_before_after}
  for section in SECTIONS:
    if section not in s["sections"]:
      continue
    bar = tqdm.tqdm(total=total[section], desc=section, unit="case", file=sys.stderr,
                    dynamic_ncols=True)
    start = tf.timestamp()
    results[section] = runners[section](s, bar)
    bar.close()
    results[f"{section}_seconds"] = float(tf.timestamp() - start)
    print(f"\n== {section} ==\n" + records.summary_table(results[section], TABLES[section]),
          flush=True)
    if section == "scaling":
      results["scaling_fits"] = harness.fit_exponents(results["scaling"])
      print("\n== scaling fits ==\n" + records.summary_table(results["scaling_fits"],
                                                            TABLES["scaling_fits"]), flush=True)
    records.write_json(os.path.join(FLAGS.out_dir, "benchmark.json"), results)
  results["targets"] = check_targets(results)
  print("\n== targets ==\n" + records.summary_table(results["targets"], TABLES["targets"]))
  records.write_json(os.path.join(FLAGS.out_dir, "benchmark.json"), results)
  md = [f"Measured on {env['device']} ({env['cpu_cores']} cores), TensorFlow "
        f"{env['tensorflow']}, commit {env['git_commit']}, {env['date']}; settings: "
        f"`{json.dumps(s)}`."]
  for section in SECTIONS + ("scaling_fits", "targets"):
    if results.get(section):
      md.append(f"\n### {section}\n\n" + records.markdown_table(results[section], TABLES[section]))
  with open(os.path.join(FLAGS.out_dir, "benchmark.md"), "w") as fh:
    fh.write("\n".join(md) + "\n")
  print(f"\nWrote {os.path.join(FLAGS.out_dir, 'benchmark.json')} and benchmark.md")


if __name__ == "__main__":
  app.run(main)
