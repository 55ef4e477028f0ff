"""Paper row: SVHN greyscale (CNN, 1,340,650 weights), 72200/1000/26032, noise 0.5 or 0.25.

The 72257 training images left after the 100-per-class validation hold-out are cut to the first
72200, a multiple of the batch size 200, before the label noise, as the original scripts do
(``split="default"``; ``--config.split=untrimmed`` keeps all 72257).

Penalty lr_u 3, lr_v 1e-5, nu0 0, T = 20, 101 epochs; grey values kept on the 0-255 scale;
pretraining 200 epochs on the 1000 validation images (Adam 1e-5); importances 0.2 / 0.8; no
retraining. Paper (penalty): 88.12% at 25% noise.

  python importance_learning/run.py --config=importance_learning/configs/svhn.py:0.25 \
      --config.data_dir=/path/to/svhn --workdir=runs/svhn_25
"""

from importance_learning.configs import base as base_lib


def row():
  """This row's config, before the noise / tiny arguments."""
  c = base_lib.base()
  c.dataset = "svhn"
  c.split = "default"       # the first 72200 training images, as the original; or "untrimmed"
  c.model = "svhn_cnn"
  c.penalty.lr_v = 1e-5
  c.penalty.nu0 = 0.0
  c.epochs = 101
  c.baseline.epochs = 101
  c.baseline.lr = 1e-5
  c.pretrain.epochs = 200
  c.pretrain.lr = 1e-5
  c.importance_init.a_lo, c.importance_init.a_hi = 0.2, 0.8
  c.retrain.enabled = False
  return c


def get_config(arg=None):
  return base_lib.apply_args(row(), arg, default_noise=0.5)
