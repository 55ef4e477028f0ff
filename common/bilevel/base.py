"""The bilevel interface shared by every method and every experiment family.

A *problem* says what is optimised; a *method* says how. Costs are pure functions of
tensors: ``inner_cost(u, v, batch)`` and ``outer_cost(u, v, batch)`` receive lists of tensors
(the current values of the outer and inner variables), never the variables themselves, so a
method can differentiate them twice, or evaluate them at weights that were never assigned to a
variable (rule 1 of DESIGN.md).
"""

import tensorflow as tf

from common import distribute
from common import precision
from common.bilevel import optim


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
    batch must equal the costs on ``batch`` at this u, and what it adds must be computed from u
    with TensorFlow ops: the u-step at the same u differentiates through it (``FixedOuter``)
    instead of recomputing it.
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


class ReweightingProblem(BilevelProblem):
  """The interface of a problem whose example weights a method computes per step.

  No outer variables; the inner variables are the model's weights. A reweighting method
  weighs ``example_losses`` (one per row of ``batch[train_key]``, this replica's rows) and
  judges the weights by ``clean_cost`` (a clean batch; the proximal method never calls it);
  ``weight_decay`` is added to every weighted loss it descends. ``batch_size`` is the global
  number of rows a step weighs.
  """

  train_key = "train"
  batch_size = None
  # A point counts as rejected ("flagged" in detection metrics) when its score is at most
  # this: for ``ExampleReweighting`` the mean weight it received over the run, times the batch
  # size (uniform = 1), so 0.5 flags a point weighted at most half of uniform on average.
  detection_threshold = 0.5

  def example_losses(self, v, batch, update_state=True, rows=None):
    """Per-example losses [rows] at weights ``v``; ``rows`` (a slice) restricts them, and
    ``update_state`` False leaves batch-norm moving averages alone (a meta pass)."""
    raise NotImplementedError

  def clean_cost(self, v, batch):
    """The mean loss on the step's clean batch at weights ``v``."""
    raise NotImplementedError

  def has_dropout(self):
    """Whether training-mode passes draw dropout masks (then separate passes can draw
    independent ones)."""
    return False

  def advance_random_state(self):
    """Make the next training-mode pass draw new dropout masks (no-op without dropout)."""

  def weight_decay(self, v):
    """The regulariser added to every weighted loss (0 for none)."""
    raise NotImplementedError


class TemperatureProblem(BilevelProblem):
  """The interface of a problem whose outer variables are descended *with* the inner ones on
  the one cost g (data parameters: per-class / per-instance temperatures of the loss).

  ``outer_variables`` may be empty (nothing learned: plain training on g); ``outer_names``
  names each one (``"class"``, ``"inst"``), which selects its learning rate in the method's
  config; ``project_outer`` is the clamp applied after every step.
  """

  outer_names = ()

  def inner_cost_and_metrics(self, u, v, batch):
    """(g(u, v), dict of scalar diagnostics from the same forward pass)."""
    return self.inner_cost(u, v, batch), {}

  def state_metrics(self, u, batch):
    """Scalar diagnostics of the outer variables ``u`` after a step (default: none)."""
    del u, batch
    return {}


class BatchSlot(tf.Module):
  """Per-example outer state kept in one batch-sized variable, as the penalty paper's
  importance learning does: ``variable`` ([batch]) holds the current batch's rows of a
  [num_rows] store; ``load`` copies them in before a step and ``store`` writes them back after.

  With ``with_optimizer_state`` the method's optimiser state for that variable
  (``Method.outer_state_variables(position)``, e.g. Adam's two moments) is kept per row in
  the same way; otherwise the state stays batch-shaped and is shared by whichever rows occupy
  a slot. ``index`` is the global batch's row numbers.
  """

  def __init__(self, variable, num_rows, position=0, with_optimizer_state=False, name=None):
    super().__init__(name=name)
    self.variable = variable
    self.position = position
    self.with_optimizer_state = with_optimizer_state
    dtype = variable.dtype
    self.rows = tf.Variable(tf.zeros([num_rows], dtype), trainable=False, name="rows")
    self.state_rows = []
    if with_optimizer_state:
      self.state_rows = [tf.Variable(tf.zeros([num_rows], dtype), trainable=False, name=n)
                         for n in ("m_all", "v_all")]

  def load(self, index, method):
    self.variable.assign(tf.gather(self.rows, index))
    if self.with_optimizer_state:
      for slot, store in zip(method.outer_state_variables(self.position), self.state_rows):
        slot.assign(tf.gather(store, index))

  def store(self, index, method):
    # scatter_update (not scatter_nd_update): mirrored variables implement it.
    self.rows.scatter_update(tf.IndexedSlices(tf.convert_to_tensor(self.variable), index))
    if self.with_optimizer_state:
      for slot, store in zip(method.outer_state_variables(self.position), self.state_rows):
        store.scatter_update(tf.IndexedSlices(tf.convert_to_tensor(slot), index))


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
  # For such a method: a [batch] boolean variable marking the rows of the last batch that
  # received a weight, or None when every row does.
  weights_valid = None
  # A reweighting method that reads a clean validation batch every step (False: it validates
  # on part of the noisy batch itself, as proximal reweighting does).
  uses_clean_batches = True
  # Its step, replicated over devices (common/distribute.py), equals the one-device step.
  supports_replication = False
  # The problem interface it works on (``BilevelProblem``, ``ReweightingProblem`` or
  # ``TemperatureProblem``); ``build_method`` refuses any other problem with a clear error.
  problem_interface = BilevelProblem

  # Config keys of the lengths of its inner loops: what a smoke run and the benchmarks set.
  loop_keys = ()

  @classmethod
  def shrink_for_tiny(cls, config):
    """Shrink this method's config block in place for a seconds-long smoke run (``tiny``):
    each loop of ``loop_keys`` to 2 iterations, never the maths."""
    for key in cls.loop_keys:
      config[key] = 2

  def outer_state_variables(self, index):
    """Optimiser state shaped like outer variable ``index`` (per-example state swaps it)."""
    del index
    return []

  def scheduled_rates(self):
    """The learning-rate variables the epoch schedule of ``self.config`` multiplies
    (``optim.Schedule.from_config``); default: none."""
    return []

  def end_epoch(self, epoch):
    """Called by epoch-based families after ``epoch`` (1-based) epochs: the epoch schedule."""
    rates = self.scheduled_rates()
    if rates:
      optim.Schedule.from_config(self.config).end_epoch(epoch, rates)


def momentum_sgd(config, variables, name="momentum_sgd"):
  """The ``MomentumSGD`` of a method whose config holds lr, momentum and the schedule keys."""
  return optim.MomentumSGD(variables, config.lr, config.momentum, name=name,
                           schedule=optim.Schedule.from_config(config))


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


class FixedOuter:
  """``problem.fix_outer(u, batch)`` for a step's v-loops, kept for one later u-gradient at the
  same u.

  What ``fix_outer`` precomputes from u (the few-shot encoder's features) is a function of u,
  so a u-gradient taken at the same u can start from it instead of recomputing it: the tape
  that recorded ``fix_outer`` pulls the cost's gradient with respect to those tensors back to
  u (the chain rule, one backward pass through what ``fix_outer`` computed). ``batch`` is what
  the loops use (``fix_outer``'s result); ``outer_batch`` is what a u-gradient pass uses: the
  same when the pull-back is on, else the original batch, so the pass recomputes everything
  from u as before. ``outer_gradients`` returns the total gradient either way.

  The pull-back runs on one device without a loss scale and when ``fix_outer`` precomputed
  something; replicated or float16-scaled steps, and problems whose ``fix_outer`` is the
  identity, take the original path (their numbers are unchanged). The recording tape can be
  used once: one u-gradient per step.

  Off by default (``FixedOuter.pull_back = False``: the u-gradient recomputes from u, as
  before): on this project's 2-core CPU it saved nothing measurable on the few-shot
  meta-iteration (penalty, Omniglot 5-way 1-shot, 10 tasks: a median of 4.44 s per step
  without it, 4.59 s with it, ``python few_shot/speed.py --meta_batch=10``), where the
  encoder's backward passes dominate. Set it to True to try it where the forward pass costs
  more (same numbers: tests/common/test_fixed_outer.py).
  """

  pull_back = False

  def __init__(self, problem, u, batch):
    self.u = list(u)
    self._tape = None
    if (not FixedOuter.pull_back or distribute.num_replicas() > 1
        or precision.current_loss_scale() != 1.0):
      self.batch = problem.fix_outer(self.u, batch)
      self.outer_batch = batch
      return
    with tf.GradientTape() as tape:
      tape.watch(self.u)
      fixed = problem.fix_outer(self.u, batch)
    self.batch = fixed
    self._derived = []
    if fixed is not batch and isinstance(fixed, dict) and isinstance(batch, dict):
      self._derived = [k for k in fixed if k not in batch or fixed[k] is not batch[k]]
    if self._derived:
      self._tape = tape
      self.outer_batch = fixed
    else:
      self.outer_batch = batch

  def watch(self, tape):
    """Make ``tape`` (which watches u) also differentiate through the precomputed tensors."""
    if self._tape is not None:
      tape.watch([self.outer_batch[k] for k in self._derived])

  def outer_gradients(self, tape, target, what=None, variables=None, zero_unconnected=False,
                      extra=None):
    """d target / d u for ``target`` computed on ``outer_batch`` under ``tape`` (which watched
    u and was passed to ``watch``): ``gradients`` plus the pull-back through ``fix_outer``.

    ``extra`` (a list, possibly empty): more sources (watched by ``tape``) differentiated in the
    same pass; then the result is (u-gradients, their gradients, None where unconnected).
    """
    with_extra, extra = extra is not None, list(extra or [])
    if self._tape is None:
      grads = gradients(tape, target, self.u + extra)
      out, rest = grads[:len(self.u)], grads[len(self.u):]
    else:
      derived = [self.outer_batch[k] for k in self._derived]
      grads = gradients(tape, target, self.u + extra + derived)
      direct, rest = grads[:len(self.u)], grads[len(self.u):len(self.u) + len(extra)]
      through = [tf.zeros_like(d) if t is None else t
                 for d, t in zip(derived, grads[len(self.u) + len(extra):])]
      pulled = self._tape.gradient(derived, self.u, output_gradients=through)
      self._tape = None
      if all(p is None for p in pulled):
        raise ValueError(
            f"fix_outer's {self._derived} do not depend differentiably on u; the u-step pulls "
            "its gradient back through them. Compute them from u with TensorFlow ops, or set "
            "common.bilevel.base.FixedOuter.pull_back = False to recompute the costs from u.")
      out = [p if d is None else d if p is None else d + p for d, p in zip(direct, pulled)]
    if zero_unconnected:
      out = [tf.zeros_like(x) if g is None else g for x, g in zip(self.u, out)]
    if what is not None:
      checked_gradients(out, self.u if variables is None else variables, what)
    return (out, rest) if with_extra else out


def inner_of(problem, method_name):
  """The problem's inner variables (the model's weights); an error if there are none."""
  v_vars = list(problem.inner_variables)
  if not v_vars:
    raise ValueError(f"{method_name} needs inner variables (the model's trainable weights); "
                     "the problem has none. A subclassed Keras model has no weights until it "
                     "is called: call it on a batch (model(x[:1])) before building the "
                     "problem.")
  return v_vars


def outer_and_inner(problem, method_name):
  """The problem's (outer, inner) variable lists; an error if either is empty."""
  u_vars, v_vars = list(problem.outer_variables), list(problem.inner_variables)
  if not u_vars or not v_vars:
    raise ValueError(f"{method_name} needs outer and inner variables; the problem has "
                     f"{len(u_vars)} outer and {len(v_vars)} inner.")
  return u_vars, v_vars


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
