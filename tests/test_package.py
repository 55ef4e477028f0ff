"""The installable package: console commands that run from any directory, and a non-editable
install that keeps generic names (``common``) out of site-packages' top level."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from tests import cli

BIN = pathlib.Path(sys.executable).parent
COMMANDS = ("bilevel-importance", "bilevel-few-shot", "bilevel-poisoning", "bilevel-curriculum",
            "bilevel-synthetic")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def _installed():
  if not (BIN / COMMANDS[0]).exists():
    pytest.skip("the project is not pip-installed in this environment (make install does it)")


@pytest.mark.slow
def test_console_commands_run_from_another_directory(tmp_path):
  _installed()
  # Every family's command starts (its flags parse, its modules import) away from the checkout.
  helps = [subprocess.Popen([str(BIN / c), "--helpfull"], cwd=tmp_path, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in COMMANDS[1:]]
  # A config named as in the README (or by its file name alone) is found in the library.
  proc = subprocess.run([str(BIN / "bilevel-importance"), "--config=custom.py:tiny",
                         "--config.custom.train=nowhere", f"--workdir={tmp_path / 'w0'}"],
                        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1 and "custom.train=nowhere does not exist" in proc.stderr
  proc = subprocess.run([str(BIN / "bilevel-importance"),
                         "--config=importance_learning/configs/default.py:tiny",
                         "--config.baselines.run=()", "--workdir=w"],
                        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
  cli.ok(proc)
  res = json.loads((tmp_path / "w" / "results.json").read_text())
  assert res["dataset"] == "mnist" and 0.0 < res["method_test_accuracy"] <= 1.0
  for c, p in zip(COMMANDS[1:], helps):
    out, err = p.communicate(timeout=300)
    family = c[len("bilevel-"):].replace("-", "_")
    # absl's help exits with status 1; the flags it lists show the family's main ran.
    assert f"{family}/configs/" in out + err and "Traceback" not in err, (c, err[-2000:])


@pytest.mark.slow
def test_non_editable_install_puts_the_families_under_one_prefix(tmp_path):
  src = tmp_path / "src"
  shutil.copytree(cli.ROOT, src, ignore=shutil.ignore_patterns(
      ".venv", ".git", "runs", "build", "*.egg-info", "__pycache__", "assets", "results"))
  target = tmp_path / "site"
  subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                  "--no-build-isolation", "--target", str(target), str(src)],
                 check=True, capture_output=True, text=True, timeout=300)
  top = {p.name for p in target.iterdir()}
  assert {"bilevel_data", "bilevel_data.pth"} <= top
  assert not top & {"common", "importance_learning", "few_shot", "poisoning", "curriculum",
                    "synthetic"}, top
  assert (target / "bilevel_data.pth").read_text().strip() == "bilevel_data"
  # Through the .pth, the families import by their own names from the installed copy.
  # (The checkout itself, on the path through the editable install, taken off it.)
  code = ("import site, sys; sys.path = [p for p in sys.path if p and "
          f"p.rstrip('/') != {str(cli.ROOT)!r}]; site.addsitedir({str(target)!r}); "
          "import common.bilevel, importance_learning.experiment, few_shot.run; "
          "print(common.__file__); print(importance_learning.experiment.__file__)")
  out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV, check=True,
                       capture_output=True, text=True, timeout=300).stdout.split()
  assert out[0] == str(target / "bilevel_data" / "common" / "__init__.py")
  assert out[1].startswith(str(target / "bilevel_data" / "importance_learning"))
