"""The benchmark harness: its measurements mean what they say, and the command runs."""

import json
import time

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import cases, harness
from tests import cli


def test_time_step_measures_the_step_not_the_first_call():
  calls = []

  def step():
    time.sleep(0.2 if not calls else 0.01)     # a slow first call, like tracing
    calls.append(1)
    return {"x": tf.constant(1.0)}

  t = harness.time_step(step, warmup=2, repeats=5)
  assert len(calls) == 7
  assert 0.009 < t["median_s"] < 0.05
  assert t["first_call_s"] >= 0.2


def test_memory_run_sees_a_leak_and_its_rate():
  kept = []

  def leaky():
    kept.append(np.ones(2**18))                  # 2 MiB per step, touched
    return {}

  m = harness.memory_run(leaky, steps=60, warmup_steps=2, samples=10)
  assert m["growth_fraction"] > 0
  assert 1.5 * 2**20 < m["slope_bytes_per_step"] < 2.5 * 2**20
  assert m["peak_bytes"] >= m["end_bytes"] - 4 * 2**20

  def clean():
    return {"y": tf.reduce_sum(tf.ones([100]))}

  m = harness.memory_run(harness.compile_step(clean, "function"), steps=300, warmup_steps=50)
  assert abs(m["slope_bytes_per_step"]) < 2**14


@pytest.mark.parametrize("name", cases.case_names())
def test_every_case_runs_compiled_and_eagerly_with_finite_metrics(name):
  case = cases.build_case(name, "mnist_logreg", 8, (28, 28, 1), loop_steps=1)
  for mode in ("eager", "function"):
    out = harness.compile_step(case.fn, mode)()
    assert all(np.isfinite(np.asarray(v)).all() for v in out.values()), (name, mode, out)


def test_every_registered_method_is_a_case():
  from common.bilevel import METHODS
  assert set(METHODS) <= set(cases.case_names())


def test_scaled_cnn_grows_with_width():
  small = cases.build_case("sgd", cases.scaled_mnist_cnn(0.25), 4, (28, 28, 1))
  big = cases.build_case("sgd", cases.scaled_mnist_cnn(1.0), 4, (28, 28, 1))
  assert big.model_params == 1389578 and small.model_params < big.model_params / 10


@pytest.mark.slow
def test_command_line_writes_tables_json_and_target_checks(tmp_path):
  proc = cli.ok(cli.run(
      "benchmarks/run.py", f"--out_dir={tmp_path}", "--models=mnist_logreg",
      "--modes_models=mnist_logreg", "--cases=sgd,penalty,l2rw,data_parameters,penalty_inner",
      "--repeats=2", "--warmup=1", "--loop_steps=2", "--memory_steps=40",
      "--scaling_cases=sgd,l2rw", "--scaling_batches=8,16", "--scaling_widths=0.1"))
  out = json.loads((tmp_path / "benchmark.json").read_text())
  for section in ("ratios", "modes", "memory", "scaling", "targets", "environment"):
    assert out[section], section
  sgd = [r for r in out["ratios"] if r["case"] == "sgd"][0]
  assert sgd["ratio_to_sgd"] == 1.0
  penalty = [r for r in out["ratios"] if r["case"] == "penalty"][0]
  assert penalty["loop_steps"] == 2 and penalty["ratio_to_sgd"] > 1.0
  assert {r["case"] for r in out["modes"]} == {"sgd", "penalty", "l2rw", "data_parameters",
                                              "penalty_inner"}
  assert all(r["eager_ms"] > 0 and r["xla_ms"] > 0 for r in out["modes"])
  assert {t["target"].split()[0] for t in out["targets"]} >= {"l2rw", "penalty_inner",
                                                             "data_parameters", "tf.function",
                                                             "memory"}
  assert "== targets ==" in proc.stdout
  assert "### ratios" in (tmp_path / "benchmark.md").read_text()
  # Two batch sizes give a fitted exponent per step; one width gives none.
  fits = out["scaling_fits"]
  assert {(f["axis"], f["case"]) for f in fits} == {("batch", "sgd"), ("batch", "l2rw")}
  assert all(r["peak_added_mb"] >= 0 for r in out["scaling"])
  assert "### scaling_fits" in (tmp_path / "benchmark.md").read_text()


def test_bad_arguments_are_one_line_errors(tmp_path):
  proc = cli.run("benchmarks/run.py", f"--out_dir={tmp_path}", "--cases=sgd,nope")
  assert proc.returncode != 0 and "Unknown cases ['nope']" in proc.stderr + proc.stdout
  # The reason alone, not after the whole flag help.
  assert proc.stderr.strip().splitlines()[-1].startswith("error (flags): Unknown cases ['nope']")
  assert "--memory_steps" not in proc.stderr + proc.stdout
  proc = cli.run("benchmarks/run.py", f"--out_dir={tmp_path}", "--sections=speed")
  assert proc.returncode != 0 and "Unknown sections" in proc.stderr + proc.stdout


def test_scaling_exponents_recover_a_power_law():
  rows = [{"axis": "batch", "case": "l2rw", "batch": b, "params": 1000, "ms": 3.0 * b ** 0.8}
          for b in (50, 100, 200, 400)]
  rows += [{"axis": "width", "case": "l2rw", "batch": 200, "params": p, "ms": 0.01 * p ** 1.1}
           for p in (1e4, 4e4, 1.6e5, 6.4e5)]
  rows += [{"axis": "width", "case": "sgd", "batch": 200, "params": 1e4, "ms": 1.0}]   # 1 point
  fits = {(f["axis"], f["case"]): f for f in harness.fit_exponents(rows)}
  assert set(fits) == {("batch", "l2rw"), ("width", "l2rw")}
  assert fits[("batch", "l2rw")]["exponent"] == pytest.approx(0.8)
  assert fits[("width", "l2rw")]["exponent"] == pytest.approx(1.1)
  assert fits[("batch", "l2rw")]["r2"] == pytest.approx(1.0)
  assert fits[("width", "l2rw")]["against"] == "parameters"


@pytest.mark.parametrize("method,where", [("approxgrad", "mnist_logreg"),
                                          ("penalty", "mnist_logreg")])
def test_before_and_after_take_the_same_step(method, where, monkeypatch):
  """The before_after section times two versions of one step: they must compute the same.
  (The few-shot pull-back's two versions: tests/few_shot/test_speed.py.)"""
  monkeypatch.setitem(cases.MODELS, where, {**cases.MODELS[where], "batch_size": 8})
  before, after = cases.build_before_after(method, where, loop_steps=2)
  got_before = {k: float(v) for k, v in tf.function(before.fn)().items()}
  got_after = {k: float(v) for k, v in tf.function(after.fn)().items()}
  assert set(got_before) <= set(got_after)
  for k in got_before:
    np.testing.assert_allclose(got_after[k], got_before[k], rtol=2e-4, err_msg=k)
  assert before.name != after.name
  if method == "approxgrad":       # the penalty step did not change: the noise control
    assert before.what != after.what


def test_before_after_cases_are_checked(tmp_path):
  proc = cli.run("benchmarks/run.py", f"--out_dir={tmp_path}", "--sections=before_after",
                 "--before_after_cases=penalty@omniglot_5way1shot")
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "error (flags): Unknown before_after_cases ['penalty@omniglot_5way1shot']")
