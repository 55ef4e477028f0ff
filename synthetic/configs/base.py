"""Fields shared by the synthetic configs: the original's settings for every method.

Config arguments (after the colon in ``--config=...py:ARG``): ``tiny`` (seconds, for tests).
"""

import ml_collections

from common import config_args
from common import defaults

C_RHO = 1.1


def base():
  c = ml_collections.ConfigDict()
  c.problems = ("smd20", "smd21", "smd22", "smd23", "smd24")
  c.methods = ("gd", "rmd", "approxgrad", "penalty")
  c.inner_steps = (1, 5, 10)       # T, swept for every method
  c.trials = 20
  c.iterations = 40001             # outer iterations per trial
  c.record_every = 10              # records after iterations 1, 11, 21, ... (and the start)
  c.seed = 0                       # trial k draws A and its initial point from (seed, k)
  c.dtype = "float32"              # the original's precision
  c.jit_compile = True             # XLA: about 25x faster per step than the plain graph on CPU
  c.progress_bar = True
  c.success_error = 1e-2           # a trial "reaches the optimum" at error <= this
  # Several devices and mixed precision, as the runner block of the other families
  # (common/runner.py): every replica computes the same full costs (no data rows), so a
  # replicated run only measures the overhead; mixed_* evaluates f and g in 16 bits.
  # loss_scale 1: these gradients are O(1) to O(100) and never underflow in float16, while
  # the usual 1024 would overflow them.
  c.runner = ml_collections.ConfigDict({
      "distribute": defaults.distribute(),
      "precision": "float32",
      "loss_scale": 1.0,
  })

  # Per-method settings of the original synthetic test. ``inner_steps`` is set from the sweep.
  c.gd = defaults.gd()                  # Adam(1e-4) on g over v, Adam(1e-3) on f over u
  c.rmd = defaults.rmd()                # plain GD step sizes 1e-4 (v) and 1e-3 (u)
  c.approxgrad = defaults.approxgrad()
  c.approxgrad.update(dict(lr_u=1e-3, lr_v=1e-4, lr_p=1e-4, sigma=1e-6))
  c.penalty = defaults.penalty()
  # The synthetic variant: nu starts at 0; on a passed test rho *= 1.1 while lambda, eps and
  # both learning rates are divided by 1.1.
  c.penalty.update(dict(lr_u=1e-3, lr_v=1e-4, rho0=1.0, lamb0=10.0, eps0=1.0, nu0=0.0,
                        c_rho=C_RHO, c_lamb=1.0 / C_RHO, c_eps=1.0 / C_RHO,
                        lr_decay=1.0 / C_RHO))
  # Config keys set to T + offset for each T of the sweep (ApproxGrad takes T + 1 p-steps).
  c.tied_to_inner_steps = ml_collections.ConfigDict({
      "gd": {"inner_steps": 0},
      "rmd": {"inner_steps": 0},
      "approxgrad": {"inner_steps": 0, "p_steps": 1},
      "penalty": {"inner_steps": 0},
  })
  return c


def apply_args(c, arg):
  """``tiny``, the only argument (common/config_args.py)."""
  if config_args.parse(arg, takes=("tiny",)).tiny:
    shrink_to_tiny(c)
  return c


def shrink_to_tiny(c):
  """Every method on two problems (one with A), a few dozen iterations, no XLA compile."""
  c.problems = ("smd20", "smd23")
  c.inner_steps = (2,)
  c.trials = 2
  c.iterations = 31
  c.jit_compile = False
  c.progress_bar = False
