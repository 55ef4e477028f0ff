"""The bilevel interface shared by every method and every experiment family.

A *problem* says what is optimised; a *method* says how. Costs are pure functions of
tensors: ``inner_cost(u, v, batch)`` and ``outer_cost(u, v, batch)`` receive lists of tensors
(the current values of the outer and inner variables), never the variables themselves, so a
method can differentiate them twice, or evaluate them at weights that were never assigned to a
variable (rule 1 of DESIGN.md).
"""

import tensorflow as tf


class BilevelProblem(tf.Module):
  """Base class of a bilevel problem  min_u f(u, v*(u))  s.t.  v*(u) = argmin_v g(u, v).

  Subclasses call ``super().__init__()``, set ``outer_variables`` (u) and ``inner_variables``
  (v) and implement the two costs. Hooks have do-nothing defaults. Being a ``tf.Module``, a
  problem is saved whole by ``tf.train.Checkpoint`` (its model and any per-example state).
  """

  outer_variables = ()
  inner_variables = ()

  def inner_cost(self, u, v, batch):
    """g(u, v) on ``batch``; ``u`` and ``v`` are lists of tensors."""
    raise NotImplementedError

  def outer_cost(self, u, v, batch):
    """f(u, v) on ``batch``; ``u`` and ``v`` are lists of tensors."""
    raise NotImplementedError

  def project_outer(self, u):
    """Projection of u onto its feasible set, applied after every step on u."""
    return u

  def project_inner(self, v):
    """Projection of v onto its feasible set, applied after every step on v."""
    return v

  def begin_step(self, batch, method):
    """Called inside the compiled step before ``method.step`` (e.g. load per-batch slots)."""
    del batch, method

  def end_step(self, batch, method):
    """Called inside the compiled step after ``method.step`` (e.g. store per-batch slots)."""
    del batch, method


def values(variables):
  """Current values of ``variables`` as tensors (inputs to a pure cost function)."""
  return [tf.convert_to_tensor(v) for v in variables]


def sum_of_squares(tensors):
  return tf.add_n([tf.reduce_sum(tf.square(t)) for t in tensors])


def inner_product(xs, ys):
  return tf.add_n([tf.reduce_sum(x * y) for x, y in zip(xs, ys)])


def checked_gradients(grads, wrt, what):
  """Raise if a gradient is None: the cost did not depend on those tensors.

  A None here almost always means the cost read a ``tf.Variable`` (e.g. called ``model(x)``)
  instead of the tensors it was given, which silently disconnects the hypergradient.
  """
  missing = [getattr(w, "name", str(i)) for i, (g, w) in enumerate(zip(grads, wrt)) if g is None]
  if missing:
    raise ValueError(
        f"{what} is not connected to {len(missing)} of its variables (positions/names: "
        f"{missing}). Costs must be computed from the tensors passed in as u and v (use "
        "model.stateless_call(v, ...)), not from the model's variables.")
  return grads


def assign_projected(variables, project):
  """Assign ``project(values(variables))`` back, skipping the work for the identity."""
  vals = values(variables)
  projected = project(vals)
  if projected is vals:
    return
  for var, val in zip(variables, projected):
    var.assign(val)


def combined_step(problem, method):
  """The step the runner compiles: problem hooks around one ``method.step``."""

  def step(batch):
    problem.begin_step(batch, method)
    metrics = method.step(batch)
    problem.end_step(batch, method)
    return metrics

  return step
