"""Few-shot learning as a bilevel problem (the penalty paper's second application).

    u  the shared encoder
    v  one scaled-cosine head (W [d, N], b [N]) per task of the meta-batch: one inner group
       per task
    g  mean over tasks of the mean cross-entropy on the task's support set
    f  mean over tasks of the mean cross-entropy on the task's query set

A batch is one meta-batch of M tasks: ``support_x`` [M, N K, H, W, C], ``support_y`` [M, N K]
(positions 0..N-1), ``query_x`` [M, N Q, ...], ``query_y``. Every meta-iteration starts from
freshly initialised heads (``init_heads``); the method's Adam moments and the penalty method's
nu are kept, as in the original.

``fix_outer`` computes the encoder's features once for the method's v-steps (u is constant
there), so those steps cost a head's worth of computation, not an encoder's.

Replicated (``common.distribute``): the tasks are the rows. Replica r receives its block of
tasks (their images and labels) and holds every head, as every variable; it evaluates its own
tasks with their heads (``local_rows`` of the stacked heads), and the costs are the global means
over all M tasks (``distribute.mean``). A head's gradient is non-zero on the replica that holds
its task only, and the summed gradient is one device's. The encoders' batch norm uses each set's
own statistics, so a task's features do not depend on which replica computes them.
"""

import tensorflow as tf

from common import distribute
from common.errors import ConfigError
from common import models as modellib
from common.bilevel import optim
from common.bilevel.base import BilevelProblem
from few_shot import models


class FewShotProblem(BilevelProblem):

  supports_replication = True

  def __init__(self, encoder, set_aware, num_tasks, ways, one_call=False):
    """``one_call``: a user's 4-D encoder (not ``set_aware``) that acts on each image alone
    (``models.acts_per_image``, else a ``ConfigError``) encodes every set of the meta-batch in
    one call on [M B, H, W, C] instead of set by set; the same features."""
    super().__init__(name="few_shot")
    self.encoder = encoder
    self.set_aware = bool(set_aware)
    self.per_image = bool(one_call) and not self.set_aware
    if self.per_image and not models.acts_per_image(encoder):
      raise ConfigError("encoder_one_call=True needs an encoder whose layers act on each image "
                        "alone; this one has batch norm, a random layer, a Lambda or a layer "
                        "of its own, so it must run set by set (encoder_one_call=False).")
    self.num_tasks, self.ways = int(num_tasks), int(ways)
    self.feature_dim = int(encoder.output_shape[-1])
    d, n = self.feature_dim, self.ways
    # The heads take the encoder's variable type (float32, also under a mixed policy).
    dtype = encoder.trainable_variables[0].dtype
    self.heads = []
    for t in range(self.num_tasks):
      w = tf.Variable(tf.zeros([d, n], dtype), name=f"head{t}_w")
      b = tf.Variable(tf.fill([n], tf.constant(models.HEAD_B_INIT, dtype)), name=f"head{t}_b")
      self.heads.append((w, b))
    self.outer_variables = list(encoder.trainable_variables)
    self.inner_variables = [var for head in self.heads for var in head]
    self.inner_groups = [(2 * t, 2 * t + 1) for t in range(self.num_tasks)]

  # -- heads --------------------------------------------------------------------------------

  def init_heads(self, seed):
    """W ~ N(0, 0.01^2), b = 0.001 for every head, from a stateless seed [2]."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), self.num_tasks)
    for t, (w, b) in enumerate(self.heads):
      w.assign(models.HEAD_W_STDDEV * tf.random.stateless_normal(w.shape, seeds[t],
                                                                      dtype=w.dtype))
      b.assign(tf.fill(b.shape, tf.constant(models.HEAD_B_INIT, b.dtype)))

  @staticmethod
  def stacked(v):
    """Heads [W_0, b_0, W_1, ...] as (W [M, d, N], b [M, N])."""
    return tf.stack(v[0::2]), tf.stack(v[1::2])

  @classmethod
  def local_heads(cls, v):
    """The heads of this replica's tasks (all of them on one device): (W, b) as ``stacked``."""
    w, b = cls.stacked(v)
    return distribute.local_rows(w), distribute.local_rows(b)

  # -- encoder ------------------------------------------------------------------------------

  def encode(self, u, x):
    """Features [M, B, d] of image sets [M, B, H, W, C], batch norm on each set's statistics."""
    if self.set_aware:
      return modellib.forward(self.encoder, u, x, training=True, update_state=False)
    if self.per_image:
      flat = tf.reshape(x, [-1, *x.shape[2:]])
      feats = modellib.forward(self.encoder, u, flat, training=True, update_state=False)
      return tf.reshape(feats, [x.shape[0], x.shape[1], -1])
    feats = [modellib.forward(self.encoder, u, x[t], training=True, update_state=False)
             for t in range(x.shape[0])]
    return tf.reshape(tf.stack(feats), [x.shape[0], x.shape[1], -1])

  # -- costs --------------------------------------------------------------------------------

  @staticmethod
  def task_losses(features, w, b, labels):
    """Mean cross-entropy of each task [M]."""
    logits = models.cosine_logits(features, w, b)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32),
                                                        logits=logits)
    return tf.reduce_mean(ce, axis=-1)

  def _features(self, u, batch, part):
    key = f"{part}_features"
    return batch[key] if key in batch else self.encode(u, batch[f"{part}_x"])

  def inner_cost(self, u, v, batch):
    w, b = self.local_heads(v)
    return distribute.mean(self.task_losses(self._features(u, batch, "support"), w, b,
                                            batch["support_y"]))

  def outer_cost(self, u, v, batch):
    w, b = self.local_heads(v)
    return distribute.mean(self.task_losses(self._features(u, batch, "query"), w, b,
                                            batch["query_y"]))

  def fix_outer(self, u, batch):
    fixed = dict(batch)
    fixed["support_features"] = self.encode(u, batch["support_x"])
    fixed["query_features"] = self.encode(u, batch["query_x"])
    return fixed


def adapt_and_evaluate(problem, batch, seed, steps, learning_rate, epsilon=1e-8):
  """The evaluation protocol on one meta-batch of test tasks: query accuracy of every task [M].

  The encoder is frozen. Fresh heads (the training init) and fresh Adam moments (TF1 defaults:
  beta1 0.9, beta2 0.999) take ``steps`` steps on the support cross-entropy (the mean over
  tasks, as the original's head-only optimiser); the query set is then classified with them.
  Nothing of the problem's state changes.
  """
  u = [tf.convert_to_tensor(x) for x in problem.outer_variables]
  support = tf.stop_gradient(problem.encode(u, batch["support_x"]))
  query = tf.stop_gradient(problem.encode(u, batch["query_x"]))
  m, d, n = problem.num_tasks, problem.feature_dim, problem.ways
  w = models.HEAD_W_STDDEV * tf.random.stateless_normal([m, d, n], tf.cast(seed, tf.int64),
                                                         dtype=support.dtype)
  b = tf.fill([m, n], tf.constant(models.HEAD_B_INIT, support.dtype))
  params = [w, b]

  def body(t, params, state):
    with tf.GradientTape() as tape:
      tape.watch(params)
      loss = tf.reduce_mean(problem.task_losses(support, params[0], params[1],
                                                batch["support_y"]))
    params, state = optim.adam_update(tape.gradient(loss, params), params, state,
                                      learning_rate, epsilon=epsilon)
    return t + 1, params, state

  _, params, _ = tf.while_loop(lambda t, *_: t < steps, body,
                               (tf.constant(0), params, optim.adam_init(params)))
  logits = models.cosine_logits(query, params[0], params[1])
  hits = tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                  tf.cast(batch["query_y"], tf.int32))
  return tf.reduce_mean(tf.cast(hits, tf.float32), axis=-1)
