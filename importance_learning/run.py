"""Data denoising by importance learning and example reweighting; class imbalance.

  python importance_learning/run.py                      # embedded MNIST, 50% noise, offline
  python importance_learning/run.py --config=importance_learning/configs/cifar10.py:0.5 \
      --config.data_dir=/data/cifar10 --workdir=runs/cifar10_50
  python importance_learning/run.py --config=importance_learning/configs/mnist_imbalance.py \
      --workdir=runs/imbalance                            # L2RW's 4-vs-9 imbalance, offline

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
from importance_learning import experiment  # noqa: E402
from importance_learning import imbalance  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(pathlib.Path(__file__).parent / "configs" / "default.py"),
    "Experiment config file (append :ARG, e.g. :0.25 or :tiny).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/importance_learning/default",
                               "Output folder; re-running with the same folder resumes.")


def main(argv):
  config = _CONFIG.value
  module = imbalance if config.get("experiment") == "imbalance" else experiment
  cli.run_experiment(argv, module, config, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
