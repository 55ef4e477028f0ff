"""Convergence of GD, RMD, ApproxGrad and the penalty method on SMD20-SMD24.

  python synthetic/run.py                                        # 3 trials, ~6 min on 2 cores
  python synthetic/run.py --config=synthetic/configs/paper.py --workdir=runs/synthetic/paper
  python synthetic/run.py --config.methods='("penalty",)' --config.problems='("smd20",)'

Re-running the same command skips the (problem, method, T) runs already in --workdir.
"""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from common import cli  # noqa: E402
from synthetic import experiment  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(pathlib.Path(__file__).parent / "configs" / "default.py"),
    "Experiment config file (append :tiny for a seconds-long run).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/synthetic/default",
                               "Output folder; re-running with the same folder resumes.")


def main(argv):
  cli.run_experiment(argv, experiment, _CONFIG.value, _WORKDIR.value,
                     footer=f"\nCurves, table and figures in {_WORKDIR.value}")


if __name__ == "__main__":
  app.run(main)
