"""Targeted poisoning of MNIST, 8 -> 3 (penalty.md §8.2).

    python poisoning/run.py --config=poisoning/configs/mnist_targeted.py    # embedded MNIST
    python poisoning/run.py --config=poisoning/configs/mnist_targeted.py:paper \\
        --config.source=files --config.data_dir=/data/mnist

Without ``:paper`` the attackers run 1000 outer iterations instead of 5001 / 5000.

Train: 1000 class-balanced images from the first 2000; the attacker's validation set: the 8s
of a 4000-image balanced sample of the rest, labelled 3; test: the 8s of a 5000-image balanced
sample of the MNIST test set, labelled 3 (success = fraction classified as 3). Poisons: half
3s, half 8s from the training set with the labels swapped. Penalty: lr_u 0.1, lr_v 1e-4,
rho0 10, lamb0 1, eps0 1, nu0 0, T = 20, 5001 outer iterations, 60 poisons. ApproxGrad (its
file uses 50 poisons; one count per run here, set --config.num_poisons=50 for its row):
lr_u 1e-3, lr_v 1e-4, lr_p 1e-3, sigma 1e-3, 5000 iterations, lr_u and lr_v halved after
iterations 1000, 2000, 3000 and 4000 (its script loops ``for epoch in range(1, nepochs)`` from 1:
``lr_decay_epoch_offset`` 0; the untargeted script's 0-based loop halves one iteration later).
"""

from poisoning.configs import base


def get_config(arg=None):
  c = base.base()
  c.attack = "targeted"
  c.train_size = 1000
  c.val_size = 4000
  c.test_size = 5000
  c.test_set = "official"
  c.source_class = 8
  c.target_class = 3
  c.num_poisons = 60
  c.penalty.update(dict(lr_u=0.1, lr_v=1e-4, rho0=10.0, lamb0=1.0, eps0=1.0, nu0=0.0,
                        c_rho=1.1, c_lamb=0.9, c_eps=0.9, lr_decay=0.9, inner_steps=20))
  c.approxgrad.update(dict(lr_u=1e-3, lr_v=1e-4, lr_p=1e-3, sigma=1e-3, inner_steps=20,
                           p_steps=20, lr_decay_epoch_offset=0))
  c.pretrain_lr = 1e-3
  c.retrain_lr = 1e-3
  args = base.parse(arg)
  base.finish(c, args, dict(penalty=5001, approxgrad=5000))
  if args.tiny:
    c.train_size = 200
    c.val_size = 400
    c.test_size = 400
  return c
