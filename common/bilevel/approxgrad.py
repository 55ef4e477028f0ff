"""ApproxGrad (the penalty paper's approximate-inversion baseline), single group.

Not conjugate gradient: p ~ (H + sigma I)^-1 grad_v f, with H = d2g/dv2, is found by Adam on
the least-squares residual R(p) = |H p + sigma p - grad_v f|^2 (Hessian-vector products by
double backprop). p starts at zero and is warm-started across steps, never reset.

One ``step``: ``inner_steps`` Adam steps on g over v; ``p_steps`` Adam steps on R over p; one
Adam step on u along grad_u f - (d2g/du dv) p, with p held constant.

With several inner groups (few-shot: one head per task) the original's multi-group version
keeps one p, one v-Adam and one p-Adam per group; with equal learning rates that is this
elementwise update. Its u-objective, though, takes the correction of group 0 only,
f - <grad_v0 g, p0>, and drops the other tasks' implicit terms: ``correction="first_group"``
reproduces that, the default ``"all_groups"`` is the full hypergradient estimate.

Epoch-based families call
``end_epoch``, which halves lr_u and lr_v every 20 epochs as the importance-learning scripts do
(lr_p is never decayed).
"""

import tensorflow as tf

from common import defaults
from common.bilevel import base
from common.bilevel import optim
from common.bilevel.optim import Adam


class ApproxGrad(base.Method):

  supports_replication = True
  loop_keys = defaults.LOOP_KEYS["approxgrad"]

  default_config = staticmethod(defaults.approxgrad)

  def __init__(self, problem, config):
    super().__init__(name="approxgrad")
    if int(config.inner_steps) < 0 or int(config.p_steps) < 0:
      raise ValueError("approxgrad.inner_steps and approxgrad.p_steps must be >= 0.")
    if config.correction not in ("all_groups", "first_group"):
      raise ValueError(f"approxgrad.correction must be 'all_groups' or 'first_group', got "
                       f"{config.correction!r}.")
    self.problem = problem
    self.config = config
    u_vars, v_vars = base.outer_and_inner(problem, "ApproxGrad")
    self.p = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="p") for v in v_vars]
    self.opt_u = Adam(u_vars, config.lr_u, epsilon=config.adam_epsilon, name="adam_u")
    self.opt_v = Adam(v_vars, config.lr_v, epsilon=config.adam_epsilon, name="adam_v")
    self.opt_p = Adam(self.p, config.lr_p, epsilon=config.adam_epsilon, name="adam_p")

  def _grad_v(self, cost, u, v, batch):
    with tf.GradientTape() as tape:
      tape.watch(v)
      value = cost(u, v, batch)
    return value, base.gradients(tape, value, v, f"grad_v {cost.__name__}",
                                 self.problem.inner_variables)

  def residual_and_grad(self, batch, grad_v_f=None):
    """R(p) and grad_p R at the current (u, v, p)."""
    problem = self.problem
    u, v, p = (base.values(problem.outer_variables), base.values(problem.inner_variables),
               base.values(self.p))
    if grad_v_f is None:
      _, grad_v_f = self._grad_v(problem.outer_cost, u, v, batch)
    with tf.GradientTape() as tape_p:
      tape_p.watch(p)
      with tf.GradientTape() as tape_v:
        tape_v.watch(v)
        _, grad_v_g = self._grad_v(problem.inner_cost, u, v, batch)
        gp = base.inner_product(grad_v_g, p)
      hp = base.gradients(tape_v, gp, v)
      r = [h + self.config.sigma * q - gf for h, q, gf in zip(hp, p, grad_v_f)]
      residual = base.sum_of_squares(r)
    return residual, base.gradients(tape_p, residual, p)

  def hypergradient(self, batch, fixed=None):
    """grad_u f - (d2g/du dv) p at the current (u, v), p held constant.

    ``fixed``: the step's ``base.FixedOuter`` (u unchanged since), whose precomputed tensors
    the gradient starts from; the result is the same.
    """
    return self._final_pass(batch, fixed, with_residual=False)[0]

  def _final_pass(self, batch, fixed=None, with_residual=True, grad_v_f=None):
    """(hypergradient, R(p)) from one backward pass at the current (u, v, p).

    With the full correction, the v-gradient of <grad_v g, p> in the hypergradient's pass is
    H p, so that pass gives the residual H p + sigma p - grad_v f too (f is read there at a
    constant v, so its v-gradient, known already, is not taken again). With
    ``correction="first_group"`` the u-objective holds one group's term only, and the residual
    takes its own pass (``residual_and_grad``).
    """
    problem = self.problem
    v = base.values(problem.inner_variables)
    u = base.values(problem.outer_variables) if fixed is None else fixed.u
    data = batch if fixed is None else fixed.outer_batch
    p = [tf.stop_gradient(q) for q in base.values(self.p)]
    first_group = self.config.correction == "first_group" and problem.inner_groups
    joint = with_residual and not first_group
    extra = v if joint else []
    with tf.GradientTape() as tape_u:
      tape_u.watch(u + extra)
      if fixed is not None:
        fixed.watch(tape_u)
      # d/dv of the objective is then -H p alone: f's v-gradient is grad_v_f.
      f = problem.outer_cost(u, [tf.stop_gradient(x) for x in v] if joint else v, data)
      _, grad_v_g = self._grad_v(problem.inner_cost, u, v, data)
      p_u = p
      if first_group:
        first = list(problem.inner_groups[0])
        grad_v_g, p_u = [grad_v_g[i] for i in first], [p[i] for i in first]
      f_tilde = f - base.inner_product(grad_v_g, p_u)
    what = "grad_u (f - <grad_v g, p>)"
    if fixed is not None:
      grad_u, grad_extra = fixed.outer_gradients(tape_u, f_tilde, what, problem.outer_variables,
                                                 extra=extra)
    else:
      grads = base.gradients(tape_u, f_tilde, u + extra)
      grad_u = base.checked_gradients(grads[:len(u)], problem.outer_variables, what)
      grad_extra = grads[len(u):]
    if joint:
      if grad_v_f is None:
        _, grad_v_f = self._grad_v(problem.outer_cost, u, v, data)
      # grad_extra = d/dv (f(v constant) - <grad_v g, p>) = -H p.
      residual = base.sum_of_squares([-hp + self.config.sigma * q - gf
                                      for hp, q, gf in zip(grad_extra, p, grad_v_f)])
    elif with_residual:
      residual, _ = self.residual_and_grad(fixed.batch if fixed is not None else batch,
                                           grad_v_f)
    else:
      residual = None
    return grad_u, residual

  def outer_state_variables(self, index):
    return self.opt_u.slots(index)

  def scheduled_rates(self):
    return [self.opt_u.learning_rate, self.opt_v.learning_rate]

  def step(self, batch):
    problem, cfg = self.problem, self.config
    u_vars, v_vars = list(problem.outer_variables), list(problem.inner_variables)
    # u is constant in the v-steps and the p-steps.
    # u is constant in the loops (the u-step at the same u may reuse what fix_outer computed).
    fixed = base.FixedOuter(problem, base.values(u_vars), batch)
    for _ in base.loop(int(cfg.inner_steps)):
      _, grad = self._grad_v(problem.inner_cost, base.values(u_vars), base.values(v_vars),
                             fixed.batch)
      self.opt_v.apply(grad, v_vars)
      base.assign_projected(v_vars, problem.project_inner)
    u, v = base.values(u_vars), base.values(v_vars)
    f, grad_v_f = self._grad_v(problem.outer_cost, u, v, fixed.batch)
    for _ in base.loop(int(cfg.p_steps)):
      _, grad_p = self.residual_and_grad(fixed.batch, grad_v_f)
      self.opt_p.apply(grad_p, self.p)
    # The residual at the final p comes from the hypergradient's pass (``_final_pass``).
    hypergradient, residual = self._final_pass(batch, fixed, grad_v_f=grad_v_f)
    self.opt_u.apply(hypergradient, u_vars)
    base.assign_projected(u_vars, problem.project_outer)
    g = problem.inner_cost(base.values(u_vars), base.values(v_vars), batch)
    return {"f": f, "g": g, "residual": residual,
            "lr_u": tf.identity(self.opt_u.learning_rate),
            "lr_v": tf.identity(self.opt_v.learning_rate)}
