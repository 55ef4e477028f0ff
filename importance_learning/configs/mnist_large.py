"""Paper row: MNIST large scale (CNN, 1,389,578 weights), 59000/1000/10000, noise 0.25 or 0.5.

Penalty lr_u 3, lr_v 1e-4, nu0 1e-6, T = 20, 101 epochs; pretraining 100 epochs on the 1000
validation images; importances 0.4 / 0.6; no retraining (metric: the bilevel classifier).
Paper (penalty): 98.89% at 25% noise, 97.51% at 50% (as listed for arXiv 1911.03432).

  python importance_learning/run.py --config=importance_learning/configs/mnist_large.py:0.25 \
      --config.data_dir=/path/to/mnist_idx --workdir=runs/mnist_large_25
"""

from importance_learning.configs import base as base_lib


def row():
  """This row's config, before the noise / tiny arguments."""
  c = base_lib.base()
  c.split = "large"
  c.model = "mnist_cnn"
  c.penalty.nu0 = 1e-6
  c.epochs = 101
  c.baseline.epochs = 101
  c.retrain.enabled = False
  return c


def get_config(arg=None):
  return base_lib.apply_args(row(), arg, default_noise=0.25)
