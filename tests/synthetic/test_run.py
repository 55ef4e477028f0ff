"""synthetic/run.py through its real command line."""

import json

import numpy as np
import pytest

from tests import cli

TINY = "--config=synthetic/configs/default.py:tiny"


def _run(*args, timeout=300):
  return cli.run("synthetic/run.py", *args, timeout=timeout)


_ok = cli.ok


@pytest.mark.slow
def test_tiny_run_writes_curves_table_figures_and_resumes(tmp_path):
  proc = _ok(_run(TINY, f"--workdir={tmp_path}"))
  methods = ("gd", "rmd", "approxgrad", "penalty")
  errors = {}
  for problem in ("smd20", "smd23"):
    for method in methods:
      with np.load(tmp_path / "curves" / f"{problem}_{method}_T2.npz") as z:
        errors[(problem, method)] = z["error"].copy()
        # 2 trials; records at 0, 1, 11, 21, 31.
        np.testing.assert_array_equal(z["steps"], [0, 1, 11, 21, 31])
        for key in ("error", "f", "g", "seconds"):
          assert z[key].shape == (2, 5), key
          assert np.isfinite(z[key]).all(), key
        assert (np.diff(z["seconds"], axis=1) > 0).all()
        assert int(z["tracing_count"]) == 1
        # Trial k is the same instance for every method: same initial error.
        if method == "gd":
          start = z["error"][:, 0]
        np.testing.assert_allclose(z["error"][:, 0], start, rtol=1e-6)
        assert z["error"][0, 0] != z["error"][1, 0]
  with np.load(tmp_path / "curves" / "smd20_penalty_T2.npz") as z:
    assert "metric_rho" in z and np.isnan(z["metric_rho"][:, 0]).all()
  # The methods make progress. On SMD20 every method brings every trial closer to the optimum
  # at every record; on SMD23 (A rank-deficient, the error includes |v|^2) only the penalty
  # method does within 31 iterations at T = 2 (GD, ApproxGrad and RMD first drift away).
  for (problem, method), err in errors.items():
    if problem == "smd20" or method == "penalty":
      assert (np.diff(err, axis=1) < 0).all(), (problem, method, err)
      assert (err[:, -1] < err[:, 0] - 1e-2).all(), (problem, method, err)
  # RMD (exact hypergradient of the T-step unroll) is the fastest of them on SMD20.
  assert (errors[("smd20", "rmd")][:, -1] < errors[("smd20", "gd")][:, -1] - 0.3).all()
  res = json.loads((tmp_path / "results.json").read_text())
  assert len(res["rows"]) == 8
  assert {r["method"] for r in res["rows"]} == set(methods)
  for r in res["rows"]:      # the table's final errors are the curves' last records
    err = errors[(r["problem"], r["method"])]
    assert r["final_error_mean"] == pytest.approx(err[:, -1].mean(), rel=1e-6)
    if r["problem"] == "smd20" or r["method"] == "penalty":
      assert r["final_error_mean"] < err[:, 0].mean(), r
  table = (tmp_path / "results.md").read_text()
  assert table.count("\n| smd") == 8
  for name in ("smd20_iterations", "smd20_time", "smd23_iterations", "smd23_time",
               "summary_time"):
    assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 10_000, name
  assert "final error mean" in proc.stdout
  # Same command again: every run is read back, nothing recomputed, same table.
  again = _ok(_run(TINY, f"--workdir={tmp_path}"))
  assert "8 of 8 (problem, method, T) runs were already in" in again.stdout
  assert json.loads((tmp_path / "results.json").read_text())["rows"] == res["rows"]


@pytest.mark.parametrize("args, message", [
    (["--config.problems=('smd99',)"], "Unknown problems ['smd99']"),
    (["--config.methods=('plain',)"], "does not optimise the outer variables"),
    (["--config.methods=('newton',)"], "Unknown method 'newton'"),
    (["--config.inner_steps=(0,)"], "inner_steps must be a non-empty list of T >= 1"),
    (["--config.dtype=float16"], "dtype must be"),
])
def test_bad_input_fails_fast_with_a_clear_message(tmp_path, args, message):
  workdir = tmp_path / "w"
  proc = _run(TINY, f"--workdir={workdir}", *args, timeout=120)
  assert proc.returncode != 0
  assert message in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-2000:]
  assert "Traceback" not in proc.stderr
  assert not workdir.exists(), "nothing may be written before the input is validated"


@pytest.mark.slow
def test_divergence_stops_with_the_record_and_a_clear_message(tmp_path):
  # The box keeps u and v finite, but the float32 hypergradient overflows.
  proc = _run(TINY, f"--workdir={tmp_path}", "--config.problems=('smd21',)",
              "--config.methods=('rmd',)", "--config.rmd.lr_v=1e30")
  assert proc.returncode != 0
  err = proc.stdout + proc.stderr
  assert "NonFiniteError" in err, err[-2000:]
  assert "[smd21 rmd T=2 trial 0] non-finite metric_hypergradient_sq=inf after step 1" in err
  assert not (tmp_path / "curves").exists()
  assert "Traceback" not in err


def test_paper_config_is_the_original_protocol():
  from synthetic.configs import default, paper
  c = paper.get_config()
  assert (c.trials, c.iterations, c.record_every, tuple(c.inner_steps), c.dtype) == \
      (20, 40001, 10, (1, 5, 10), "float32")
  assert set(c.problems) == {"smd20", "smd21", "smd22", "smd23", "smd24"}
  assert set(c.methods) == {"gd", "rmd", "approxgrad", "penalty"}
  assert (c.penalty.rho0, c.penalty.lamb0, c.penalty.eps0, c.penalty.nu0) == (1.0, 10.0, 1.0, 0.0)
  assert abs(c.penalty.c_lamb * 1.1 - 1) < 1e-12 and abs(c.penalty.lr_decay * 1.1 - 1) < 1e-12
  assert (c.approxgrad.sigma, c.approxgrad.lr_p) == (1e-6, 1e-4)
  assert (c.rmd.lr_u, c.rmd.lr_v, c.rmd.legacy_skip_first_jacobian) == (1e-3, 1e-4, False)
  d = default.get_config()
  assert d.trials == 3 and d.iterations == c.iterations
