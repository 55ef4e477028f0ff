"""few_shot/speed.py times two versions of one meta-iteration: they must compute the same, and
the command runs."""

import json

import numpy as np
import pytest
import tensorflow as tf

from common.bilevel import base
from few_shot import speed
from few_shot.problem import FewShotProblem
from tests import cli

TINY = {"meta_batch": 2, "ways": 5, "shots": 1, "queries": 2, "inner_steps": 2}


@pytest.mark.parametrize("method", ["penalty", "approxgrad"])
def test_pull_back_off_and_on_take_the_same_step(method, monkeypatch):
  encodes = []
  encode = FewShotProblem.encode
  monkeypatch.setattr(FewShotProblem, "encode",
                      lambda self, u, x: encodes.append(1) or encode(self, u, x))
  off, on = speed.build_steps(method, TINY, seed=0)       # a fresh copy each
  got_off = {k: float(v) for k, v in tf.function(off)().items()}
  encodes_off, encodes[:] = len(encodes), []
  got_on = {k: float(v) for k, v in tf.function(on)().items()}
  # "on" really takes the other path: its u-step encodes no task again.
  assert len(encodes) < encodes_off, (len(encodes), encodes_off)
  assert set(got_off) == set(got_on)
  for k in got_off:
    np.testing.assert_allclose(got_on[k], got_off[k], rtol=2e-4, err_msg=k)
  assert base.FixedOuter.pull_back is False      # restored after tracing


def test_command_prints_both_settings_and_writes_json(tmp_path):
  out = tmp_path / "speed.json"
  proc = cli.ok(cli.run("few_shot/speed.py", "--method=gd", "--meta_batch=2", "--queries=2",
                        "--repeats=1", f"--out={out}"))
  assert "off / this" in proc.stdout
  rows = json.loads(out.read_text())["rows"]
  assert [r["setting"] for r in rows] == ["off", "on"]
  assert all(r["median_s"] > 0 and len(r["times_s"]) == 1 for r in rows)


def test_bad_flag_values_are_one_line_errors():
  for arg, said in (("--method=rmd", "--method"), ("--meta_batch=0", "--meta_batch")):
    proc = cli.run("few_shot/speed.py", arg)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error (flags):") and said in lines[0], lines[0]


def test_per_image_off_and_on_take_the_same_step():
  off, on = speed.build_steps("penalty", TINY, seed=0, compare="per_image",
                              encoder="few_shot.speed:conv4_plain")
  got_off = {k: float(v) for k, v in tf.function(off)().items()}
  got_on = {k: float(v) for k, v in tf.function(on)().items()}
  for k in got_off:
    np.testing.assert_allclose(got_on[k], got_off[k], rtol=2e-4, err_msg=k)


def test_per_image_needs_an_encoder_that_acts_on_each_image():
  proc = cli.run("few_shot/speed.py", "--compare=per_image",
                 "--encoder=tests.few_shot.test_models:user_encoder")
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 1 and len(lines) == 1, proc.stderr
  assert lines[0].startswith("error (ConfigError): --compare=per_image needs"), lines[0]
