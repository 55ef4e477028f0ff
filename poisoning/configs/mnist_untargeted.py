"""Untargeted data-augmentation poisoning of MNIST (penalty.md §8.1): the default config.

    python poisoning/run.py                     # this config, offline (embedded MNIST)
    python poisoning/run.py --config=poisoning/configs/mnist_untargeted.py:paper \\
        --config.source=files --config.data_dir=/data/mnist     # the paper's row

Without ``:paper`` the attackers run 1000 outer iterations instead of 5000 (the default job,
minutes on two CPU cores); everything else is the paper's.

60 poisons start as copies of training images with random wrong labels; the attackers
maximise the validation cross-entropy of a bias-free linear classifier trained on train +
poisons. Penalty: lr_u 0.1, lr_v 1e-3, rho0 10, lamb0 100, eps0 1, nu0 0, T = 20, 5000 outer
iterations. ApproxGrad: lr_u 1e-2, lr_v 1e-3, lr_p 1e-2, sigma 1e-3, 20 + 20 inner steps,
5000 iterations, lr_u and lr_v halved after iterations 1001, 2001, 3001 and 4001 (counted from
1): its script loops ``for epoch in range(nepochs)`` from 0 and halves after the iteration when
``epoch % 1000 == 0 and epoch != 0``, one iteration later than the targeted script's 1-based
loop (``lr_decay_epoch_offset`` 1; 0 halves after 1000, 2000, ...). Embedded MNIST holds 5000
images, so the test set is the 3000 left after train and val (the original: 8000 more training
images).
"""

from poisoning.configs import base


def get_config(arg=None):
  c = base.base()
  c.attack = "untargeted"
  c.penalty.update(dict(lr_u=0.1, lr_v=1e-3, rho0=10.0, lamb0=100.0, eps0=1.0, nu0=0.0,
                        c_rho=1.1, c_lamb=0.9, c_eps=0.9, lr_decay=0.9, inner_steps=20))
  # lr_decay_epoch_offset 1: the script's 0-based loop halves after iterations 1001, 2001, ...
  c.approxgrad.update(dict(lr_u=1e-2, lr_v=1e-3, lr_p=1e-2, sigma=1e-3, inner_steps=20,
                           p_steps=20, lr_decay_epoch_offset=1))
  c.pretrain_lr = 1e-3
  c.retrain_lr = 1e-3
  return base.finish(c, base.parse(arg), dict(penalty=5000, approxgrad=5000))
