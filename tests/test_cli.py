"""tests/cli.py: every run, forked (``cli.run``) or a subprocess (``cli.start``), imports the
code of the checkout the tests live in (``cli.ROOT``), not a ``common`` found first elsewhere:
beside the script, on an inherited PYTHONPATH, or through the venv's editable install of
another clone (tests/README.md, "Checking that the tests catch bugs")."""

import json
import os

import pytest

from tests import cli

PROBE = ("import json, os, sys\n"
         "import common\n"
         "print(json.dumps({'common': common.__file__, 'path': sys.path[:3],\n"
         "                  'pythonpath': os.environ.get('PYTHONPATH', '')}))\n")


def _decoy(folder):
  """A ``common`` package in ``folder`` that a run must not import."""
  (folder / "common").mkdir(parents=True)
  (folder / "common" / "__init__.py").write_text("raise SystemExit('imported the decoy common')\n")
  return folder


def _imported(proc):
  out = json.loads(cli.ok(proc).stdout.strip().splitlines()[-1])
  assert out["common"] == str(cli.ROOT / "common" / "__init__.py"), out
  assert out["pythonpath"].split(os.pathsep)[0] == str(cli.ROOT), out
  return out


@pytest.mark.slow
def test_a_forked_run_imports_the_tests_checkout_before_the_scripts_folder(tmp_path):
  # ``python script`` would put the script's folder first and import its decoy ``common``.
  (_decoy(tmp_path) / "probe.py").write_text(PROBE)
  out = _imported(cli.run(str(tmp_path / "probe.py"), timeout=120))
  assert out["path"][:2] == [str(cli.ROOT), str(tmp_path)], out


def test_a_subprocess_run_puts_the_tests_checkout_first_on_pythonpath(tmp_path, monkeypatch):
  decoy = _decoy(tmp_path / "elsewhere")
  monkeypatch.setenv("PYTHONPATH", str(decoy))
  (tmp_path / "script").mkdir()
  (tmp_path / "script" / "probe.py").write_text(PROBE)
  proc = cli.communicate(cli.start(str(tmp_path / "script" / "probe.py")), timeout=120)
  out = _imported(proc)
  assert out["pythonpath"].split(os.pathsep) == [str(cli.ROOT), str(decoy)], out
