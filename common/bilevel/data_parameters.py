"""Data parameters (Saxena, Tuzel, DeCoste, NeurIPS 2019): the training step of the original.

A ``TemperatureProblem`` (``common.problems.TemperatureScaledClassification``: the
temperature-scaled loss and its penalty) descended jointly over the model and the learned
temperatures, in the original's order (§2.4 of ../shared/reference/data_parameters.md):

  loss   g(u, v) on the batch                                     (one backward pass)
  model  PyTorch momentum SGD on grad + wd * theta: coupled L2 on *every* trainable weight
         (biases and batch norm included), i.e. TF1's momentum form
  u      ``SparseMomentumSGD`` per learned tensor (class, then instance), rate
         ``data_params.lr_<name>_param``; then the clamp (the problem's ``project_outer``)

With no tensor learned (u empty) it is the plain baseline. The model's rate follows the epoch
schedule: x``lr_decay_factor`` after each epoch in ``lr_milestones_epochs`` (CIFAR-100: 80,
100) or every ``lr_decay_every_epochs`` epochs (ImageNet: 30).

Replicated (``common.distribute``): the one gradient goes through ``base.gradients``; the
temperatures' parts arrive as ``tf.IndexedSlices`` of the replica's rows, which its all-reduce
concatenates into the global batch's rows, so every replica applies the same sparse step to
the same rows of its copy (the rows a batch touches: the per-example state of the step).
"""

import tensorflow as tf

from common import defaults
from common.bilevel import base
from common.bilevel import optim


class DataParameterDescent(base.Method):

  # Its outer variables (the temperatures) descend the inner cost with the model; it is not a
  # method for a bilevel problem's outer objective, and works with none (the baseline).
  needs_outer_variables = False
  problem_interface = base.TemperatureProblem
  supports_replication = True

  default_config = staticmethod(defaults.data_parameter_descent)

  def __init__(self, problem, config):
    super().__init__(name="data_parameter_descent")
    self.problem = problem
    self.config = config
    v_vars = base.inner_of(problem, "Data parameters")
    self.opt = base.momentum_sgd(config, v_vars, name="model_sgd")
    dp = config.data_params
    self.outer_optimizers = [
        optim.SparseMomentumSGD(var, dp[f"lr_{name}_param"], dp.momentum,
                                name=f"{name}_param_sgd")
        for var, name in zip(problem.outer_variables, problem.outer_names)]

  def scheduled_rates(self):
    return [self.opt.learning_rate]

  def step(self, batch):
    problem = self.problem
    u_vars, v_vars = list(problem.outer_variables), list(problem.inner_variables)
    u, v = base.values(u_vars), base.values(v_vars)
    with tf.GradientTape() as tape:
      tape.watch(v + u)
      loss, metrics = problem.inner_cost_and_metrics(u, v, batch)
    grads = base.gradients(tape, loss, v + u)
    decay = self.config.weight_decay
    lr = self.opt.apply([g + decay * w for g, w in zip(grads[:len(v)], v)], v_vars)
    for grad, opt in zip(grads[len(v):], self.outer_optimizers):
      opt.apply(grad)
    base.assign_projected(u_vars, problem.project_outer)
    return {"loss": loss, **metrics, **problem.state_metrics(base.values(u_vars), batch),
            "lr": lr}
