"""A mistake on the command line costs about a second: flags, the config, the workdir and the
checks that need no TensorFlow come before TensorFlow is imported.

Each command runs in a fresh interpreter (not the test server, which has TensorFlow loaded)
whose ``tensorflow`` is a stand-in that raises when imported: a check that happened after the
import would show that error instead of its own line."""

import subprocess
import sys
import time

import pytest

from tests import cli

IL = "importance_learning/run.py"
CUSTOM = "--config=importance_learning/configs/custom.py:tiny"


@pytest.fixture(name="no_tf")
def _no_tf(tmp_path):
  fake = tmp_path / "fake" / "tensorflow"
  fake.mkdir(parents=True)
  (fake / "__init__.py").write_text("raise ImportError('the stand-in TensorFlow was imported')\n")
  env = cli.run_env()
  env["PYTHONPATH"] = f"{cli.ROOT}:{fake.parent}:{env['PYTHONPATH']}"

  def run(script, *args):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, script, *args], cwd=cli.ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    return proc, time.monotonic() - started
  return run


def test_a_valid_command_reaches_the_stand_in(no_tf, tmp_path):
  # The control: past the checks, the command imports TensorFlow, here the stand-in.
  proc, _ = no_tf(IL, "--config=importance_learning/configs/default.py:tiny",
                  f"--workdir={tmp_path / 'w'}")
  assert proc.returncode != 0 and "the stand-in TensorFlow was imported" in proc.stderr


@pytest.mark.parametrize("script,args,message", [
    (IL, ["--config.nosie=0.3"],       # the default config, read when the flag is defined
     "error (config): the config has no field 'nosie'; Did you mean \"noise\""),
    (IL, ["--config.noise=1.5"], "error (ConfigError): noise must be a fraction in [0, 1], "
     "got 1.5."),
    (IL, ["--config.runner.log_every=0"], "error (ConfigError): runner.log_every must be >= 1"),
    (IL, ["--config.noise_type=diagonal"], "error (ConfigError): Unknown noise_type 'diagonal'"),
    (IL, ["--workdirr=x"], "error (flags): Unknown command line flag 'workdirr'"),
    (IL, [CUSTOM, "--config.custom.train=/no/such/folder"],
     "error (DataNotFoundError): custom.train=/no/such/folder does not exist."),
    (IL, [CUSTOM, "--config.custom.train=tests", "--config.custom.test_fraction=1.5"],
     "error (ConfigError): custom.test_fraction must lie in [0, 1), got 1.5."),
    (IL, [CUSTOM, "--config.custom.train=tests", "--config.label_issues_ranking=bogus"],
     "error (ConfigError): label_issues_ranking='bogus' is not a ranking a penalty run"),
    ("curriculum/run.py", ["--config.nosuch=1"], "error (config): the config has no field "
     "'nosuch'"),
    ("few_shot/run.py", ["--config.runner.checkpoint_every=0"],
     "error (ConfigError): runner.checkpoint_every must be >= 1"),
    ("poisoning/run.py", ["--config.nosuch=1"], "error (config): the config has no field"),
    ("synthetic/run.py", ["--config.nosuch=1"], "error (config): the config has no field"),
])
def test_mistakes_are_one_line_without_tensorflow(no_tf, tmp_path, script, args, message):
  work = tmp_path / "w"
  proc, seconds = no_tf(script, *args, f"--workdir={work}")
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr[-2000:]
  assert proc.stderr.startswith(message), proc.stderr
  assert not work.exists()
  assert seconds < 2.0      # measured 0.2-0.3 s on the 2-core CPU


def test_a_workdir_that_is_a_file_is_refused_without_tensorflow(no_tf, tmp_path):
  (tmp_path / "afile").write_text("x")
  proc, _ = no_tf(IL, f"--workdir={tmp_path / 'afile'}")
  assert proc.returncode == 1 and proc.stderr.startswith("error (workdir): "), proc.stderr
  assert (tmp_path / "afile").read_text() == "x"


def test_every_config_file_loads_without_tensorflow():
  code = ("import importlib.util, pathlib, sys\n"
          "for p in sorted(pathlib.Path('.').glob('*/configs/*.py')):\n"
          "  spec = importlib.util.spec_from_file_location('c_' + p.stem, p)\n"
          "  m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
          "  if hasattr(m, 'get_config'):\n"
          "    m.get_config(); m.get_config('tiny')\n"
          "  assert 'tensorflow' not in sys.modules, p\n"
          "print('ok')\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=cli.ROOT, env=cli.run_env(),
                        capture_output=True, text=True, timeout=120, check=False)
  assert proc.stdout.strip() == "ok", proc.stderr[-2000:]
