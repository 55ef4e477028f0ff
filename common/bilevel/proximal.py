"""Proximal mini-batch reweighting ("Deep Bilevel Learning", Jenni & Favaro, ECCV 2018), as the
official code does it.

A batch of S splits of equal size (``split_batches`` draws them with identical label
multisets) is processed split by split: g_s = grad_theta of split s's mean loss (train-mode
forward per split, so batch norm uses per-split statistics and, as in the original, updates its
moving averages once per split). Split 0 is the validation mini-batch; for s >= 1

  omega_s = <g_0, g_s> / (|g_s|^2 + mu)        (inner products over all layers at once)
  omega_bar_s = omega_s / sum_s' |omega_s'|     (signed: negative weights are kept)
  theta <- MomentumSGD(sum_s omega_bar_s g_s + wd theta_kernels)

The validation split's own gradient is not applied. If every omega_s is 0 the data term is
skipped (the original divides by zero). ``per_layer=True`` computes the weights and their
normalisation separately for every variable.

Replicated (``common.distribute``) over R replicas, with R dividing S: a replica's rows are S / R
whole splits (replica r: splits r S/R .. (r+1) S/R - 1). It computes their gradients and losses
(one forward pass per split, as on one device, so batch-norm batch statistics are still the
split's own) and ``distribute.gather`` puts all S in split order on every replica: split 0,
the validation split, is the global batch's first split, and the weights and the update are
one device's. As with every method, batch-norm moving averages are then updated per replica.
"""

import tensorflow as tf

from common import defaults
from common import distribute
from common.bilevel import base
from common.bilevel import optim


class ProximalReweighting(base.Method):

  needs_outer_variables = False
  learns_example_weights = True
  problem_interface = base.ReweightingProblem
  uses_clean_batches = False     # split 0 of each noisy batch validates
  supports_replication = True    # when the replicas divide the splits (see the module doc)

  default_config = staticmethod(defaults.proximal)

  def __init__(self, problem, config):
    super().__init__(name="proximal")
    self.problem = problem
    self.config = config
    num_splits, n = int(config.splits), int(problem.batch_size)
    if num_splits < 2 or n % num_splits:
      raise ValueError(f"proximal.splits must be >= 2 and divide the batch size {n}, got "
                       f"{config.splits}.")
    self.split_size = n // num_splits
    # Built in a strategy's scope: refuse splits the replicas do not divide now, not at trace.
    self._check_replicas(tf.distribute.get_strategy().num_replicas_in_sync)
    v_vars = base.inner_of(problem, "Proximal reweighting")
    dtype = v_vars[0].dtype
    self.opt = base.momentum_sgd(config, v_vars)
    # Per-row weights of the last batch (omega_bar of the row's split / split size; the
    # validation split's rows are not weighted) and which rows carry one.
    self.weights = tf.Variable(tf.zeros([n], dtype), trainable=False, name="example_weights")
    self.weights_valid = tf.constant([False] * self.split_size +
                                     [True] * (n - self.split_size))

  def split_gradients(self, batch, update_state=True):
    """[g_0, ..., g_{S-1}], each a list shaped like the variables, and the split losses: the
    global batch's splits, on every replica."""
    problem = self.problem
    v = base.values(problem.inner_variables)
    num_splits, replicas = int(self.config.splits), distribute.num_replicas()
    self._check_replicas(replicas)
    grads, losses = [], []
    for j in range(num_splits // replicas):       # this replica's splits (all on one device)
      rows = slice(j * self.split_size, (j + 1) * self.split_size)
      with tf.GradientTape() as tape:
        tape.watch(v)
        loss = tf.reduce_mean(problem.example_losses(v, batch, update_state=update_state,
                                                     rows=rows))
        # The sum of the replicas' j-th splits' losses is a global cost; the part of its
        # gradient that flows through this replica's rows (not summed over replicas) is this
        # split's gradient. One device: the split loss and its gradient.
        joint = distribute.sum_across(loss)
      grads.append(base.checked_gradients(base.local_gradients(tape, joint, v),
                                          problem.inner_variables, f"split {j}'s loss"))
      losses.append(loss)
    if replicas == 1:
      return grads, losses
    # Every replica's splits, in row order (= split order): the global splits everywhere.
    losses = tf.unstack(distribute.gather(tf.stack(losses)))
    per_variable = [distribute.gather(tf.stack([g[k] for g in grads])) for k in range(len(v))]
    return [[g[s] for g in per_variable] for s in range(num_splits)], losses

  def _check_replicas(self, replicas):
    if int(self.config.splits) % replicas:
      raise ValueError(
          f"proximal.splits = {self.config.splits} must be a multiple of the {replicas} "
          "replicas: each split is one forward pass (its own batch statistics), so it must lie "
          f"whole on one replica; use splits = a multiple of {replicas} or "
          "runner.distribute.strategy=none.")

  def split_weights(self, grads):
    """omega_bar for splits 1..S-1: a vector, or [num_vars, S-1] with ``per_layer``."""
    mu = self.config.mu
    g0, rest = grads[0], grads[1:]
    if self.config.per_layer:
      dots = tf.stack([tf.stack([tf.reduce_sum(a * b) for a, b in zip(g0, gs)]) for gs in rest],
                      axis=1)
      norms = tf.stack([tf.stack([tf.reduce_sum(b * b) for b in gs]) for gs in rest], axis=1)
    else:
      dots = tf.stack([base.inner_product(g0, gs) for gs in rest])
      norms = tf.stack([base.sum_of_squares(gs) for gs in rest])
    omega = dots / (norms + mu)
    total = tf.reduce_sum(tf.abs(omega), axis=-1, keepdims=True)
    # Zero-sum guard: all-zero weights stay zero instead of 0 / 0.
    return omega / (total + tf.cast(tf.equal(total, 0.0), omega.dtype))

  def scheduled_rates(self):
    return [self.opt.learning_rate]

  def step(self, batch):
    problem = self.problem
    v_vars = list(problem.inner_variables)
    grads, losses = self.split_gradients(batch)
    omega = tf.stop_gradient(self.split_weights(grads))
    rest = grads[1:]
    if self.config.per_layer:
      data = [tf.add_n([omega[k, s] * gs[k] for s, gs in enumerate(rest)])
              for k in range(len(v_vars))]
      per_split = tf.reduce_mean(omega, axis=0)
    else:
      data = [tf.add_n([omega[s] * gs[k] for s, gs in enumerate(rest)])
              for k in range(len(v_vars))]
      per_split = omega
    v = base.values(v_vars)
    with tf.GradientTape() as tape:
      tape.watch(v)
      decay = problem.weight_decay(v)
    decay_grads = base.gradients(tape, decay, v, zero_unconnected=True)
    lr = self.opt.apply([d + wd for d, wd in zip(data, decay_grads)], v_vars)
    rows = tf.repeat(per_split / self.split_size, self.split_size)
    self.weights.assign(tf.concat([tf.zeros([self.split_size], rows.dtype), rows], 0))
    return {"validation_loss": losses[0], "training_loss": tf.add_n(losses[1:]) / len(rest),
            "negative_weight_fraction": tf.reduce_mean(tf.cast(per_split < 0, tf.float32)),
            "lr": lr}
