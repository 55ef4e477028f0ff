"""Paper row: SVHN with ApproxGrad (the penalty paper's baseline).

As svhn.py, but ApproxGrad: lr_u 1, lr_v 1e-6, lr_p 1e-5, sigma 1e-3, 20 v-steps and 20
p-steps per batch; 101 epochs with lr_u and lr_v halved after epochs 21, 41, ... (epochs
counted from 0 in the script); pretraining with Adam(1e-3) for 200 epochs.

  python importance_learning/run.py \
      --config=importance_learning/configs/svhn_approxgrad.py:0.5 \
      --config.data_dir=/path/to/svhn --workdir=runs/svhn_approxgrad_50
"""

from importance_learning.configs import base as base_lib
from importance_learning.configs import svhn


def get_config(arg=None):
  c = svhn.row()
  c.method = "approxgrad"
  c.approxgrad.update(dict(lr_u=1.0, lr_v=1e-6, lr_p=1e-5, sigma=1e-3, inner_steps=20,
                           p_steps=20, lr_decay_every_epochs=20, lr_decay_factor=0.5,
                           lr_decay_epoch_offset=1))
  c.epochs = 101
  c.pretrain.lr = 1e-3
  return base_lib.apply_args(c, arg, default_noise=0.5)
