"""Timing and memory measurement for the benchmark (``benchmarks/run.py`` drives it).

Times are wall-clock medians of single steps, each ended by copying the step's metrics to
the host (so asynchronous execution cannot hide work), after warm-up calls that trace and
compile. Memory is the process's resident set (CPU) or the accelerator allocator's bytes
(GPU), sampled while the step runs thousands of times.
"""

import os
import pathlib
import time

import numpy as np
import tensorflow as tf

MODES = ("eager", "function", "xla")


def compile_step(fn, mode):
  """``fn`` as run in ``mode``: eager (as is), function (tf.function), xla (jit_compile)."""
  if mode == "eager":
    return fn
  if mode not in MODES:
    raise ValueError(f"Unknown mode {mode!r}; choose from {MODES}.")
  return tf.function(fn, jit_compile=(mode == "xla"))


def _sync(metrics):
  for value in tf.nest.flatten(metrics):
    np.asarray(value)


def time_step(fn, warmup=2, repeats=10):
  """Median and quartiles (seconds) of ``repeats`` calls of the (compiled) step ``fn``.

  The first call's time (tracing and compilation included) is reported separately.
  """
  start = time.perf_counter()
  _sync(fn())
  first = time.perf_counter() - start
  for _ in range(max(0, warmup - 1)):
    _sync(fn())
  samples = []
  for _ in range(repeats):
    start = time.perf_counter()
    _sync(fn())
    samples.append(time.perf_counter() - start)
  q25, median, q75 = np.percentile(samples, [25, 50, 75])
  return {"median_s": float(median), "q25_s": float(q25), "q75_s": float(q75),
          "repeats": int(repeats), "first_call_s": float(first)}


# -- memory --------------------------------------------------------------------------------

def _gpu():
  gpus = tf.config.list_logical_devices("GPU")
  return gpus[0].name if gpus else None


def memory_kind():
  return "gpu_allocator" if _gpu() else "process_rss"


def current_bytes():
  """Bytes in use now: the GPU allocator's, else this process's resident set."""
  gpu = _gpu()
  if gpu:
    return int(tf.config.experimental.get_memory_info(gpu.split("device:")[-1])["current"])
  with open("/proc/self/statm") as fh:
    return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak():
  """Start a new peak: the GPU allocator's peak, or the kernel's VmHWM (Linux clear_refs)."""
  gpu = _gpu()
  if gpu:
    tf.config.experimental.reset_memory_stats(gpu.split("device:")[-1])
    return
  try:
    pathlib.Path("/proc/self/clear_refs").write_text("5")
  except OSError:
    pass        # not Linux, or not permitted: the peak is then the process's lifetime peak


def peak_bytes():
  gpu = _gpu()
  if gpu:
    return int(tf.config.experimental.get_memory_info(gpu.split("device:")[-1])["peak"])
  for line in pathlib.Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmHWM:"):
      return int(line.split()[1]) * 1024
  return current_bytes()


def memory_run(fn, steps=2000, warmup_steps=100, samples=20):
  """Run the compiled step ``steps`` times after ``warmup_steps``; memory before and after.

  Returns bytes after warm-up, at the end and at the peak of the measured steps, the growth
  fraction (end - after warm-up) / after warm-up, and the least-squares slope in bytes per
  step over ``samples`` evenly spaced samples (a leak shows as a steady positive slope).
  """
  for _ in range(warmup_steps):
    _sync(fn())
  reset_peak()
  base = current_bytes()
  points, every = [], max(1, steps // samples)
  start = time.perf_counter()
  for i in range(steps):
    _sync(fn())
    if (i + 1) % every == 0:
      points.append((i + 1, current_bytes()))
  seconds = time.perf_counter() - start
  end = current_bytes()
  x, y = np.array(points, dtype=np.float64).T
  slope = float(np.polyfit(x, y, 1)[0]) if len(points) > 1 else 0.0
  return {"kind": memory_kind(), "steps": int(steps), "warmup_steps": int(warmup_steps),
          "after_warmup_bytes": base, "end_bytes": end, "peak_bytes": max(peak_bytes(), end),
          "growth_fraction": (end - base) / base, "slope_bytes_per_step": slope,
          "seconds": seconds}


def fit_exponents(rows):
  """Per axis and step: the least-squares k of log(ms) = a + k log(x), x the batch size (batch
  axis) or the parameter count (width axis), with its R^2; two or more points needed."""
  fits = []
  for axis, key, against in (("batch", "batch", "batch size"), ("width", "params", "parameters")):
    for case in dict.fromkeys(r["case"] for r in rows if r["axis"] == axis):
      pts = [r for r in rows if r["axis"] == axis and r["case"] == case]
      if len({r[key] for r in pts}) < 2:
        continue
      x = np.log([float(r[key]) for r in pts])
      y = np.log([r["ms"] for r in pts])
      k, a = np.polyfit(x, y, 1)
      resid = y - (a + k * x)
      total = float(np.sum((y - y.mean()) ** 2))
      fits.append({"axis": axis, "against": against, "case": case, "points": len(pts),
                   "exponent": float(k), "r2": 1.0 - float(np.sum(resid ** 2)) / total
                   if total > 0 else 1.0})
  return fits
