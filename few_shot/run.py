r"""Few-shot learning with the penalty method (or ApproxGrad): Omniglot and Mini-ImageNet.

  python few_shot/run.py --config=few_shot/configs/omniglot.py:5way,1shot \
      --config.data_dir=/data/omniglot --workdir=runs/fs_omniglot_5w1s
  python few_shot/run.py --config=few_shot/configs/miniimagenet.py:5way,5shot \
      --config.data_dir=/data/miniimagenet --workdir=runs/fs_mini_5w5s

Re-running the same command resumes from --workdir.
"""

from common import cli


def main():
  """The console command (``pip install`` makes it ``bilevel-few-shot``)."""
  cli.main("few_shot", "omniglot.py", {"default": "few_shot.experiment"})


if __name__ == "__main__":
  main()
