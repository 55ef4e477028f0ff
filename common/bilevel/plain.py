"""Plain single-level training: Adam on the inner cost with u held fixed.

This is the "train on the (noisy) data" baseline every experiment compares against, and the
pre-/re-training loop of the protocols (pretraining on the validation set, the small-scale
retraining on the selected points).
"""

import tensorflow as tf

from common import defaults
from common.bilevel import base
from common.bilevel.optim import Adam, RMSProp

OPTIMIZERS = ("adam", "rmsprop")


class Plain(base.Method):
  """min_v g(u, v) by Adam, u constant."""

  needs_outer_variables = False
  supports_replication = True

  default_config = staticmethod(defaults.plain)

  def __init__(self, problem, config):
    super().__init__(name="plain")
    self.problem = problem
    variables = list(problem.inner_variables)
    optimizer = config.get("optimizer", "adam")
    if optimizer == "adam":
      self.opt = Adam(variables, config.lr, epsilon=config.adam_epsilon, name="adam_v")
    elif optimizer == "rmsprop":
      self.opt = RMSProp(variables, config.lr, decay=config.rmsprop_decay,
                         epsilon=config.rmsprop_epsilon, name="rmsprop_v")
    else:
      raise ValueError(f"plain.optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}.")

  def step(self, batch):
    problem = self.problem
    u = base.values(problem.outer_variables)
    v = base.values(problem.inner_variables)
    with tf.GradientTape() as tape:
      tape.watch(v)
      g = problem.inner_cost(u, v, batch)
    grads = base.gradients(tape, g, v, "g", problem.inner_variables)
    self.opt.apply(grads, problem.inner_variables)
    base.assign_projected(problem.inner_variables, problem.project_inner)
    return {"g": g}
