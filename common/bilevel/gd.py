"""GD: the alternating baseline of the penalty paper, without any implicit term.

One ``step``: ``inner_steps`` Adam steps on g over v, then one Adam step on u along the partial
gradient grad_u f, as if v did not depend on u. It therefore converges to a point where
grad_u f(u, v*(u)) = 0, not to the bilevel optimum, whenever f depends on v; that is the point
of the comparison.
"""

import tensorflow as tf

from common import defaults
from common.bilevel import base
from common.bilevel import optim
from common.bilevel.optim import Adam


class GD(base.Method):

  supports_replication = True
  loop_keys = defaults.LOOP_KEYS["gd"]

  default_config = staticmethod(defaults.gd)

  def __init__(self, problem, config):
    super().__init__(name="gd")
    if int(config.inner_steps) < 0:
      raise ValueError(f"gd.inner_steps must be >= 0, got {config.inner_steps}.")
    self.problem = problem
    self.config = config
    u_vars, v_vars = base.outer_and_inner(problem, "GD")
    self.opt_u = Adam(u_vars, config.lr_u, epsilon=config.adam_epsilon, name="adam_u")
    self.opt_v = Adam(v_vars, config.lr_v, epsilon=config.adam_epsilon, name="adam_v")

  def outer_state_variables(self, index):
    return self.opt_u.slots(index)

  def scheduled_rates(self):
    return [self.opt_u.learning_rate, self.opt_v.learning_rate]

  def step(self, batch):
    problem = self.problem
    u_vars, v_vars = list(problem.outer_variables), list(problem.inner_variables)
    # u is constant in the v-steps (the u-step at the same u may reuse what fix_outer computed).
    fixed = base.FixedOuter(problem, base.values(u_vars), batch)
    for _ in base.loop(int(self.config.inner_steps)):
      u, v = base.values(u_vars), base.values(v_vars)
      with tf.GradientTape() as tape:
        tape.watch(v)
        g = problem.inner_cost(u, v, fixed.batch)
      self.opt_v.apply(base.gradients(tape, g, v, "grad_v g", v_vars), v_vars)
      base.assign_projected(v_vars, problem.project_inner)
    u, v = fixed.u, base.values(v_vars)
    with tf.GradientTape() as tape:
      tape.watch(u)
      fixed.watch(tape)
      f = problem.outer_cost(u, v, fixed.outer_batch)
    # f need not depend on every outer variable directly (importance weights enter only g):
    # the partial gradient is then zero and GD leaves that variable where it is.
    grad_u = fixed.outer_gradients(tape, f, zero_unconnected=True)
    self.opt_u.apply(grad_u, u_vars)
    base.assign_projected(u_vars, problem.project_outer)
    g = problem.inner_cost(base.values(u_vars), v, batch)
    return {"f": f, "g": g}
