"""Fields shared by the clean-label configs (penalty.md §8.3); ``:tiny`` shrinks a run to
seconds."""

import ml_collections

from common import config_args
from common import defaults


def base():
  c = ml_collections.ConfigDict()
  c.attack = "clean_label"
  c.dataset = "dogfish"
  c.data_dir = ""
  c.classes = ("dog", "frog")    # cifar10 only: the two attacked classes (labels 0, 1)
  c.extractor = "inception_v3"
  c.extractor_weights = "imagenet"
  c.train_extractor = False      # cifar10 demo: train the extractor on the other classes first
  c.extractor_steps = 0
  c.extractor_lr = 1e-3
  c.extractor_batch = 128
  c.num_targets = 0              # 0: every test image in turn, as the original
  c.beta = 0.01
  c.classifier_stddev = 0.01
  c.train_steps = 2001           # full-batch RMSProp steps, pre- and retraining
  c.train_lr = 1e-3
  c.attack_steps = 201
  c.method = "penalty"
  c.penalty = defaults.penalty()
  c.penalty.update(dict(lr_u=1e-2, lr_v=1e-3, rho0=1.0, lamb0=1.0, eps0=1.0, nu0=0.0, c_rho=1.1,
                        c_lamb=0.9, c_eps=0.9, lr_decay=0.9, inner_steps=10))
  c.approxgrad = defaults.approxgrad()
  c.approxgrad.update(dict(lr_u=1e-2, lr_v=1e-3, lr_p=1e-2, inner_steps=10, p_steps=10,
                           lr_decay_every_epochs=0))
  c.save_images = 30             # successful target/base/poison triples kept for the figure
  c.seed = 0
  c.runner = defaults.runner()
  c.runner.log_every = 50
  c.runner.checkpoint_every = 1000
  return c


def make_tiny(c):
  c.num_targets = 2
  c.train_steps = 20
  c.attack_steps = 3
  defaults.shrink_methods_for_tiny(c)
  if c.train_extractor:
    c.extractor_steps = 5
    c.extractor_batch = 32
  defaults.shrink_runner_for_tiny(c.runner, checkpoint_every=10)
  return c


def parse(arg):
  """True for ``tiny``, the only argument (common/config_args.py)."""
  return config_args.parse(arg, takes=("tiny",)).tiny
