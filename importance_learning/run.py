r"""Data denoising by importance learning and example reweighting; class imbalance.

  python importance_learning/run.py                      # embedded MNIST, 50% noise, offline
  python importance_learning/run.py --config=importance_learning/configs/cifar10.py:0.5 \
      --config.data_dir=/data/cifar10 --workdir=runs/cifar10_50
  python importance_learning/run.py --config=importance_learning/configs/mnist_imbalance.py \
      --config.data_dir=DIR --workdir=runs/imbalance      # L2RW's 4-vs-9 imbalance sweep
  python importance_learning/run.py --config=importance_learning/configs/compare_deep_mnist.py \
      --config.data_dir=DIR --workdir=runs/deep   # approaches on a network that memorises
  python importance_learning/run.py --config=importance_learning/configs/compare.py \
      --workdir=runs/compare          # approaches x noise levels: tables, ROC/PR curves
  python importance_learning/run.py --config=importance_learning/configs/detection_study.py \
      --workdir=runs/detection_study  # where the penalty method's detection comes from

Re-running the same command resumes from --workdir.
"""

from common import cli
from importance_learning import label_issues


def main():
  """The console command (``pip install`` makes it ``bilevel-importance``)."""
  cli.main("importance_learning", "default.py",
           {"default": "importance_learning.experiment",
            "imbalance": "importance_learning.imbalance",
            "compare": "importance_learning.compare",
            "detection_study": "importance_learning.study",
            "ranking_study": "importance_learning.ranking_study"},
           precheck=label_issues.precheck)


if __name__ == "__main__":
  main()
