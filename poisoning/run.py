r"""Training-data poisoning with the penalty method (and ApproxGrad), against simple baselines.

  python poisoning/run.py                      # untargeted MNIST attack, offline
  python poisoning/run.py --config=poisoning/configs/mnist_targeted.py
  python poisoning/run.py --config=poisoning/configs/cifar10_clean_label.py \\
      --config.data_dir=../shared/data/cifar10
  python poisoning/run.py --config=poisoning/configs/dogfish_clean_label.py \\
      --config.data_dir=/data/dogfish

Re-running the same command resumes from --workdir.
"""

from common import cli


def main():
  """The console command (``pip install`` makes it ``bilevel-poisoning``)."""
  cli.main("poisoning", "mnist_untargeted.py", {"default": "poisoning.experiment"})


if __name__ == "__main__":
  main()
