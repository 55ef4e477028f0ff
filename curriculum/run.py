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
from absl import logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from common import data  # noqa: E402
from common import runner  # noqa: E402
from curriculum import experiment  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(pathlib.Path(__file__).parent / "configs" / "default.py"),
    "Experiment config file (append :ARG, e.g. :0.2 or :tiny).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/curriculum/default",
                               "Output folder; re-running with the same folder resumes.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  try:
    results = experiment.run(_CONFIG.value, _WORKDIR.value)
  except runner.Interrupted as stop:
    print(stop)
    return
  except (experiment.ConfigError, data.DataNotFoundError, runner.NonFiniteError,
          runner.ConfigMismatchError) as e:
    # Errors in what the user asked for: the message says what to do; no traceback.
    sys.exit(f"error ({type(e).__name__}): {e}")
  print("\n" + experiment.summary(results))


if __name__ == "__main__":
  app.run(main)
