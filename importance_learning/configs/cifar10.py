"""Paper row: CIFAR-10 (CNN, 1,172,410 weights), 40000/10000/10000, noise 0.25 or 0.5.

Penalty lr_u 3, lr_v 1e-4, nu0 1e-4, T = 20, 200 epochs with the ImageDataGenerator-style
augmentation of training and validation mini-batches; pretraining 101 epochs; importances
0.2 / 0.8; no retraining. Paper (penalty): 79.67% at 25% noise, 79.03% at 50%.

  python importance_learning/run.py --config=importance_learning/configs/cifar10.py:0.25 \
      --config.data_dir=/path/to/cifar10 --workdir=runs/cifar10_25
"""

from importance_learning.configs import base as base_lib


def row():
  """This row's config, before the noise / tiny arguments."""
  c = base_lib.base()
  c.dataset = "cifar10"
  c.split = "default"
  c.model = "cifar10_cnn"
  c.augmentation = "cifar"
  c.epochs = 200
  c.baseline.epochs = 200
  c.pretrain.epochs = 101
  c.importance_init.a_lo, c.importance_init.a_hi = 0.2, 0.8
  c.retrain.enabled = False
  return c


def get_config(arg=None):
  return base_lib.apply_args(row(), arg, default_noise=0.25)
