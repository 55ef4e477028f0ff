"""Paper row: MNIST large scale with ApproxGrad (the penalty paper's baseline).

As mnist_large.py, but ApproxGrad: lr_u 1, lr_v 1e-6, lr_p 1e-5, sigma 1e-3, 20 v-steps and
20 p-steps per batch; epochs 1..100 with lr_u and lr_v halved after epochs 20, 40, 60, 80;
pretraining with Adam(1e-3), as the original ApproxGrad script.

  python importance_learning/run.py \
      --config=importance_learning/configs/mnist_large_approxgrad.py:0.25 \
      --config.data_dir=/path/to/mnist_idx --workdir=runs/mnist_large_approxgrad_25
"""

from importance_learning.configs import base as base_lib
from importance_learning.configs import mnist_large


def get_config(arg=None):
  c = mnist_large.row()
  c.method = "approxgrad"
  c.approxgrad.update(dict(lr_u=1.0, lr_v=1e-6, lr_p=1e-5, sigma=1e-3, inner_steps=20,
                           p_steps=20, lr_decay_every_epochs=20, lr_decay_factor=0.5,
                           lr_decay_epoch_offset=0))
  c.epochs = 100
  c.pretrain.lr = 1e-3
  return base_lib.apply_args(c, arg, default_noise=0.25)
