r"""Curriculum by data parameters (learned class and instance temperatures).

  python curriculum/run.py                      # embedded MNIST, 40% noise, offline
  python curriculum/run.py --config=curriculum/configs/cifar100_instance.py:0.4 \
      --config.data_dir=/data/cifar100 --workdir=runs/dp_cifar100_40

Re-running the same command resumes from --workdir.
"""

from common import cli


def main():
  """The console command (``pip install`` makes it ``bilevel-curriculum``)."""
  cli.main("curriculum", "default.py", {"default": "curriculum.experiment"})


if __name__ == "__main__":
  main()
