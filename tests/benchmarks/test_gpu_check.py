"""benchmarks/gpu_check.sh --smoke: the one-GPU check runs end to end on a CPU (CI)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests import cli

OMNIGLOT = cli.ROOT.parent / "shared" / "data" / "omniglot"


@pytest.mark.slow
def test_gpu_check_smoke_writes_json_and_table(tmp_path):
  env = dict(os.environ, PYTHON=sys.executable, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  omniglot = str(OMNIGLOT) if (OMNIGLOT / "images_background.npz").exists() else ""
  proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--smoke", f"--out_dir={tmp_path}",
                         f"--omniglot_dir={omniglot}"], cwd=cli.ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  cli.ok(proc)
  report = json.loads((tmp_path / "gpu_check.json").read_text())
  modes = report["benchmark"]["result"]["modes"]
  assert {r["case"] for r in modes} == {"sgd", "penalty", "l2rw", "data_parameters",
                                        "penalty_inner"}
  assert all(r["xla_ms"] > 0 and r["function_ms"] > 0 for r in modes)
  bf16 = report["bfloat16"]["result"]
  assert bf16["settings"]["precision"] == "mixed_bfloat16"
  assert {r["case"] for r in bf16["ratios"]} == {"sgd", "penalty", "l2rw", "data_parameters"}
  md = (tmp_path / "gpu_check.md").read_text()
  assert "smoke settings: not a measurement" in md and "mixed_bfloat16 ms" in md
  fs = report["fewshot"]
  if omniglot:
    assert fs["returncode"] == 0 and fs["meta_iterations_done"] == 2
    assert fs["seconds_per_meta_iteration"] > 0 and 0 <= fs["last_test_accuracy"][1] <= 1
    assert "2 of 2" in md
  else:
    assert fs == {"skipped": "no --omniglot_dir"}
  assert pathlib.Path(tmp_path / "benchmark_float32" / "benchmark.md").exists()
