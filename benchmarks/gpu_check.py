"""One check for a machine with one GPU, in under 10 minutes; one JSON and one Markdown table.

  python benchmarks/gpu_check.py --out_dir=runs/gpu_check --omniglot_dir=DIR
  bash benchmarks/gpu_check.sh --out_dir=runs/gpu_check --omniglot_dir=DIR     # the same
  python benchmarks/gpu_check.py --smoke      # seconds-long settings: runs on a CPU too (CI)

Three parts, each a subprocess of the project's own commands, so a failure in one is reported
and the others still run:
  1. benchmark   the quick benchmark's ratios and modes sections (tf.function vs eager vs
                 tf.function(jit_compile=True), i.e. XLA) on the MNIST and CIFAR-10 CNNs
  2. bfloat16    the ratios section again under the mixed_bfloat16 policy, for SGD, penalty,
                 L2RW and data parameters: the speed-up over float32, step by step
  3. few-shot    the paper-length Omniglot 5-way 1-shot penalty run (5,000 meta-iterations)
                 for at most --fewshot_seconds: how many meta-iterations fit, the time per
                 meta-iteration, the last meta-test accuracy reached (the paper: 99.45%) and
                 the projected time of the whole run. Re-running the same command resumes it.
Writes gpu_check.json and gpu_check.md into --out_dir.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

from absl import app, flags

from common import records

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAPER_OMNIGLOT_5W1S = 0.9945

flags.DEFINE_string("out_dir", "runs/gpu_check", "Where gpu_check.json / gpu_check.md go.")
flags.DEFINE_string("omniglot_dir", "", "Omniglot for the few-shot part (images_background.npz "
                    "and images_evaluation.npz; see few_shot/README.md). Empty: skipped.")
flags.DEFINE_integer("fewshot_seconds", 240, "Wall-time budget of the few-shot part.")
flags.DEFINE_bool("smoke", False, "Seconds-long settings (logistic regression, tiny few-shot "
                  "run) that check the script itself, on any machine.")
FLAGS = flags.FLAGS


def _run(args, timeout):
  """(return code, stdout tail, seconds) of ``python args`` in the repository root."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  start = time.time()
  try:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    code, out = proc.returncode, proc.stdout + proc.stderr
  except subprocess.TimeoutExpired as e:
    code = "timeout"
    out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
  return code, out[-3000:], time.time() - start


def _benchmark(out, smoke, precision, cases, sections):
  models = "mnist_logreg" if smoke else "mnist_cnn,cifar10_cnn"
  args = ["benchmarks/run.py", "--quick", f"--out_dir={out}", f"--sections={sections}",
          f"--models={models}", f"--modes_models={models}", f"--cases={cases}",
          f"--precision={precision}"]
  if smoke:
    args += ["--repeats=1", "--warmup=1", "--loop_steps=1"]
  code, tail, seconds = _run(args, 900)
  path = pathlib.Path(out) / "benchmark.json"
  result = json.loads(path.read_text()) if code == 0 and path.exists() else None
  return {"returncode": code, "seconds": seconds, "result": result,
          **({} if result else {"output_tail": tail})}


def _fewshot(out, smoke, data_dir, budget):
  if not data_dir:
    return {"skipped": "no --omniglot_dir"}
  arg = "5way,1shot,tiny" if smoke else "5way,1shot"
  workdir = pathlib.Path(out) / "omniglot_5w1s"
  args = ["few_shot/run.py", f"--config=few_shot/configs/omniglot.py:{arg}",
          f"--config.data_dir={data_dir}", f"--workdir={workdir}",
          "--config.runner.checkpoint_every=100"]
  code, tail, seconds = _run(args, budget)
  steps, times, accuracy = [], [], None
  metrics = workdir / "metrics.jsonl"
  if metrics.exists():
    for line in metrics.read_text().splitlines():
      rec = json.loads(line)
      if rec.get("kind") == "step":
        steps.append(rec["step"])
        times.append(rec["time"])
      if "test_accuracy" in rec:
        accuracy = (rec["step"], rec["test_accuracy"])
  per_iteration = ((times[-1] - times[0]) / (steps[-1] - steps[0])
                   if len(steps) > 1 and steps[-1] > steps[0] else None)
  total = 2 if smoke else 5000
  return {"returncode": code, "seconds": seconds, "meta_iterations_done": max(steps or [0]),
          "meta_iterations_paper": total, "seconds_per_meta_iteration": per_iteration,
          "projected_hours_for_the_run": per_iteration * total / 3600 if per_iteration else None,
          "last_test_accuracy": accuracy, "paper_test_accuracy": PAPER_OMNIGLOT_5W1S,
          **({"output_tail": tail} if code not in (0, "timeout") else {})}


def _rows(report):
  """The Markdown table's rows: what, where, value."""
  rows = []
  bench = (report["benchmark"].get("result") or {})
  for r in bench.get("modes", []):
    rows.append({"what": f"{r['case']} step: tf.function / XLA ms", "where": r["model"],
                 "value": f"{r['function_ms']:.2f} / {r['xla_ms']:.2f} "
                          f"(XLA speed-up {r['function_ms'] / r['xla_ms']:.2f}x)"})
  f32 = {(r["model"], r["case"]): r["ms"] for r in bench.get("ratios", [])}
  for r in (report["bfloat16"].get("result") or {}).get("ratios", []):
    base = f32.get((r["model"], r["case"]))
    rows.append({"what": f"{r['case']} step: mixed_bfloat16 ms", "where": r["model"],
                 "value": f"{r['ms']:.2f}" + (f" (speed-up over float32 {base / r['ms']:.2f}x)"
                                               if base else "")})
  fs = report["fewshot"]
  if "skipped" in fs:
    rows.append({"what": "Omniglot 5-way 1-shot", "where": "-", "value": fs["skipped"]})
  else:
    acc = fs["last_test_accuracy"]
    per = fs["seconds_per_meta_iteration"]
    rows.append({"what": "Omniglot 5-way 1-shot: meta-iterations in the budget",
                 "where": "penalty", "value": f"{fs['meta_iterations_done']} of "
                                              f"{fs['meta_iterations_paper']}"})
    rows.append({"what": "seconds per meta-iteration (projected whole run)", "where": "penalty",
                 "value": f"{per:.3f} ({fs['projected_hours_for_the_run']:.2f} h)" if per
                 else "not measured"})
    rows.append({"what": "last meta-test accuracy (paper: 99.45%)", "where": "penalty",
                 "value": f"{acc[1]:.4f} at meta-iteration {acc[0]}" if acc
                 else "no evaluation reached"})
  return rows


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error (flags): unexpected arguments {argv[1:]}")
  out = pathlib.Path(FLAGS.out_dir).resolve()
  out.mkdir(parents=True, exist_ok=True)
  smoke = FLAGS.smoke
  print(f"gpu_check ({'smoke' if smoke else 'full'}) -> {out}", flush=True)
  report = {"smoke": smoke}
  report["benchmark"] = _benchmark(out / "benchmark_float32", smoke, "float32",
                                   "sgd,penalty,l2rw,data_parameters,penalty_inner",
                                   "ratios,modes")
  print(f"benchmark: {report['benchmark']['returncode']}", flush=True)
  report["bfloat16"] = _benchmark(out / "benchmark_bfloat16", smoke, "mixed_bfloat16",
                                  "sgd,penalty,l2rw,data_parameters", "ratios")
  print(f"bfloat16: {report['bfloat16']['returncode']}", flush=True)
  report["fewshot"] = _fewshot(out, smoke, FLAGS.omniglot_dir, FLAGS.fewshot_seconds)
  print(f"few-shot: {report['fewshot'].get('returncode', 'skipped')}", flush=True)
  env = (report["benchmark"].get("result") or {}).get("environment", {})
  report["environment"] = env
  records.write_json(out / "gpu_check.json", report)
  rows = _rows(report)
  md = (f"GPU check on {env.get('device', 'unknown device')}, TensorFlow "
        f"{env.get('tensorflow', '?')}, commit {env.get('git_commit', '?')}"
        f"{' (smoke settings: not a measurement)' if smoke else ''}.\n\n"
        + records.markdown_table(rows, [("what", "what"), ("where", "where"),
                                        ("value", "value")]))
  records.write_text(out / "gpu_check.md", md + "\n")
  print(md)
  failed = [k for k in ("benchmark", "bfloat16", "fewshot")
            if report[k].get("returncode") not in (0, "timeout", None)]
  if failed:
    sys.exit(f"error: part(s) {failed} failed; their output is in gpu_check.json.")


if __name__ == "__main__":
  app.run(main)
