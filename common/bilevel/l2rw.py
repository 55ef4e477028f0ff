"""Learning to Reweight Examples (Ren et al., ICML 2018), Algorithm 1.

Every step computes one weight per example of the noisy training batch from a clean batch,
then takes a momentum-SGD step on the weighted loss:

  eps = 0;  theta_hat = theta - alpha grad_theta sum_i eps_i l_i(theta)
  w~_i = max(-d L_clean(theta_hat) / d eps_i, 0)
  w = w~ / (sum w~ + [sum w~ = 0])          (all-zero weights stay zero)
  theta <- MomentumSGD(grad_theta (sum_i w_i l_i(theta) + decay(theta)))

At eps = 0, -dL_clean/d eps_i = alpha <grad l_i, grad L_clean>, so alpha cancels in w. The
default is the official CIFAR code's fast path (no look-ahead model): with c =
stopgrad(grad_theta (L_clean + decay)), w~ = J c, J the Jacobian of the per-example training
losses. The official code gets it as the eps-gradient of <grad_theta sum eps_i l_i, c> (a double
backprop); here it is the forward-mode derivative of the losses along c, computed during the
one forward pass whose reverse pass then gives the weighted loss's gradient. Same numbers
(``tests/common/test_l2rw.py`` checks both ways against each other), one forward and one
double-backward pass fewer: ``benchmarks/`` measured the step at 2.5 x SGD instead of 3.0 x on
the MNIST CNN. Exact with batch norm, whose batch statistics couple the examples.

Dropout: the official code computes the weights (its meta models A and B) and the update (the
trained model C) in separate training-mode passes, each with its own dropout mask. So does the
default here (``dropout_masks="independent"``): for a model with active dropout the clean
pass, the weight pass and the update pass each draw their own masks (the weight pass leaves
batch-norm moving averages alone; the update pass updates them), at the cost of one more
forward pass. ``dropout_masks="shared"`` is the fused single pass whose update reuses the
weight pass's mask and batch statistics: faster, not the official behaviour. Without active
dropout both are the same fused pass (identical numbers). ``look_ahead=True`` runs Algorithm 1
literally; its meta pass uses batch statistics but never updates batch-norm moving averages.

The problem supplies ``example_losses(v, batch, update_state)`` (per-example training losses,
training mode), ``clean_cost(v, batch)`` (mean clean loss, a meta pass) and
``weight_decay(v)``; see ``common.problems.ExampleReweighting``.
"""

import tensorflow as tf

from common import defaults
from common import distribute
from common.bilevel import base
from common.bilevel import optim


class L2RW(base.Method):

  needs_outer_variables = False
  supports_replication = True
  learns_example_weights = True
  problem_interface = base.ReweightingProblem

  default_config = staticmethod(defaults.l2rw)

  def __init__(self, problem, config):
    super().__init__(name="l2rw")
    if config.dropout_masks not in ("independent", "shared"):
      raise ValueError(f"l2rw.dropout_masks must be 'independent' or 'shared', got "
                       f"{config.dropout_masks!r}.")
    self.problem = problem
    self.config = config
    v_vars = base.inner_of(problem, "L2RW")
    dtype = v_vars[0].dtype
    self.opt = base.momentum_sgd(config, v_vars)
    # The last batch's weights, for the problem to store per example.
    self.weights = tf.Variable(tf.zeros([problem.batch_size], dtype), trainable=False,
                               name="example_weights")

  # -- the weights -------------------------------------------------------------------------

  def clean_direction(self, v, batch):
    """c = grad_theta (L_clean + decay) at ``v``, a constant for the weights."""
    problem = self.problem
    with tf.GradientTape() as tape_c:
      tape_c.watch(v)
      clean = problem.clean_cost(v, batch)
      if self.config.decay_in_clean_gradient:
        clean += problem.weight_decay(v)
    return [tf.stop_gradient(g) for g in base.gradients(
        tape_c, clean, v, "grad_theta of the clean loss", problem.inner_variables)]

  def raw_weights(self, batch):
    """w~ before clipping: <grad l_i, grad L_clean> (times alpha on the look-ahead path)."""
    problem, cfg = self.problem, self.config
    v = base.values(problem.inner_variables)
    if cfg.look_ahead:
      # eps: this replica's rows (all rows on one device).
      eps = tf.zeros([distribute.local_size(problem.batch_size)], v[0].dtype)
      with tf.GradientTape() as tape_eps:
        tape_eps.watch(eps)
        with tf.GradientTape() as tape_v:
          tape_v.watch(v)
          weighted = distribute.sum_across(
              tf.reduce_sum(eps * problem.example_losses(v, batch, update_state=False)))
        grads = base.gradients(tape_v, weighted, v, "grad_theta of the weighted training loss",
                               problem.inner_variables)
        v_hat = [x - cfg.alpha * g for x, g in zip(v, grads)]
        clean = problem.clean_cost(v_hat, batch)
      return -base.local_gradients(tape_eps, clean, eps)
    return self._losses_and_raw_weights(v, batch, update_state=False)[1]

  def _losses_and_raw_weights(self, v, batch, update_state, new_masks=False):
    """Per-example training losses at ``v`` and J c, from one forward pass (forward mode);
    ``new_masks``: that pass draws dropout masks other than the clean pass's."""
    c = self.clean_direction(v, batch)
    if new_masks:
      self.problem.advance_random_state()
    with tf.autodiff.ForwardAccumulator(v, c) as acc:
      losses = self.problem.example_losses(v, batch, update_state=update_state)
    return losses, acc.jvp(losses, unconnected_gradients=tf.UnconnectedGradients.ZERO)

  def raw_weights_double_backprop(self, batch):
    """w~ as the official code computes it (reverse over reverse); for tests and comparison."""
    problem = self.problem
    v = base.values(problem.inner_variables)
    clean_grads = self.clean_direction(v, batch)
    eps = tf.zeros([problem.batch_size], v[0].dtype)
    with tf.GradientTape() as tape_eps:
      tape_eps.watch(eps)
      with tf.GradientTape() as tape_v:
        tape_v.watch(v)
        weighted = tf.reduce_sum(eps * problem.example_losses(v, batch, update_state=False))
      grads = base.gradients(tape_v, weighted, v, zero_unconnected=True)
      dot = base.inner_product(grads, clean_grads)
    return base.gradients(tape_eps, dot, eps)

  @staticmethod
  def normalise(raw):
    """max(w~, 0) / (sum + [sum = 0]): all-zero weights stay zero, no division by zero."""
    w = tf.maximum(raw, 0.0)
    total = distribute.sum_across(tf.reduce_sum(w))
    return tf.stop_gradient(w / (total + tf.cast(tf.equal(total, 0.0), w.dtype)))

  def example_weights(self, batch):
    return self.normalise(self.raw_weights(batch))

  # -- the update --------------------------------------------------------------------------

  def scheduled_rates(self):
    return [self.opt.learning_rate]

  def separate_passes(self):
    """Whether this step computes the weights and the update in separate training-mode passes
    with independent dropout masks."""
    return self.config.dropout_masks == "independent" and self.problem.has_dropout()

  def step(self, batch):
    if self.config.look_ahead:
      w = self.example_weights(batch)
      weighted, mean_loss, lr = base.weighted_loss_step(self.problem, self.opt, w, batch)
    elif self.separate_passes():
      # The clean and weight passes with masks of their own (moving averages untouched), as
      # the official code's separate meta models; then the update pass draws its own.
      v = base.values(self.problem.inner_variables)
      w = self.normalise(self._losses_and_raw_weights(v, batch, False, new_masks=True)[1])
      self.problem.advance_random_state()
      weighted, mean_loss, lr = base.weighted_loss_step(self.problem, self.opt, w, batch)
    else:
      weighted, mean_loss, lr, w = self._fused_step(batch)
    w = distribute.gather(w)          # every replica's rows, in batch order
    self.weights.assign(w)
    return {"weighted_loss": weighted, "mean_loss": mean_loss,
            "zero_weight_fraction": tf.reduce_mean(tf.cast(tf.equal(w, 0.0), tf.float32)),
            "lr": lr}

  def _fused_step(self, batch):
    """The fast path: weights and the weighted loss's gradient from one training pass."""
    problem = self.problem
    v_vars = list(problem.inner_variables)
    v = base.values(v_vars)
    with tf.GradientTape() as tape:
      tape.watch(v)
      losses, raw = self._losses_and_raw_weights(v, batch, update_state=True)
      w = self.normalise(raw)
      weighted = distribute.sum_across(tf.reduce_sum(w * losses))
      total = weighted + problem.weight_decay(v)
    grads = base.gradients(tape, total, v, "the weighted loss", v_vars)
    return weighted, distribute.mean(losses), self.opt.apply(grads, v_vars), w
