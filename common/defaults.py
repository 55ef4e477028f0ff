"""The default config blocks of the runner, the bilevel methods and the data-parameter problem,
without TensorFlow.

Every experiment config is built from these, so the command line reads a config, and reports a
mistake in it, before TensorFlow is imported: a misspelt field or a wrong path costs about a
second, not the import's 5-15 s. The classes that use the blocks take their
``default_config`` from here (``common/bilevel``, ``common/problems.py``, ``common/runner.py``,
``common/distribute.py``); each block's comments are its documentation.
"""

import math

import ml_collections

# Penalty's convergence test of the inner problem (common/bilevel/penalty.py).
TEST_LEGACY = "legacy_fourth_power"

# Data parameters: the clamp of log sigma (common/problems.py, DataParameters).
LOG_SIGMA_MIN = math.log(1 / 20)
LOG_SIGMA_MAX = math.log(20)

# The loops of each method that a smoke run (``tiny``) shrinks to 2 iterations.
LOOP_KEYS = {
    "approxgrad": ("inner_steps", "p_steps"),
    "gd": ("inner_steps",),
    "penalty": ("inner_steps",),
    "rmd": ("inner_steps",),
}


# -- schedules ---------------------------------------------------------------------------------

def epoch_decay(every_epochs=0):
  """A method block's epoch-decay keys (``every_epochs`` 0: off)."""
  return {"lr_decay_every_epochs": every_epochs, "lr_decay_factor": 0.5,
          "lr_decay_epoch_offset": 0}


def momentum_schedule():
  """The momentum-SGD methods' schedule keys (both off): the epoch decay and the step
  boundaries (``lr_boundaries_steps``, each multiplying the rate by ``lr_boundaries_factor``;
  ``lr_boundaries_one_based``: a boundary counts steps from 1, as the official L2RW scheduler,
  see ``common.bilevel.optim.Schedule``)."""
  return {**epoch_decay(0), "lr_boundaries_steps": (), "lr_boundaries_factor": 0.1,
          "lr_boundaries_one_based": False}


# -- the runner --------------------------------------------------------------------------------

def distribute():
  return ml_collections.ConfigDict({
      # none | mirrored (the GPUs of one machine, or `devices`) | multi_worker_mirrored
      # (several machines, described by the TF_CONFIG environment variable) | tpu
      "strategy": "none",
      "devices": (),          # mirrored: device names, e.g. ("/gpu:0", "/gpu:1"); () = all GPUs
      # > 0: split the CPU into this many logical devices and mirror over them (tests, and
      # trying a distributed config on a laptop). Must be set before TensorFlow starts.
      "cpu_devices": 0,
      "tpu": "",              # tpu: the TPU's name or grpc:// address ("" = local / Colab)
  })


def runner():
  return ml_collections.ConfigDict({
      "jit_compile": False,      # XLA: helps on GPU, often not on CPU; measure.
      "eager": False,            # run steps eagerly (debugging); slow
      "checkpoint_every": 500,   # steps; also at the end of every phase
      "log_every": 10,           # steps between metrics.jsonl / TensorBoard records
      "progress_bar": True,
      # Stop cleanly (after a checkpoint) once this many steps ran in this invocation; re-run
      # the same command to continue. For time-limited jobs; 0 means no limit.
      "max_steps_per_invocation": 0,
      # Steps per call from Python (Orbit's steps_per_loop): one compiled call runs this many
      # steps on stacked batches and returns every step's metrics, so the NaN guard and the
      # records stay per step. Calls end at epoch ends, checkpoints and the phase end. One
      # device only; 1 is the plain loop.
      "steps_per_call": 1,
      # Data-parallel training (common/distribute.py): none | mirrored | multi_worker_mirrored
      # | tpu, with its devices. The global batch is split evenly over the replicas.
      "distribute": distribute(),
      # float32 | mixed_bfloat16 | mixed_float16 (common/precision.py); loss_scale: the static
      # scale of float16 gradients.
      "precision": "float32",
      "loss_scale": 1024.0,
      # Resume although jit_compile, eager or steps_per_call changed (how the same steps
      # execute: float rounding at most); the old config is appended to config_history.jsonl.
      # A change of anything the data, labels or results depend on is refused whatever this
      # says (common/records.py: check_or_write_config).
      "allow_config_change": False,
  })


def shrink_runner_for_tiny(config, checkpoint_every=2):
  """A ``runner`` block for smoke runs (``tiny``): no progress bar, every step logged, and a
  checkpoint every ``checkpoint_every`` steps (None: unchanged)."""
  config.progress_bar = False
  config.log_every = 1
  if checkpoint_every is not None:
    config.checkpoint_every = checkpoint_every


# -- the bilevel methods -----------------------------------------------------------------------

def penalty():
  """Importance-learning values of the original (MNIST small); families override them."""
  return ml_collections.ConfigDict({
      "lr_u": 3.0,
      "lr_v": 1e-4,
      "rho0": 1e-2,
      "lamb0": 1e-2,
      "eps0": 1e-2,
      "nu0": 1e-4,
      "c_rho": 1.1,
      "c_lamb": 0.9,
      "c_eps": 0.9,
      "lr_decay": 0.9,
      "inner_steps": 20,
      "convergence_test": TEST_LEGACY,
      "adam_epsilon": 1e-8,
  })


def approxgrad():
  """MNIST large-scale values of the original; families override them."""
  return ml_collections.ConfigDict({
      "lr_u": 1.0,
      "lr_v": 1e-6,
      "lr_p": 1e-5,
      "sigma": 1e-3,
      "inner_steps": 20,
      "p_steps": 20,
      "adam_epsilon": 1e-8,
      "correction": "all_groups",     # or "first_group": the multi-group original's quirk
      # lr_u and lr_v (not lr_p) x 0.5 every 20 epochs, for epoch-based families.
      **epoch_decay(every_epochs=20),
  })


def gd():
  """The synthetic-test values of the original (lr_u 1e-3, lr_v 1e-4)."""
  return ml_collections.ConfigDict({
      "lr_u": 1e-3,
      "lr_v": 1e-4,
      "inner_steps": 10,
      "adam_epsilon": 1e-8,
      **epoch_decay(),   # as ApproxGrad's epoch schedule; off by default
  })


def rmd():
  """The synthetic-test values of the original (plain GD step sizes)."""
  return ml_collections.ConfigDict({
      "lr_u": 1e-3,
      "lr_v": 1e-4,
      "inner_steps": 10,
      "legacy_skip_first_jacobian": False,
      "inner_optimizer": "gd",       # or a rule of optim.RULES (autodiff through the loop)
      "inner_optimizer_args": {},    # e.g. {"momentum": 0.9} or {"beta_1": 0.5}
      **epoch_decay(),   # as ApproxGrad's epoch schedule; off by default
  })


def l2rw():
  """The official MNIST imbalance values (momentum 0.9, lr 1e-3)."""
  return ml_collections.ConfigDict({
      "lr": 1e-3,
      "momentum": 0.9,
      "look_ahead": False,            # True: Algorithm 1 with the look-ahead model
      "alpha": 1.0,                   # look-ahead step; cancels after normalisation
      "decay_in_clean_gradient": True,  # the official CIFAR path includes wd * theta
      # With active dropout: "independent" masks for the clean, weight and update passes
      # (the official code's separate models), or "shared": one fused pass (faster).
      "dropout_masks": "independent",
      # Learning-rate schedule (off): epoch decay and/or TF1 step boundaries, e.g. the
      # official ResNet-32 run's x0.1 at steps 40k and 60k.
      **momentum_schedule(),
  })


def proximal():
  """The official CIFAR-10 values: 8 splits, mu 0.01, momentum 0.9, lr 0.1."""
  return ml_collections.ConfigDict({
      "splits": 8,
      "mu": 0.01,
      "lr": 0.1,
      "momentum": 0.9,
      "per_layer": False,
      # Learning-rate schedule (off); the official CIFAR-10 run decays x0.95 every epoch.
      **momentum_schedule(),
  })


def plain():
  # rmsprop: TF1's RMSPropOptimizer (decay 0.9, momentum 0, epsilon 1e-10, ms starting at
  # one), which the clean-label attack's pre- and retraining use.
  return ml_collections.ConfigDict({"lr": 1e-3, "adam_epsilon": 1e-8, "optimizer": "adam",
                                    "rmsprop_decay": 0.9, "rmsprop_epsilon": 1e-10})


def rule_weights(rule="uniform"):
  """A rule-weight baseline's block (``rule``: uniform | class_ratio | random | batch_ratio)."""
  return ml_collections.ConfigDict({
      "rule": rule,
      "class_weights": (),       # class_ratio: one weight per class id
      "lr": 1e-3,
      "momentum": 0.9,
      "seed": 0,                 # random: the weight stream
      "num_classes": 0,          # batch_ratio: K (0: the model's number of outputs)
      **momentum_schedule(),
  })


def data_parameter_descent():
  """The model side of the CIFAR-100 recipe (§4.3) and the temperatures' optimiser flags
  (§4.1); a family puts the problem's flags (``data_parameters()``, a superset) in
  ``data_params``."""
  return ml_collections.ConfigDict({
      "lr": 0.1,
      "momentum": 0.9,
      "weight_decay": 5e-4,          # coupled L2 on all model weights
      "lr_milestones_epochs": (80, 100),
      "lr_decay_every_epochs": 0,
      "lr_decay_factor": 0.1,
      "data_params": {"lr_class_param": 0.1, "lr_inst_param": 0.1,
                      "momentum": 0.9},   # hard-coded in the original, not one of its flags
  })


def shrink_methods_for_tiny(config):
  """Shrink, in place, each loop (``LOOP_KEYS``) of every method block in ``config`` to 2
  iterations for a seconds-long smoke run (``tiny``), never the maths."""
  for name, keys in LOOP_KEYS.items():
    if name in config:
      for key in keys:
        config[name][key] = 2


# -- problems ----------------------------------------------------------------------------------

def data_parameters():
  """The data-parameter problem: the original's flags with its argparse defaults (§4.1) and its
  clamp config (§2.4)."""
  return ml_collections.ConfigDict({
      "learn_class_parameters": False,
      "learn_inst_parameters": False,
      "init_class_param": 1.0,      # sigma at init; stored as log(init)
      "init_inst_param": 1.0,
      "lr_class_param": 0.1,
      "lr_inst_param": 0.1,
      "wd_class_param": 0.0,        # coefficient of the explicit mini-batch penalty
      "wd_inst_param": 0.0,
      "skip_clamp_data_param": False,
      # Log-sigma bounds, keyed as in the original's config dict (its "sigma" keys hold logs).
      "clamp_cls_sigma": {"min": LOG_SIGMA_MIN, "max": LOG_SIGMA_MAX},
      "clamp_inst_sigma": {"min": LOG_SIGMA_MIN, "max": LOG_SIGMA_MAX},
      "momentum": 0.9,              # hard-coded in the original, not one of its flags
  })
