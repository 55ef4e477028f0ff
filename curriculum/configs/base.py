"""Fields shared by every curriculum config, with the CIFAR-100 instance-level recipe.

Config arguments (after the colon in ``--config=...py:ARG``, the grammar of
common/config_args.py), comma-separated: a noise level such as ``0.4`` and/or ``tiny`` (a few
steps, for smoke tests).
"""

import ml_collections

from common import config_args
from common import defaults


def base():
  c = ml_collections.ConfigDict()
  c.dataset = "cifar100"
  c.source = "files"
  c.data_dir = ""
  c.split = "all_train"      # all 50,000 training images, no clean set
  c.tfds_download = False
  c.noise = 0.4
  c.noise_type = "permute_first"   # labels of the first floor(noise N) points permuted
  c.noise_as_coded = True
  c.augmentation = "dp_cifar"
  c.model = "wrn28_10_dp"
  # Initialisation of the models with the switch (wrn28_10_dp, preact_resnet18): "pytorch" is
  # PyTorch's default (every conv / dense kernel and bias U(+-1/sqrt(fan_in))), which the
  # original trains from (its Xavier conv_init is never applied); "keras" is Keras' defaults
  # (Glorot-uniform kernels, zero biases). Other models keep their own initialisers.
  c.model_init = "pytorch"
  # The model side (momentum SGD lr 0.1, coupled wd 5e-4, x0.1 at epochs 80 and 100) and the
  # data-parameter flags, named as the original's command-line flags.
  c.training = defaults.data_parameter_descent()
  c.training.data_params = defaults.data_parameters()
  c.training.data_params.learn_inst_parameters = True
  c.training.data_params.init_inst_param = 1.0
  c.training.data_params.lr_inst_param = 0.2
  c.training.data_params.wd_inst_param = 0.0
  c.batch_size = 128
  c.epochs = 120
  c.report_epoch = 84        # the original's early-stopping epoch for noisy data
  c.baseline_enabled = True
  c.eval_batch_size = 500
  # Measured at every epoch end (common/evaluators.py): the test accuracy (top-1, and top-5 on
  # image folders), and the learned temperatures (statistics, histograms, sigma_snapshots.jsonl).
  c.evaluators = ("accuracy", "temperatures")
  c.seed = 1                 # the original's seed
  c.deterministic = True
  c.runner = defaults.runner()
  return c


def apply_args(c, arg, default_noise, words=None, on_tiny=None):
  """A noise level, the config's ``words`` and ``tiny`` (``config_args.apply_noise_row``)."""
  return config_args.apply_noise_row(c, arg, default_noise, shrink_to_tiny, words, on_tiny)


def shrink_to_tiny(c):
  """Two epochs, reported after the first."""
  c.epochs = 2
  c.report_epoch = 1
  defaults.shrink_runner_for_tiny(c.runner)
