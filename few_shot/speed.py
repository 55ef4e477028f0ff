"""Time one few-shot meta-iteration two ways, alternately in one process.

  python few_shot/speed.py --method=penalty --meta_batch=10 --inner_steps=1   # the README's
  python few_shot/speed.py --compare=per_image                                # a user encoder
  python few_shot/speed.py --meta_batch=2 --queries=2 --repeats=1             # seconds

One meta-iteration of --method (its default config, every inner loop --inner_steps long) on
random 28 x 28 images of --meta_batch N-way K-shot tasks. --compare says which two:

  pull_back  the Conv4 encoder; "off" is the default (``common.bilevel.base.FixedOuter.pull_back
             = False``: the u-step encodes the tasks again), "on" starts the u-step from the
             features ``fix_outer`` computed for the v-steps and pulls its gradient back
             through the recorded forward pass.
  per_image  a user's 4-D encoder (--encoder=module.path:function; by default ``conv4_plain``
             below, Conv4 without batch norm) that acts on each image alone: "off" applies it
             set by set (the default), "on" encodes every set of the meta-batch in one call
             (``encoder_one_call=True``).

Both are compiled with tf.function, warmed up by one call each, then timed alternately,
--repeats calls each, so a slower stretch of the machine falls on both alike. Prints the median
and the fastest call of each, and the ratio of the medians; --out also writes them as JSON.
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from common import cli  # noqa: E402

# TensorFlow's C++ start-up lines would come before a bad flag's one-line error.
cli.import_tensorflow_quietly()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import records  # noqa: E402
from common.errors import ConfigError  # noqa: E402
from common.bilevel import METHODS, base, build_method  # noqa: E402
from few_shot import models  # noqa: E402
from few_shot.problem import FewShotProblem  # noqa: E402

METHOD_NAMES = ("penalty", "approxgrad", "gd")
INPUT_SHAPE = (28, 28, 1)          # Omniglot
SETTINGS = ("off", "on")
WHAT = {"pull_back": {"off": "u-step encodes the tasks again (the default)",
                      "on": "u-step pulls back through fix_outer's features"},
        "per_image": {"off": "the encoder applied set by set",
                      "on": "every set encoded in one call (encoder_one_call)"}}


def conv4_plain(input_shape):
  """A user's 4-D encoder as one might write it: Conv4's layers without batch norm."""
  inputs = keras.Input(tuple(input_shape))
  x = inputs
  for block in range(4):
    x = keras.layers.Conv2D(64, 3, padding="same",
                            activation="relu" if block < 3 else None)(x)
    x = keras.layers.MaxPooling2D(2)(x)
  return keras.Model(inputs, keras.layers.Flatten()(x))


def build_steps(method, settings, seed=0, compare="pull_back", encoder="conv4"):
  """(off, on): two copies of one meta-iteration of ``method``, each a function of no arguments
  returning its metrics, built on the same encoder, heads and tasks (from ``seed``).
  ``compare``: "pull_back" (each reads ``FixedOuter.pull_back`` as off / on while it runs and
  is traced) or "per_image" (``encoder``, which must act on each image alone, applied set by
  set / in one call: ``encoder_one_call``). ``settings``: meta_batch, ways, shots, queries,
  inner_steps. A step updates its own copy's variables."""
  m, n = int(settings["meta_batch"]), int(settings["ways"])
  steps = []
  for on in (False, True):
    keras.utils.set_random_seed(seed)
    model, set_aware = models.build_encoder(encoder, INPUT_SHAPE)
    if compare == "per_image" and (set_aware or not models.acts_per_image(model)):
      raise ConfigError(f"--compare=per_image needs a 4-D encoder that acts on each image "
                        f"alone (no batch norm, dropout or layer of its own); {encoder!r} "
                        "does not.")
    problem = FewShotProblem(model, set_aware, m, n, one_call=on and compare == "per_image")
    problem.init_heads(tf.constant([seed, 0]))
    rng = np.random.default_rng(seed)
    images = lambda k: tf.constant(rng.random((m, n * k, *INPUT_SHAPE), dtype=np.float32))
    labels = lambda k: tf.constant(np.tile(np.repeat(np.arange(n), k), (m, 1)), tf.int32)
    batch = {"support_x": images(settings["shots"]), "support_y": labels(settings["shots"]),
             "query_x": images(settings["queries"]), "query_y": labels(settings["queries"])}
    config = METHODS[method].default_config()
    for key in METHODS[method].loop_keys:
      config[key] = int(settings["inner_steps"])
    step = base.combined_step(problem, build_method(method, problem, config))
    steps.append(_with_pull_back(on and compare == "pull_back", step, batch))
  return tuple(steps)


def _with_pull_back(on, step, batch):
  """``step(batch)`` with ``FixedOuter.pull_back`` set to ``on`` (it is read when tracing)."""

  def run():
    saved, base.FixedOuter.pull_back = base.FixedOuter.pull_back, on
    try:
      return step(batch)
    finally:
      base.FixedOuter.pull_back = saved

  return run


def _call(fn):
  """Seconds of one call, its results fetched (so the device has finished)."""
  start = time.perf_counter()
  metrics = fn()
  _ = [v.numpy() for v in metrics.values()]
  return time.perf_counter() - start


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error (flags): Unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  settings = {k: f[k].value for k in ("meta_batch", "ways", "shots", "queries", "inner_steps")}
  encoder = f.encoder or ("conv4" if f.compare == "pull_back" else "few_shot.speed:conv4_plain")
  try:
    steps = build_steps(f.method, settings, f.seed, f.compare, encoder)
  except ValueError as e:       # ConfigError, or an encoder that cannot be loaded
    sys.exit(f"error ({type(e).__name__}): {e}")
  fns = dict(zip(SETTINGS, (tf.function(s) for s in steps)))
  print(f"{f.method}, {encoder}, {f.meta_batch} tasks {f.ways}-way {f.shots}-shot, {f.queries} "
        f"queries per class, T = {f.inner_steps}, {f.compare} off and on, on "
        f"{'GPU' if tf.config.list_physical_devices('GPU') else 'CPU'}",
        flush=True)
  first = {k: _call(fn) for k, fn in fns.items()}       # tracing and the first call
  times = {k: [] for k in SETTINGS}
  for _ in range(f.repeats):
    for k in SETTINGS:
      times[k].append(_call(fns[k]))
  off = statistics.median(times["off"])
  rows = [{"setting": k, "what": WHAT[f.compare][k], "median_s": statistics.median(times[k]),
           "min_s": min(times[k]), "off_over_this": off / statistics.median(times[k]),
           "first_call_s": first[k], "times_s": times[k]} for k in SETTINGS]
  print(records.summary_table(rows, [("setting", f.compare), ("median_s", "median s"),
                                     ("min_s", "min s"), ("off_over_this", "off / this"),
                                     ("what", "what")]))
  if f.out:
    records.write_json(f.out, {"method": f.method, "compare": f.compare, "encoder": encoder,
                               "settings": settings, "seed": f.seed,
                               "repeats": f.repeats, "rows": rows})
    print(f"Wrote {f.out}")


def define_flags():
  flags.DEFINE_enum("method", "penalty", list(METHOD_NAMES), "The method whose step is timed.")
  flags.DEFINE_enum("compare", "pull_back", list(WHAT), "Which two versions are timed.")
  flags.DEFINE_string("encoder", None, "conv4 or a user's module.path:function (default: conv4 "
                      "for pull_back, few_shot.speed:conv4_plain for per_image).")
  flags.DEFINE_integer("meta_batch", 30, "Tasks per meta-iteration.", lower_bound=1)
  flags.DEFINE_integer("ways", 5, "Classes per task (N).", lower_bound=2)
  flags.DEFINE_integer("shots", 1, "Support images per class (K).", lower_bound=1)
  flags.DEFINE_integer("queries", 15, "Query images per class.", lower_bound=1)
  flags.DEFINE_integer("inner_steps", 1, "Length of each of the method's inner loops (T).",
                       lower_bound=1)
  flags.DEFINE_integer("repeats", 3, "Timed calls of each setting, after one warm-up call.",
                       lower_bound=1)
  flags.DEFINE_integer("seed", 0, "Seed of the encoder, the heads and the images.")
  flags.DEFINE_string("out", None, "Optional JSON file for the times.")


if __name__ == "__main__":
  define_flags()
  # A bad flag value is one line ("error (flags): ..."), as in the families' run.py.
  app.run(main, flags_parser=cli.parse_flags)
