"""Penalty method for bilevel problems (Mehra & Hamm, ACML 2021), single group.

    h_up  = f + <nu, grad_v g> + rho/2 |grad_v g|^2        (minimised over u)
    h_low = h_up + lambda g                                (minimised over v)

One ``step``: ``inner_steps`` Adam steps on v along grad_v h_low, one Adam step on u along
grad_u h_up, projections after each step, then the convergence test at the new (u, v) on the
same batch. When it passes: rho *= c_rho, lambda *= c_lamb, eps *= c_eps, then
nu += rho_new * grad_v g (with the already increased rho, as the original), and both learning
rates *= lr_decay. The synthetic variant of the original is this schedule with
c_lamb = c_eps = lr_decay = 1 / c_rho.

All gradients come from automatic differentiation through grad_v g (Hessian-vector products);
nothing is inverted.
"""

import tensorflow as tf

from common import defaults
from common.bilevel import base
from common.bilevel import optim
from common.bilevel.optim import Adam

# The original tests a^2 + b^2 < eps^2 where a, b are already squared norms, i.e.
# |grad_u h|^4 + |grad_v h|^4 < eps^2. The published schedules were tuned with it.
TEST_LEGACY = defaults.TEST_LEGACY
TEST_SQUARED = "squared"


class Penalty(base.Method):
  """The penalty method with its state (rho, lambda, eps, nu, learning rates, Adam moments)."""

  supports_replication = True
  loop_keys = defaults.LOOP_KEYS["penalty"]

  default_config = staticmethod(defaults.penalty)

  def __init__(self, problem, config):
    super().__init__(name="penalty")
    if config.convergence_test not in (TEST_LEGACY, TEST_SQUARED):
      raise ValueError(f"penalty.convergence_test must be '{TEST_LEGACY}' or "
                       f"'{TEST_SQUARED}', got {config.convergence_test!r}.")
    if int(config.inner_steps) < 1:
      raise ValueError(f"penalty.inner_steps must be >= 1, got {config.inner_steps}.")
    self.problem = problem
    self.config = config
    u_vars, v_vars = base.outer_and_inner(problem, "The penalty method")
    dtype = v_vars[0].dtype
    scalar = lambda x, n: tf.Variable(x, dtype=dtype, trainable=False, name=n)
    self.rho = scalar(config.rho0, "rho")
    self.lamb = scalar(config.lamb0, "lamb")
    self.eps = scalar(config.eps0, "eps")
    self.nu = [tf.Variable(config.nu0 * tf.ones(v.shape, v.dtype), trainable=False, name="nu")
               for v in v_vars]
    self.opt_u = Adam(u_vars, config.lr_u, epsilon=config.adam_epsilon, name="adam_u")
    self.opt_v = Adam(v_vars, config.lr_v, epsilon=config.adam_epsilon, name="adam_v")
    self.num_passed = tf.Variable(0, dtype=tf.int64, trainable=False, name="num_passed")

  # -- the objectives ----------------------------------------------------------------------

  def _objectives(self, u, v, batch, wrt, fixed=None):
    """Gradients of h_up w.r.t. ``wrt`` (a sub-list of u + v), with the terms of h.

    One backward pass through grad_v g gives grad h_up for u and v at once; the v-gradient of
    h_low is that plus lambda * grad_v g. With ``fixed`` (a ``base.FixedOuter`` whose ``u`` is
    ``wrt``), ``batch`` is its ``outer_batch`` and the u-gradient is pulled back through what
    ``fix_outer`` precomputed instead of recomputing it.
    """
    problem = self.problem
    with tf.GradientTape() as outer:
      outer.watch(wrt)
      if fixed is not None:
        fixed.watch(outer)
      with tf.GradientTape() as inner:
        inner.watch(v)
        g = problem.inner_cost(u, v, batch)
      grad_v_g = base.gradients(inner, g, v, "grad_v g", problem.inner_variables)
      f = problem.outer_cost(u, v, batch)
      sq = base.sum_of_squares(grad_v_g)
      lag = base.inner_product(self.nu, grad_v_g)
      h_up = f + lag + 0.5 * self.rho * sq
    if fixed is not None:
      grads = fixed.outer_gradients(outer, h_up)
    else:
      grads = base.gradients(outer, h_up, wrt)
    terms = {"f": f, "g": g, "grad_v_g": grad_v_g, "sq": sq, "lag": lag}
    return grads, terms

  def hypergradient(self, batch, fixed=None):
    """grad_u h_up at the current (u, v): the method's estimate of df(u, v*(u))/du.

    ``fixed``: the step's ``base.FixedOuter`` (u unchanged since), whose precomputed tensors
    the gradient starts from; the result is the same.
    """
    v = base.values(self.problem.inner_variables)
    if fixed is None:
      u = base.values(self.problem.outer_variables)
      grads, _ = self._objectives(u, v, batch, wrt=u)
    else:
      grads, _ = self._objectives(fixed.u, v, fixed.outer_batch, wrt=fixed.u, fixed=fixed)
    return base.checked_gradients(grads, self.problem.outer_variables, "grad_u h_up")

  def grad_v_lower(self, batch):
    """grad_v h_low at the current (u, v)."""
    u = base.values(self.problem.outer_variables)
    v = base.values(self.problem.inner_variables)
    grads, terms = self._objectives(u, v, batch, wrt=v)
    return [gv + self.lamb * gg for gv, gg in zip(grads, terms["grad_v_g"])]

  # -- the update --------------------------------------------------------------------------

  def outer_state_variables(self, index):
    return self.opt_u.slots(index)

  def step(self, batch):
    problem, cfg = self.problem, self.config
    u_vars, v_vars = list(problem.outer_variables), list(problem.inner_variables)

    # u is constant in the v-steps (the u-step at the same u may reuse what fix_outer computed).
    fixed = base.FixedOuter(problem, base.values(u_vars), batch)
    for _ in base.loop(int(cfg.inner_steps)):
      self.opt_v.apply(self.grad_v_lower(fixed.batch), v_vars)
      base.assign_projected(v_vars, problem.project_inner)

    self.opt_u.apply(self.hypergradient(batch, fixed), u_vars)
    base.assign_projected(u_vars, problem.project_outer)

    # Convergence test at the new (u, v), same batch.
    u, v = base.values(u_vars), base.values(v_vars)
    grads, terms = self._objectives(u, v, batch, wrt=u + v)
    grad_u = base.checked_gradients(grads[:len(u)], u_vars, "grad_u h_up")
    grad_v = [gv + self.lamb * gg for gv, gg in zip(grads[len(u):], terms["grad_v_g"])]
    a = base.sum_of_squares(grad_u)
    b = base.sum_of_squares(grad_v)
    if cfg.convergence_test == TEST_LEGACY:
      passed = a * a + b * b < self.eps * self.eps
    else:
      passed = a + b < self.eps * self.eps

    metrics = {
        "f": terms["f"],
        "g": terms["g"],
        "penalty": 0.5 * self.rho * terms["sq"],
        "lagrangian": terms["lag"],
        "lamb_g": self.lamb * terms["g"],
        "grad_u_sq": a,
        "grad_v_sq": b,
        "rho": tf.identity(self.rho),
        "lamb": tf.identity(self.lamb),
        "eps": tf.identity(self.eps),
        "lr_u": tf.identity(self.opt_u.learning_rate),
        "lr_v": tf.identity(self.opt_v.learning_rate),
        "passed": tf.cast(passed, tf.float32),
    }

    if passed:
      self.rho.assign(self.rho * cfg.c_rho)
      self.lamb.assign(self.lamb * cfg.c_lamb)
      self.eps.assign(self.eps * cfg.c_eps)
      for nu, gg in zip(self.nu, terms["grad_v_g"]):
        nu.assign_add(self.rho * gg)
      optim.multiply([self.opt_u.learning_rate, self.opt_v.learning_rate], cfg.lr_decay)
      self.num_passed.assign_add(1)
    return metrics
