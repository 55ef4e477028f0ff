"""Few-shot learning with the penalty method (or ApproxGrad): Omniglot and Mini-ImageNet.

  python few_shot/run.py --config=few_shot/configs/omniglot.py:5way,1shot \
      --config.data_dir=/data/omniglot --workdir=runs/fs_omniglot_5w1s
  python few_shot/run.py --config=few_shot/configs/miniimagenet.py:5way,5shot \
      --config.data_dir=/data/miniimagenet --workdir=runs/fs_mini_5w5s

Re-running the same command resumes from --workdir.
"""

import pathlib
import sys

# The library's root on the path (until the project is installed as a package).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from common import cli  # noqa: E402

if __name__ == "__main__":
  cli.main("few_shot", "omniglot.py", {"default": "few_shot.experiment"})
