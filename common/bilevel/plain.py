"""Plain single-level training: Adam on the inner cost with u held fixed.

This is the "train on the (noisy) data" baseline every experiment compares against, and the
pre-/re-training loop of the protocols (pretraining on the validation set, the small-scale
retraining on the selected points).
"""

import ml_collections
import tensorflow as tf

from common.bilevel import base
from common.bilevel.optim import Adam


class Plain(base.Method):
  """min_v g(u, v) by Adam, u constant."""

  name_in_registry = "plain"
  needs_outer_variables = False

  @staticmethod
  def default_config():
    return ml_collections.ConfigDict({"lr": 1e-3, "adam_epsilon": 1e-8})

  def __init__(self, problem, config):
    super().__init__(name="plain")
    self.problem = problem
    self.opt = Adam(list(problem.inner_variables), config.lr, epsilon=config.adam_epsilon,
                    name="adam_v")

  def step(self, batch):
    problem = self.problem
    u = base.values(problem.outer_variables)
    v = base.values(problem.inner_variables)
    with tf.GradientTape() as tape:
      tape.watch(v)
      g = problem.inner_cost(u, v, batch)
    grads = base.checked_gradients(tape.gradient(g, v), problem.inner_variables, "g")
    self.opt.apply(grads, problem.inner_variables)
    base.assign_projected(problem.inner_variables, problem.project_inner)
    return {"g": g}
