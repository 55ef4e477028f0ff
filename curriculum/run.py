"""Curriculum by data parameters (learned class and instance temperatures).

  python curriculum/run.py                      # embedded MNIST, 40% noise, offline
  python curriculum/run.py --config=curriculum/configs/cifar100_instance.py:0.4 \
      --config.data_dir=/data/cifar100 --workdir=runs/dp_cifar100_40

Re-running the same command resumes from --workdir.
"""

import pathlib
import sys

# The library's root on the path (until the project is installed as a package).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from common import cli  # noqa: E402

if __name__ == "__main__":
  cli.main("curriculum", "default.py", {"default": "curriculum.experiment"})
