"""The detection study (importance_learning/study.py) on the default job's data.

  python importance_learning/run.py --config=importance_learning/configs/detection_study.py \
      --workdir=runs/detection_study

The penalty method on embedded MNIST at 50% noise (the default job, without its baselines and
retraining), one documented switch at a time. Add a variant in place with, e.g.,
``--config.study.variants="{'default': {}, 'lr_u_1': {'penalty': {'lr_u': 1.0}}}"`` on the same
workdir (finished variants are not run again). Config arguments: a noise level, ``tiny``.
"""

import ml_collections

from importance_learning.configs import default


def variants():
  """name -> the config fields it changes (nested as in the config); 'default' is the faithful
  setting."""
  return {
      "default": {},
      # Outer Adam moments per training point instead of the shared batch slot's.
      "per_example_state": {"per_example_state": True},
      # No head start: every importance at 0.5, so only the bilevel steps can separate them.
      "init_uniform": {"importance_init": {"a_lo": 0.5, "a_hi": 0.5}},
      # The CIFAR-10 / SVHN rows' wider initial split.
      "init_wide": {"importance_init": {"a_lo": 0.2, "a_hi": 0.8}},
      # A better pretrained classifier (the clean-only baseline's 500 epochs) sets the split.
      "pretrain_500": {"pretrain": {"epochs": 500}},
      # Three times the bilevel epochs.
      "epochs_300": {"epochs": 300},
      # rho stays at rho0 (no growth when the convergence test passes).
      "rho_fixed": {"penalty": {"c_rho": 1.0}},
      # Smaller outer steps: importances move by less than the clip range per step.
      "lr_u_0_3": {"penalty": {"lr_u": 0.3}},
      "lr_u_0_1": {"penalty": {"lr_u": 0.1}},
      "lr_u_0_03": {"penalty": {"lr_u": 0.03}},
      # The two that matter most, together (see the README's detection study).
      "pretrain_500_lr_u_0_3": {"pretrain": {"epochs": 500}, "penalty": {"lr_u": 0.3}},
      "pretrain_500_lr_u_0_1": {"pretrain": {"epochs": 500}, "penalty": {"lr_u": 0.1}},
      "pretrain_500_lr_u_0_03": {"pretrain": {"epochs": 500}, "penalty": {"lr_u": 0.03}},
  }


def get_config(arg=None):
  c = default.get_config(arg)
  c.experiment = "detection_study"
  c.study = ml_collections.ConfigDict({"variants": variants()})
  if c.epochs <= 2:      # tiny: two variants are enough to exercise the study
    c.study.variants = {"default": {}, "init_uniform": variants()["init_uniform"]}
  return c
