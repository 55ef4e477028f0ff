"""--help of every family's command lists the project's flags and the config's fields."""

import pytest

from tests import cli


@pytest.mark.parametrize("script, extra, expected", [
    ("importance_learning/run.py", (), ("--config.penalty.lr_u=3.0", "--config.noise=0.5",
                                        "Fields of default.py")),
    ("importance_learning/run.py", ("--config=importance_learning/configs/custom.py:tiny",),
     ("--config.custom.trusted_ids=''", "--config.batches_follow_data=True",
      "Fields of custom.py:tiny")),
    ("curriculum/run.py", (), ("--config.batch_size=",)),
])
def test_help_lists_the_flags_and_every_config_field(script, extra, expected):
  proc = cli.ok(cli.run(script, *extra, "--help", timeout=120))
  assert "--workdir=DIR" in proc.stdout and "--config=FILE[:ARGS]" in proc.stdout
  for text in expected:
    assert text in proc.stdout, text
  assert "Traceback" not in proc.stderr
