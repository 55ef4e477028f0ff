"""The synthetic problems under tf.distribute and mixed precision. There are no data rows:
every replica computes the same full costs and ``distribute.gradients`` (each replica's share
seeded with 1 / replicas, then summed) must give one device's gradients. Each method's step on
SMD23 over two logical CPU devices (conftest splits the CPU) equals the one-device step in
float64; the command line runs mirrored (the same curves as one device); the costs in mixed
precision are evaluated in 16 bits."""

import json

import numpy as np
import pytest
import tensorflow as tf

from common import distribute
from tests import replication
from common.bilevel import base, build_method
from synthetic import experiment
from synthetic.configs import default as default_config
from synthetic.problems import PROBLEMS
from tests import cli

TINY = "--config=synthetic/configs/default.py:tiny"
METHODS = ("gd", "rmd", "approxgrad", "penalty")     # the default job's


def _run(problem_name, method_name, strategy, steps=3):
  config = default_config.get_config("tiny")
  with distribute.scope(strategy):
    problem = PROBLEMS[problem_name](dtype=tf.float64)
    method = build_method(method_name, problem, experiment.method_config(config, method_name, 2))
  distribute.check_supported(strategy, problem, method)
  problem.reinitialise([0, 1])
  step = base.combined_step(problem, method)
  if strategy is not None:
    step = distribute.replicated(strategy, step)
  # Eager: the same replicated maths without tracing eight unrolled graphs (the command-line
  # run below compiles the step).
  metrics = [{k: float(v) for k, v in step({}).items()} for _ in range(steps)]
  state = {f"{i}:{v.name}": replication.copies(v) for i, v in enumerate(problem.variables + method.variables)}
  return metrics, state


@pytest.mark.parametrize("problem_name", ["smd23"])      # A rank-deficient: every cost term
def test_every_method_over_two_replicas_equals_one_device(problem_name):
  strategy = replication.mirrored()
  for method_name in METHODS:
    one_metrics, one_state = _run(problem_name, method_name, None)
    two_metrics, two_state = _run(problem_name, method_name, strategy)
    replication.assert_same_run(one_metrics, one_state, two_metrics, two_state,
                                f"{problem_name} {method_name}")


def test_mixed_precision_evaluates_the_costs_in_16_bits():
  exact, mixed = PROBLEMS["smd23"](), PROBLEMS["smd23"](compute_dtype=tf.bfloat16)
  for p in (exact, mixed):
    p.reinitialise([0, 0])
  u, v = base.values(exact.outer_variables), base.values(exact.inner_variables)
  f, f16 = exact.outer_cost(u, v, None), mixed.outer_cost(u, v, None)
  assert f16.dtype == tf.float32 and f16 != f and float(f16) == pytest.approx(float(f), rel=2e-2)
  with tf.GradientTape() as tape:
    tape.watch(v)
    g = mixed.inner_cost(u, v, None)
  assert all(x.dtype == tf.float32 for x in tape.gradient(g, v))


@pytest.mark.slow
def test_tiny_run_mirrored_gives_the_one_device_curves(tmp_path):
  """The tiny job (SMD23, the penalty method) mirrored over two logical CPUs through the
  command line, beside the same job on one device in this process."""
  two = cli.start("synthetic/run.py", TINY, "--config.problems=('smd23',)",
                  "--config.methods=('penalty',)", f"--workdir={tmp_path / 'two'}",
                  *cli.MIRRORED)
  config = default_config.get_config("tiny")
  config.problems, config.methods = ("smd23",), ("penalty",)
  experiment.run(config, str(tmp_path / "one"), log=lambda *_: None)
  assert "Data-parallel over 2 replicas (MirroredStrategy)" in cli.finish(two)
  name = "smd23_penalty_T2.npz"
  with np.load(tmp_path / "one" / "curves" / name) as one, \
      np.load(tmp_path / "two" / "curves" / name) as two:
    for key in ("error", "f", "g", "metric_rho", "metric_passed"):
      # Two halves of a gradient sum exactly to the gradient: the same curves, bit for bit.
      np.testing.assert_array_equal(two[key], one[key], err_msg=key)
    assert np.isfinite(two["error"]).all() and (two["error"][:, -1] < two["error"][:, 0]).all()
  # The runner block is part of a run's identity only when it is not the default.
  for name, has_runner in (("one", False), ("two", True)):
    assert ("runner" in json.loads((tmp_path / name / "config.json").read_text())) == has_runner
