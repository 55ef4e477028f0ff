"""The ranking study (importance_learning/ranking_study.py): every score an own-data run
computes, against cleanlab on a logistic regression, on three small datasets with planted
flips (embedded MNIST as .npz, scikit-learn's digits as PNGs, its breast-cancer table as CSV).

  python importance_learning/run.py --config=importance_learning/configs/ranking_study.py \
      --workdir=runs/ranking_study

Each cell is the own-data command with its defaults (configs/custom.py) and ``noise`` planting
random flips; widen in place with more ``study.noise`` levels or datasets. Offline: the data
comes with the project and scikit-learn. Config arguments: ``tiny``.
"""

import ml_collections

from common import config_args
from importance_learning.configs import custom


def get_config(arg=None):
  args = config_args.parse(arg, takes=("tiny",))
  c = ml_collections.ConfigDict()
  c.experiment = "ranking_study"
  c.own_data = custom.get_config("tiny" if args.tiny else None)
  c.study = ml_collections.ConfigDict({
      "datasets": ("mnist_npz", "digits_png", "cancer_csv"),
      "noise": (0.2, 0.4),
      "noise_type": "first_fraction",   # random points of the pool, flipped
  })
  if args.tiny:
    c.study.datasets = ("cancer_csv",)
    c.study.noise = (0.3,)
  return c
