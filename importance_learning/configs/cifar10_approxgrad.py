"""Paper row: CIFAR-10 with ApproxGrad (the penalty paper's baseline).

As cifar10.py, but ApproxGrad: lr_u 1, lr_v 1e-5, lr_p 1e-4, sigma 1e-3, ONE v-step and ONE
p-step per batch; 201 epochs with lr_u and lr_v halved after epochs 21, 41, ... (the script
counts epochs from 0 and halves when epoch % 20 == 0, epoch != 0); pretraining with
Adam(1e-3) for 101 epochs.

  python importance_learning/run.py \
      --config=importance_learning/configs/cifar10_approxgrad.py:0.25 \
      --config.data_dir=/path/to/cifar10 --workdir=runs/cifar10_approxgrad_25
"""

from importance_learning.configs import base as base_lib
from importance_learning.configs import cifar10


def get_config(arg=None):
  c = cifar10.row()
  c.method = "approxgrad"
  c.approxgrad.update(dict(lr_u=1.0, lr_v=1e-5, lr_p=1e-4, sigma=1e-3, inner_steps=1,
                           p_steps=1, lr_decay_every_epochs=20, lr_decay_factor=0.5,
                           lr_decay_epoch_offset=1))
  c.epochs = 201
  c.pretrain.lr = 1e-3
  return base_lib.apply_args(c, arg, default_noise=0.25)
