"""Few-shot learning with the penalty method (or ApproxGrad): Omniglot and Mini-ImageNet.

  python few_shot/run.py --config=few_shot/configs/omniglot.py:5way,1shot \
      --config.data_dir=/data/omniglot --workdir=runs/fs_omniglot_5w1s
  python few_shot/run.py --config=few_shot/configs/miniimagenet.py:5way,5shot \
      --config.data_dir=/data/miniimagenet --workdir=runs/fs_mini_5w5s

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
from few_shot import experiment  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(pathlib.Path(__file__).parent / "configs" / "omniglot.py"),
    "Experiment config file (append :ARG, e.g. :5way,1shot or :5way,1shot,approxgrad).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/few_shot/default",
                               "Output folder; re-running with the same folder resumes.")


def main(argv):
  cli.run_experiment(argv, experiment, _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
