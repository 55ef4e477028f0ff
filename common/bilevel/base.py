"""The bilevel interface shared by every method and every experiment family.

A *problem* says what is optimised; a *method* says how. Costs are pure functions of
tensors: ``inner_cost(u, v, batch)`` and ``outer_cost(u, v, batch)`` receive lists of tensors
(the current values of the outer and inner variables), never the variables themselves, so a
method can differentiate them twice, or evaluate them at weights that were never assigned to a
variable (rule 1 of DESIGN.md).
"""

import tensorflow as tf

from common import distribute
from common.bilevel.optim import MomentumSGD


class BilevelProblem(tf.Module):
  """Base class of a bilevel problem  min_u f(u, v*(u))  s.t.  v*(u) = argmin_v g(u, v).

  Subclasses call ``super().__init__()``, set ``outer_variables`` (u) and ``inner_variables``
  (v) and implement the two costs. Hooks have do-nothing defaults. Being a ``tf.Module``, a
  problem is saved whole by ``tf.train.Checkpoint`` (its model and any per-example state).
  """

  outer_variables = ()
  inner_variables = ()
  # Positions in ``inner_variables`` of each group (few-shot: one group per task's head);
  # None: one group. Only options that treat groups differently read it.
  inner_groups = None
  # True when the costs are written for data-parallel replicas (``common.distribute``: global
  # means via ``distribute.mean``, per-example state addressed by the gathered global index).
  supports_replication = False

  def inner_cost(self, u, v, batch):
    """g(u, v) on ``batch``; ``u`` and ``v`` are lists of tensors."""
    raise NotImplementedError

  def outer_cost(self, u, v, batch):
    """f(u, v) on ``batch``; ``u`` and ``v`` are lists of tensors."""
    raise NotImplementedError

  def fix_outer(self, u, batch):
    """``batch`` for computations in which u is a constant (default: unchanged).

    Methods call it once before loops that differentiate with respect to v only, while u does
    not change (the penalty method's and ApproxGrad's v-steps and p-steps, GD's v-steps). A
    problem may precompute there whatever depends on u alone, e.g. the few-shot encoder's
    features, so the loop does not recompute it every iteration. The costs on the returned
    batch must equal the costs on ``batch`` at this u; it is never differentiated w.r.t. u.
    """
    del u
    return batch

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


class Method(tf.Module):
  """Base class of a bilevel method: owns its state as variables, exposes one ``step``.

  A subclass implements ``default_config()`` (a staticmethod returning its
  ``ml_collections.ConfigDict``), ``__init__(problem, config)`` and
  ``step(batch) -> dict of scalar tensors``, and overrides the capability attributes below that
  differ from the defaults; families and the runner read them, never probe with ``getattr``.
  Every gradient goes through ``gradients`` and every inner loop through ``loop`` (below), so
  data-parallel replication and the float16 loss scale hold for every method. A method may
  expose ``hypergradient(batch)``: its estimate of d f(u, v*(u)) / du at the current state,
  which the shared test suite checks against closed forms and finite differences.
  """

  # -- capabilities ------------------------------------------------------------------------
  # Optimises the problem's outer variables u (importances, poisons, an encoder); False for
  # single-level training and for methods that compute example weights per step instead.
  needs_outer_variables = True
  # Computes per-step example weights for a reweighting problem (``self.weights``, the rows of
  # the last batch; ``self.weights_valid`` may mark rows that carry none).
  learns_example_weights = False
  # A reweighting method that reads a clean validation batch every step (False: it validates
  # on part of the noisy batch itself, as proximal reweighting does).
  uses_clean_batches = True
  # Its step, replicated over devices (common/distribute.py), equals the one-device step.
  supports_replication = False

  @staticmethod
  def shrink_for_tiny(config):
    """Shrink this method's config block in place for a seconds-long smoke run (``tiny``):
    the loop lengths, never the maths. Default: nothing to shrink."""
    del config

  def outer_state_variables(self, index):
    """Optimiser state shaped like outer variable ``index`` (per-example state swaps it)."""
    del index
    return []

  def end_epoch(self, epoch):
    """Called by epoch-based families after ``epoch`` (1-based) epochs; schedules go here."""
    del epoch


def epoch_decay_defaults(every_epochs=0):
  """Config entries of ``epoch_lr_decay`` (``every_epochs`` 0: off), for a method's block."""
  return {"lr_decay_every_epochs": every_epochs, "lr_decay_factor": 0.5,
          "lr_decay_epoch_offset": 0}


def momentum_schedule_defaults():
  """Config entries of the momentum-SGD methods' schedules (both off by default): the epoch
  decay of ``epoch_lr_decay`` and TF1's step boundaries (``lr_boundaries_steps``, each one
  multiplying the rate by ``lr_boundaries_factor``)."""
  return {**epoch_decay_defaults(0), "lr_boundaries_steps": (), "lr_boundaries_factor": 0.1}


def momentum_sgd(config, variables, name="momentum_sgd"):
  """The ``MomentumSGD`` of a method whose config holds lr, momentum and the schedule keys."""
  return MomentumSGD(variables, config.lr, config.momentum, name=name,
                     boundaries=tuple(config.get("lr_boundaries_steps", ())),
                     factor=config.get("lr_boundaries_factor", 0.1))


def weighted_loss_step(problem, opt, weights, batch):
  """One ``opt`` step on sum_i w_i l_i + decay for a reweighting problem (training-mode pass,
  batch-norm statistics updated); returns (weighted loss, mean unweighted loss, rate used)."""
  v_vars = list(problem.inner_variables)
  v = values(v_vars)
  with tf.GradientTape() as tape:
    tape.watch(v)
    losses = problem.example_losses(v, batch, update_state=True)
    # ``weights`` holds this replica's rows (all rows on one device); the sum is global.
    weighted = distribute.sum_across(tf.reduce_sum(weights * losses))
    total = weighted + problem.weight_decay(v)
  grads = gradients(tape, total, v, "the weighted loss", v_vars)
  return weighted, distribute.mean(losses), opt.apply(grads, v_vars)


def outer_and_inner(problem, method_name):
  """The problem's (outer, inner) variable lists; an error if either is empty."""
  u_vars, v_vars = list(problem.outer_variables), list(problem.inner_variables)
  if not u_vars or not v_vars:
    raise ValueError(f"{method_name} needs outer and inner variables; the problem has "
                     f"{len(u_vars)} outer and {len(v_vars)} inner.")
  return u_vars, v_vars


def epoch_lr_decay(config, epoch, learning_rates):
  """Multiply the learning-rate variables by ``config.lr_decay_factor`` at the epochs
  ``offset + every, offset + 2 every, ...`` (``every = config.lr_decay_every_epochs``, 0: off).

  The originals halve after epoch ``e`` when ``e % 20 == 0 and e != 0``; with 1-based epoch
  loops (MNIST large) that is after 20, 40, ... completed epochs (offset 0), with 0-based loops
  (CIFAR-10, SVHN) after 21, 41, ... (offset 1).
  """
  every, offset = int(config.lr_decay_every_epochs), int(config.lr_decay_epoch_offset)
  if every > 0 and epoch > offset and (epoch - offset) % every == 0:
    for lr in learning_rates:
      lr.assign(lr * config.lr_decay_factor)
    return True
  return False


def values(variables):
  """Current values of ``variables`` as tensors (inputs to a pure cost function)."""
  return [tf.convert_to_tensor(v) for v in variables]


def sum_of_squares(tensors):
  return tf.add_n([tf.reduce_sum(tf.square(t)) for t in tensors])


def inner_product(xs, ys):
  return tf.add_n([tf.reduce_sum(x * y) for x, y in zip(xs, ys)])


def gradients(tape, target, sources, what=None, variables=None, zero_unconnected=False):
  """d target / d sources: the one place every method takes a gradient.

  It goes through ``distribute.gradients``, so a replicated step sums the replicas' shares and
  a float16 step is taken under the loss scale (on one device without scaling it is exactly
  ``tape.gradient``). With ``what`` (a name for the error), a missing gradient is an error that
  names ``variables`` (default: ``sources``); ``zero_unconnected`` gives zeros instead, for
  costs that need not depend on every source.
  """
  unconnected = (tf.UnconnectedGradients.ZERO if zero_unconnected
                 else tf.UnconnectedGradients.NONE)
  grads = distribute.gradients(tape, target, sources, unconnected_gradients=unconnected)
  if what is not None:
    checked_gradients(grads, sources if variables is None else variables, what)
  return grads


def local_gradients(tape, target, sources):
  """d target / d sources for sources that live on this replica only (its rows of a
  per-example quantity): ``distribute.local_gradients``, the share-seeded gradient."""
  return distribute.local_gradients(tape, target, sources)


def loop(*args):
  """Iterations of a method's inner loop (``range`` arguments): ``tf.range`` on one device,
  a Python range under replication (see ``distribute.loop``)."""
  return distribute.loop(*args)


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
