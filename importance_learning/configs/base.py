"""Fields shared by every importance-learning config, with the MNIST small-scale values.

Each paper-row config starts from ``base()`` and changes what its script changed. Config
arguments (after the colon in ``--config=...py:ARG``, the grammar of common/config_args.py) are
comma-separated: a noise level such as ``0.25``, ``tiny`` (a few steps, for smoke tests) and
the row's own words.
"""

import ml_collections

from common import config_args
from common import defaults


def base():
  c = ml_collections.ConfigDict()
  # Data.
  c.dataset = "mnist"
  c.source = "files"          # files | tfds | embedded (MNIST only)
  c.data_dir = ""
  c.split = "small"
  c.tfds_download = False     # let TFDS download when online
  c.svhn_rescale = False      # the original keeps SVHN grey values on the 0-255 scale
  c.noise = 0.5               # fraction of training labels corrupted
  # first_fraction: the first floor(noise N) points flipped to another class (penalty paper);
  # uniform / background: L2RW's UNIFORMFLIP / BACKGROUNDFLIP; per_class: Deep Bilevel's.
  c.noise_type = "first_fraction"
  c.noise_as_coded = True     # uniform/background: the official generator (False: guaranteed)
  c.augmentation = "none"     # none | cifar
  # Model and method.
  c.model = "mnist_logreg"    # a name in common.models.MODELS or 'package.module:function'
  c.method = "penalty"
  c.penalty = defaults.penalty()
  # ApproxGrad's MNIST large-scale values (the *_approxgrad.py rows set each dataset's).
  c.approxgrad = defaults.approxgrad()
  # GD and RMD were never run on importance learning by the original; these values are ours,
  # untuned: T = 20 as every denoising row, GD with the penalty rows' Adam learning rates,
  # RMD with plain-GD step sizes that move a freshly pretrained classifier. Note that f (the
  # validation loss) does not depend on the importances directly, so GD leaves them where
  # they were initialised: it is the "no implicit term" control.
  c.gd = defaults.gd()
  c.gd.update(dict(lr_u=3.0, lr_v=1e-4, inner_steps=20))
  c.rmd = defaults.rmd()
  c.rmd.update(dict(lr_u=30.0, lr_v=1e-2, inner_steps=20))
  # Learning to Reweight (official MNIST values: momentum SGD, lr 1e-3). It computes example
  # weights per step from a clean validation batch: no pretraining, no importance variables;
  # importances.npy then holds each point's mean weight over the run x batch size (1 =
  # uniform; the mean of every weight it received, not only its last).
  c.l2rw = defaults.l2rw()
  # Proximal mini-batch reweighting: batches of 8 class-matched splits, split 0 (noisy)
  # validates; the clean validation set is not used. Official momentum / mu / splits; the
  # learning rate is ours for the MNIST logistic regression (the official 0.1 is for its
  # Inception on CIFAR-10).
  c.proximal = defaults.proximal()
  c.proximal.lr = 1e-3
  c.weight_decay = 0.0        # wd/2 |W|^2 on kernels, for per-step reweighting methods
  c.batch_size = 200          # training mini-batch (the importance slot)
  c.val_batch_size = 200      # validation mini-batch, redrawn every step
  c.epochs = 100              # bilevel epochs
  c.steps = 0                 # > 0: exactly this many bilevel steps instead (step-counted rows)
  c.per_example_state = False  # True: outer Adam moments stored per training point
  # Training-mode forward passes: dropout on, batch norm on batch statistics (and its moving
  # averages updated). The penalty originals never set Keras' learning phase, so off; the
  # reweighting rows (ResNets with batch norm) turn it on.
  c.train_mode_layers = False
  c.dropout_in_training = False   # deprecated name of train_mode_layers (True still works)
  c.importance_init = ml_collections.ConfigDict(
      {"a_lo": 0.4, "a_hi": 0.6, "legacy_scalar_argmax": False})
  c.pretrain = ml_collections.ConfigDict({"epochs": 100, "lr": 1e-4})
  c.retrain = ml_collections.ConfigDict(
      {"enabled": True, "threshold": 0.9, "epochs": 500, "lr": 1e-4})
  # The baseline trains as long as the small-scale retraining (500 epochs): on the default job
  # its test accuracy peaks near epoch 200 (0.857) and ends at 0.851, so it is not cut short.
  c.baseline = ml_collections.ConfigDict(
      {"enabled": True, "epochs": 500, "lr": 1e-4, "include_val": True})
  # The baselines a user tries first, after the method, each on the run's own model and
  # trainer with the noisy baseline's schedule (baseline.epochs and lr; for the per-step
  # reweighting methods their own uniform-weight training): the clean validation split alone,
  # the oracle (the training set's true labels + validation), and confident learning (cleanlab
  # on K-fold out-of-sample probabilities, with and without the validation split added to
  # every fold, then retrained on the points kept + validation). () turns them off. Also
  # available: "finetune", the method's final model fine-tuned on the validation split for
  # finetune_steps (L2RW's --finetune; uniform weights at the method's final learning rate).
  c.baselines = ml_collections.ConfigDict({
      "run": ("clean_only", "oracle", "confident_learning"),
      "clean_only_steps": 0,    # > 0: the clean-only row trains this many steps (L2RW CIFAR: 2000)
      "finetune_steps": 5000,
      "folds": 5,
      "steps_per_call": 25,     # their training: steps per compiled call (runner.steps_per_call)
  })
  # Evaluation and running.
  c.eval_batch_size = 1000
  c.eval_every_epochs = 1
  # What the epoch lines and metrics.jsonl hold (common/evaluators.py): the test accuracy
  # every eval_every_epochs; the importances' statistics and their detection of the corrupted
  # labels (bilevel phase) every epoch.
  c.evaluators = ("importance_stats", "accuracy", "detection")
  c.legacy_eval_divisor = False   # True: the original's ceil(N/200)*200 test divisor
  c.seed = 0
  c.deterministic = True          # tf op determinism: same seed, same numbers (CPU)
  c.runner = defaults.runner()
  return c


def apply_args(c, arg, default_noise, words=None, on_tiny=None):
  """Apply the config argument: a noise level, the row's ``words`` and ``tiny``
  (``config_args.apply_noise_row``)."""
  return config_args.apply_noise_row(c, arg, default_noise, shrink_to_tiny, words, on_tiny)


def shrink_to_tiny(c):
  """Seconds-long variant of any config (same code paths, a handful of steps)."""
  c.epochs = 2
  defaults.shrink_methods_for_tiny(c)
  if c.steps:
    c.steps = 4
  c.pretrain.epochs = 1
  c.retrain.epochs = 1
  c.baseline.epochs = 1
  c.baselines.folds = 2
  defaults.shrink_runner_for_tiny(c.runner)
