"""RMD: reverse-mode differentiation through T steps of gradient descent on g.

One ``step`` from the current (u, v_0):

  forward   v_{k+1} = proj(v_k - lr_v grad_v g(u, v_k)),  k = 0 .. T-1   (plain GD)
  reverse   p = grad_u f(u, v_T),  q = grad_v f(u, v_T);  for k = T-1 down to 0, at v_k:
              p <- p - lr_v (d2g/du dv) q,   q <- q - lr_v (d2g/dv2) q   (both with the old q)
  update    v <- v_T;  u <- proj(u - lr_u p)                               (plain GD)

p is then exactly d f(u, v_T(u)) / du for the unrolled map (the projection's Jacobian is
taken as the identity, as in the original). Each reverse step is one double-backprop pass that
gives both mixed products at once. The iterates are kept in memory: T copies of v.

The original stops the reverse loop at k = 1: the Jacobian of the first forward step (at the
initial v_0) is never included, so T = 1 degenerates to p = grad_u f.
``legacy_skip_first_jacobian=True`` reproduces that; the default includes all T steps.

``inner_optimizer`` (default ``"gd"``, the above) may name another rule of the functional
optimiser core (``"momentum"``, ``"adam"``, ``"rmsprop"``, hyperparameters in
``inner_optimizer_args``), started from fresh state at every step. Its unrolled map has
optimiser state as well as v, so p is then taken by automatic differentiation through the T
steps (a tape around a Python loop: the graph grows with T), with the projection's Jacobian
again taken as the identity. This is a switch beyond the original, which unrolls plain GD only.
"""

import tensorflow as tf

from common import defaults
from common.bilevel import base
from common.bilevel import optim


class RMD(base.Method):

  supports_replication = True
  loop_keys = defaults.LOOP_KEYS["rmd"]

  default_config = staticmethod(defaults.rmd)

  def __init__(self, problem, config):
    super().__init__(name="rmd")
    if int(config.inner_steps) < 1:
      raise ValueError(f"rmd.inner_steps must be >= 1, got {config.inner_steps}.")
    rule = config.get("inner_optimizer", "gd")
    if rule != "gd" and rule not in optim.RULES:
      raise ValueError(f"rmd.inner_optimizer must be 'gd' or one of {sorted(optim.RULES)}, got "
                       f"{rule!r}.")
    self.by_autodiff = rule != "gd"
    self.problem = problem
    self.config = config
    _, v_vars = base.outer_and_inner(problem, "RMD")
    dtype = v_vars[0].dtype
    # Learning rates are variables so that schedules can change them without retracing.
    self.lr_u = tf.Variable(config.lr_u, dtype=dtype, trainable=False, name="lr_u")
    self.lr_v = tf.Variable(config.lr_v, dtype=dtype, trainable=False, name="lr_v")

  # -- the unrolled map and its reverse pass -----------------------------------------------

  def _grad_v_g(self, u, v, batch):
    with tf.GradientTape() as tape:
      tape.watch(v)
      g = self.problem.inner_cost(u, v, batch)
    return g, base.gradients(tape, g, v, "grad_v g", self.problem.inner_variables)

  def _mixed_products(self, u, v, q, batch):
    """((d2g/du dv) q, (d2g/dv2) q) at (u, v): one backward pass through grad_v g."""
    with tf.GradientTape() as tape:
      tape.watch(u + v)
      _, grad_v_g = self._grad_v_g(u, v, batch)
      gq = base.inner_product(grad_v_g, q)
    grads = base.gradients(tape, gq, u + v, zero_unconnected=True)
    return grads[:len(u)], grads[len(u):]

  def unrolled(self, batch):
    """(v_T, p, f(u, v_T)): the forward iterates' end point and d f(u, v_T(u)) / du."""
    unroll = self._unrolled_by_autodiff if self.by_autodiff else self._unrolled_gd
    return unroll(batch)

  def _unrolled_gd(self, batch):
    """``unrolled`` for plain GD: the stored iterates and the hand-written reverse pass."""
    problem, lr_v = self.problem, self.lr_v
    u, v = base.values(problem.outer_variables), base.values(problem.inner_variables)
    num_steps = int(self.config.inner_steps)
    first = 1 if self.config.legacy_skip_first_jacobian else 0
    reverse = num_steps > first   # the legacy rule at T = 1 has no reverse step at all
    # Iterates v_0 .. v_{T-1}, where the step Jacobians are evaluated.
    stores = [tf.TensorArray(x.dtype, size=num_steps, element_shape=x.shape) for x in v]
    for k in base.loop(num_steps):
      if reverse:
        stores = [s.write(k, x) for s, x in zip(stores, v)]
      _, grad = self._grad_v_g(u, v, batch)
      v = problem.project_inner([x - tf.cast(lr_v, x.dtype) * gx for x, gx in zip(v, grad)])

    with tf.GradientTape() as tape:
      tape.watch(u + v)
      f = problem.outer_cost(u, v, batch)
    grads = base.gradients(tape, f, u + v, zero_unconnected=True)
    p, q = grads[:len(u)], grads[len(u):]

    if reverse:
      for k in base.loop(num_steps - 1, first - 1, -1):
        v_k = [s.read(k) for s in stores]
        bq, hq = self._mixed_products(u, v_k, q, batch)
        p = [pi - tf.cast(lr_v, pi.dtype) * b for pi, b in zip(p, bq)]
        q = [qi - tf.cast(lr_v, qi.dtype) * h for qi, h in zip(q, hq)]
    return v, p, f

  def _unrolled_by_autodiff(self, batch):
    """``unrolled`` for an inner optimiser with state: a tape through T pure updates."""
    problem, cfg = self.problem, self.config
    init, update = optim.RULES[cfg.inner_optimizer]
    args = dict(cfg.inner_optimizer_args)
    u, v = base.values(problem.outer_variables), base.values(problem.inner_variables)
    with tf.GradientTape() as tape:
      tape.watch(u)
      state = init(v)
      for k in range(int(cfg.inner_steps)):
        _, grad = self._grad_v_g(u, v, batch)
        v, state = update(grad, v, state, self.lr_v, **args)
        # The projection with an identity Jacobian (straight-through), as in the GD reverse pass.
        v = [x + tf.stop_gradient(y - x) for x, y in zip(v, problem.project_inner(v))]
        if k == 0 and cfg.legacy_skip_first_jacobian:
          v, state = tf.nest.map_structure(tf.stop_gradient, (v, state))
      f = problem.outer_cost(u, v, batch)
    p = base.gradients(tape, f, u, zero_unconnected=True)
    return v, p, f

  def hypergradient(self, batch):
    """d f(u, v_T(u)) / du for T forward steps from the current v (variables unchanged)."""
    return self.unrolled(batch)[1]

  def scheduled_rates(self):
    return [self.lr_u, self.lr_v]

  # -- the update --------------------------------------------------------------------------

  def step(self, batch):
    problem = self.problem
    u_vars, v_vars = list(problem.outer_variables), list(problem.inner_variables)
    v_new, p, f = self.unrolled(batch)
    for var, x in zip(v_vars, v_new):
      var.assign(x)
    u_new = [x - tf.cast(self.lr_u, x.dtype) * pi
             for x, pi in zip(base.values(u_vars), p)]
    for var, x in zip(u_vars, problem.project_outer(u_new)):
      var.assign(x)
    g = problem.inner_cost(base.values(u_vars), base.values(v_vars), batch)
    return {"f": f, "g": g, "hypergradient_sq": base.sum_of_squares(p),
            "lr_u": tf.identity(self.lr_u), "lr_v": tf.identity(self.lr_v)}

