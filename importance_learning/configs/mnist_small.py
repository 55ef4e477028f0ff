"""Paper row: MNIST small scale (logistic regression), 5000/5000/10000, noise 0.5 or 0.25.

Penalty lr_u 3, lr_v 1e-4, rho0 = lambda0 = eps0 = 1e-2, nu0 1e-4, T = 20, 100 epochs;
pretraining 100 epochs; importances initialised 0.4 / 0.6; then a classifier retrained for
500 epochs on {a > 0.9} + validation (the script's end metric).

  python importance_learning/run.py --config=importance_learning/configs/mnist_small.py:0.5 \
      --config.data_dir=/path/to/mnist_idx --workdir=runs/mnist_small_50
"""

from importance_learning.configs import base as base_lib


def get_config(arg=None):
  c = base_lib.base()
  return base_lib.apply_args(c, arg, default_noise=0.5)
