"""The comparison (importance_learning/compare.py) on CIFAR-10 with the penalty paper's CNN, at a
documented reduced length.

  python importance_learning/run.py --config=importance_learning/configs/compare_cifar10.py \
      --config.data_dir=/path/to/cifar10 --workdir=runs/compare_cifar10

data_dir: a CIFAR-10 image folder (train/<class>/*, test/<class>/*) or the python pickles. The
10,000-image folder subset scales the paper's 40000/10000/10000 split by 0.2 to 8000 / 2000
train / validation and keeps the 10,000 test images (the run says so).

Everything is the paper row's (configs/cifar10.py: the 1,172,410-weight CNN, T = 20, lr_u 3,
lr_v 1e-4, the augmentation, importances initialised at 0.2 / 0.8, no retraining) except:
  * lengths: 10 bilevel epochs (paper 200), pretraining 20 (101), the noisy baseline and the
    extra baselines 30 epochs (200); test accuracy every 5 epochs;
  * noise levels 0.25 and 0.5 (the paper's two CIFAR-10 rows);
  * L2RW, not run on CIFAR-10 with this CNN by its paper, uses momentum SGD at lr 0.01 (ours:
    the MNIST value 1e-3 barely moves this network in 10 epochs).

Cost: on this project's 2-core CPU one penalty step at T = 20 and batch 200 takes 18.5 s
(measured), so the bilevel phase alone is 40 steps x 10 epochs, about 2 hours per noise level:
a GPU run. ``:tiny`` runs the same code paths for seconds.
"""

import ml_collections

from common import config_args
from importance_learning.configs import base as base_lib
from importance_learning.configs import cifar10

# The fields this config changes from the paper row, with their values (a test checks that
# nothing else differs).
REDUCED = {
    "epochs": 10,
    "pretrain.epochs": 20,
    "baseline.epochs": 30,
    "eval_every_epochs": 5,
    "l2rw.lr": 0.01,
}


def get_config(arg=None):
  c = cifar10.row()
  for key, value in REDUCED.items():
    config_args.set_field(c, key, value)
  c = base_lib.apply_args(c, arg, default_noise=0.5,
                          on_tiny=lambda c: setattr(c, "steps", 2))
  c.experiment = "compare"
  c.compare = ml_collections.ConfigDict({
      "methods": ("penalty", "l2rw"),
      "noise": (0.25, 0.5),
  })
  return c
