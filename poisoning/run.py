"""Training-data poisoning with the penalty method (and ApproxGrad), against simple baselines.

  python poisoning/run.py                      # untargeted MNIST attack, offline
  python poisoning/run.py --config=poisoning/configs/mnist_targeted.py
  python poisoning/run.py --config=poisoning/configs/cifar10_clean_label.py \\
      --config.data_dir=../shared/data/cifar10
  python poisoning/run.py --config=poisoning/configs/dogfish_clean_label.py \\
      --config.data_dir=/data/dogfish

Re-running the same command resumes from --workdir.
"""

import pathlib
import sys

# The library's root on the path (until the project is installed as a package).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from common import cli  # noqa: E402

if __name__ == "__main__":
  cli.main("poisoning", "mnist_untargeted.py", {"default": "poisoning.experiment"})
