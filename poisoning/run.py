"""Training-data poisoning with the penalty method (and ApproxGrad), against simple baselines.

  python poisoning/run.py                      # untargeted MNIST attack, offline
  python poisoning/run.py --config=poisoning/configs/mnist_targeted.py
  python poisoning/run.py --config=poisoning/configs/cifar10_clean_label.py \\
      --config.data_dir=../shared/data/cifar10
  python poisoning/run.py --config=poisoning/configs/dogfish_clean_label.py \\
      --config.data_dir=/data/dogfish

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
from poisoning import experiment  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(pathlib.Path(__file__).parent / "configs" / "mnist_untargeted.py"),
    "Experiment config file (append :tiny for a seconds-long smoke run).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/poisoning/default",
                               "Output folder; re-running with the same folder resumes.")


def main(argv):
  cli.run_experiment(argv, experiment, _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
