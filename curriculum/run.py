"""Curriculum by data parameters (learned class and instance temperatures).

  python curriculum/run.py                      # embedded MNIST, 40% noise, offline
  python curriculum/run.py --config=curriculum/configs/cifar100_instance.py:0.4 \
      --config.data_dir=/data/cifar100 --workdir=runs/dp_cifar100_40

Re-running the same command resumes from --workdir.
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
from curriculum import experiment  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(pathlib.Path(__file__).parent / "configs" / "default.py"),
    "Experiment config file (append :ARG, e.g. :0.2 or :tiny).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/curriculum/default",
                               "Output folder; re-running with the same folder resumes.")


def main(argv):
  cli.run_experiment(argv, experiment, _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
