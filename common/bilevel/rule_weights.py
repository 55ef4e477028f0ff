"""Example weights from a fixed rule: the baselines that learned reweighting is compared with.

Same update as the reweighting methods (momentum SGD on sum_i w_i l_i + decay, BN as in any
training step), but the weights come from a rule that never looks at a clean set:

  uniform       w_i = 1 / n                      (plain training: the mean loss)
  class_ratio   w_i = class_weights[y_i]         (not normalised; L2RW's MNIST ``ratio``
                                                  baseline uses (p, 1 - p) for labels (0, 1))
  random        w_i = max(z_i, 0) / sum, z ~ N(0, 1) per example and step (all-zero guard)
                                                 (L2RW's CIFAR ``--random_weight``)
  batch_ratio   the batch's most frequent label weighted r = 0.1 / (0.4 + 0.6 / K), the
                others 1, normalised to sum 1       (L2RW BACKGROUNDFLIP's ``--ratio``)

Registered under the rule names (``uniform``, ``class_ratio``, ``random``, ``batch_ratio``): each is
``RuleWeights`` with its rule fixed, so ``--config.method=random`` and a config block
``config.random`` work like any other method.

Replicated (``common.distribute``), every rule gives one device's numbers: a rule that reads
the whole batch computes the global batch's weights on every replica (``random``: the same
stateless draw of all n values from (draw number, seed); ``batch_ratio``: the majority label
of the gathered global labels) and keeps this replica's rows; the weighted loss is summed
across replicas.
"""

import tensorflow as tf

from common import defaults
from common import distribute
from common.bilevel import base
from common.bilevel import optim

RULES = ("uniform", "class_ratio", "random", "batch_ratio")


class RuleWeights(base.Method):
  """Momentum SGD on the example-weighted loss, the weights from ``config.rule``."""

  needs_outer_variables = False
  learns_example_weights = True
  problem_interface = base.ReweightingProblem
  supports_replication = True
  RULE = "uniform"     # the default rule; the registered subclasses fix theirs

  @classmethod
  def default_config(cls):
    return defaults.rule_weights(cls.RULE)

  def __init__(self, problem, config):
    super().__init__(name=f"rule_weights_{config.rule}")
    if config.rule not in RULES:
      raise ValueError(f"Unknown weight rule {config.rule!r}; choose one of {list(RULES)}.")
    if type(self) is not RuleWeights and config.rule != self.RULE:
      raise ValueError(f"The {self.RULE!r} method weighs by its own rule; its config asks for "
                       f"rule {config.rule!r}. Pick the method of that rule instead.")
    if config.rule == "class_ratio" and not config.class_weights:
      raise ValueError("rule 'class_ratio' needs class_weights (one per class).")
    self.problem = problem
    self.config = config
    v_vars = list(problem.inner_variables)
    dtype = v_vars[0].dtype
    self.opt = base.momentum_sgd(config, v_vars)
    self.weights = tf.Variable(tf.zeros([problem.batch_size], dtype), trainable=False,
                               name="example_weights")
    self.class_weights = tf.constant(list(config.class_weights) or [1.0], dtype)
    if config.rule == "batch_ratio":
      k = int(config.num_classes) or _num_outputs(problem)
      self.majority_weight = 0.1 / (0.4 + 0.6 / k)
    # random: draw number k of the stream is stateless_normal([n], seed=(k, seed)), the same on
    # every replica. Checkpointed with the method, so a resumed run continues the stream.
    self.draws = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="random_draws")

  def example_weights(self, batch):
    """The weights of this replica's rows (all rows on one device)."""
    b = self.problem.batch_size
    dtype = self.weights.dtype
    rule = self.config.rule
    if rule == "uniform":     # 1 / (global batch) for each of this replica's rows
      return tf.fill([distribute.local_size(b)], tf.constant(1.0 / b, dtype))
    if rule == "class_ratio":
      labels = batch[self.problem.train_key]["y"]
      return tf.gather(self.class_weights, tf.cast(labels, tf.int32))
    if rule == "batch_ratio":
      # The global batch's labels: the majority and the normalisation are the whole batch's.
      labels = distribute.gather(tf.cast(batch[self.problem.train_key]["y"], tf.int32))
      # The first of the most frequent labels (numpy's argmax of the bincount).
      counts = tf.math.bincount(labels, minlength=1)
      majority = tf.cast(tf.argmax(tf.cast(counts, tf.int64)), tf.int32)
      w = tf.where(tf.equal(labels, majority), tf.constant(self.majority_weight, dtype),
                   tf.constant(1.0, dtype))
      return distribute.local_rows(w / tf.reduce_sum(w))
    # random: all b values drawn identically on every replica, then this replica's rows.
    seed = tf.stack([self.draws.read_value(), tf.constant(int(self.config.seed), tf.int64)])
    self.draws.assign_add(1)
    w = tf.maximum(tf.random.stateless_normal([b], seed=seed, dtype=dtype, alg="philox"), 0.0)
    total = tf.reduce_sum(w)
    return distribute.local_rows(w / (total + tf.cast(tf.equal(total, 0.0), dtype)))

  def scheduled_rates(self):
    return [self.opt.learning_rate]

  def step(self, batch):
    w = self.example_weights(batch)
    weighted, mean_loss, lr = base.weighted_loss_step(self.problem, self.opt, w, batch)
    self.weights.assign(distribute.gather(w))
    return {"weighted_loss": weighted, "mean_loss": mean_loss, "lr": lr}


class UniformWeights(RuleWeights):
  """w_i = 1 / n: plain momentum-SGD training on the mean loss."""
  RULE = "uniform"


class ClassRatioWeights(RuleWeights):
  """w_i = class_weights[y_i]."""
  RULE = "class_ratio"


class RandomWeights(RuleWeights):
  """Random non-negative weights, normalised per batch."""
  RULE = "random"


class BatchRatioWeights(RuleWeights):
  """The batch's majority label down-weighted to 0.1 / (0.4 + 0.6 / K) of the others."""
  RULE = "batch_ratio"


def _num_outputs(problem):
  try:
    return int(problem.model.output_shape[-1])
  except (AttributeError, ValueError, TypeError):
    raise ValueError("rule 'batch_ratio' needs the number of classes: set num_classes in its "
                     "config block.") from None
