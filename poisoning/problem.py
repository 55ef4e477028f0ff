"""What the poisoning attacks optimise (penalty.md §8).

Augmentation attacks (untargeted, targeted): u = the poison images, v = the classifier.

    g(u, v) = decay * sum_w l2(w) + mean CE over [poisons u with their fixed labels; train]
    f(u, v) = sign * mean CE on the validation set     (sign -1: untargeted, +1: targeted)

with l2(w) = |w|^2 / 2 (TF1's ``tf.nn.l2_loss``) and decay 0.005 (the original's 0.5 * 0.01).
The poisons are projected onto their pixel box after every step.

Clean-label attack: u = one poison image, v = a logistic regression (W, b) on frozen features.

    g(u, v) = mean CE over [rep(u) with the base's label; the clean training features]
    f(u, v) = CE(target, the wrong class) + |rep(u) - x_target|^2 + beta |u - x_base|^2

where rep is the frozen feature extractor, through which f and g are differentiated in u.

Replicated (``common.distribute``, augmentation attacks): the training, validation and poison
rows are split among the replicas; every replica holds all poisons (u) and reads its block of
them (``local_rows``, with its block of ``poison_y``), and the means are global
(``distribute.mean``), so the step and the summed gradient are one device's. The clean-label
problems run on one device.
"""

import keras
import tensorflow as tf

from common import distribute
from common import models
from common.bilevel import BilevelProblem
from common.problems import cross_entropy


def l2_decay(weights, decay):
  return decay * tf.add_n([tf.nn.l2_loss(w) for w in weights])


class PoisonedTraining(BilevelProblem):
  """Single-level training of ``model`` on the training set plus fixed poisons (pretraining
  and retraining, with the ``plain`` method): the attack's g with the poisons taken from the
  batch (``poison_x``, ``poison_y``; absent for clean training)."""

  supports_replication = True

  def __init__(self, model, decay):
    super().__init__()
    self.model = model
    self.decay = float(decay)
    self.outer_variables = []
    self.inner_variables = list(model.trainable_variables)

  def inner_cost(self, u, v, batch):
    x, y = batch["x_train"], batch["y_train"]
    if "poison_x" in batch:
      x = tf.concat([batch["poison_x"], x], 0)
      y = tf.concat([batch["poison_y"], y], 0)
    losses = cross_entropy(models.forward(self.model, v, x), y)
    return distribute.mean(losses) + l2_decay(v, self.decay)


class AugmentationPoisoning(BilevelProblem):
  """Data-augmentation poisoning: optimise the pixels of ``num_poisons`` added images.

  Args:
    model: the attacked classifier (its trainable variables are v).
    x_poison: the poisons' starting images [P, H, W, C] (u is initialised from them).
    box: (low, high) pixel bounds, the projection after every step on u.
    decay: the coefficient of l2(w) in g.
    sign: -1 maximises the validation loss (untargeted), +1 minimises it (targeted, where the
      validation labels are the attacker's).
  """

  supports_replication = True

  def __init__(self, model, x_poison, box=(0.0, 1.0), decay=0.005, sign=-1.0):
    super().__init__()
    self.model = model
    self.low, self.high = float(box[0]), float(box[1])
    self.decay = float(decay)
    self.sign = float(sign)
    # The poisons take the model's float type (float32 unless the model is float64).
    dtype = model.trainable_variables[0].dtype
    self.poisons = tf.Variable(tf.convert_to_tensor(x_poison, dtype), trainable=False,
                               name="poisons")
    self.outer_variables = [self.poisons]
    self.inner_variables = list(model.trainable_variables)

  def inner_cost(self, u, v, batch):
    # This replica's poisons (all of them on one device), with its rows of ``poison_y``.
    x = tf.concat([distribute.local_rows(u[0]), batch["x_train"]], 0)
    y = tf.concat([batch["poison_y"], batch["y_train"]], 0)
    losses = cross_entropy(models.forward(self.model, v, x), y)
    return distribute.mean(losses) + l2_decay(v, self.decay)

  def outer_cost(self, u, v, batch):
    logits = models.forward(self.model, v, batch["x_val"])
    return self.sign * distribute.mean(cross_entropy(logits, batch["y_val"]))

  def project_outer(self, u):
    return [tf.clip_by_value(u[0], self.low, self.high)]


def logistic_regression(num_features, num_classes=2, stddev=0.01, seed=None):
  """The clean-label classifier: logits = x W + b, W ~ N(0, stddev^2), b = 0."""
  return keras.Sequential([
      keras.Input((num_features,)),
      keras.layers.Dense(num_classes, kernel_initializer=keras.initializers.RandomNormal(
          stddev=stddev, seed=seed)),
  ], name="logistic_regression")


class FeatureTraining(BilevelProblem):
  """Mean cross-entropy of the clean-label classifier on feature vectors (pre/retraining)."""

  def __init__(self, model):
    super().__init__()
    self.model = model
    self.outer_variables = []
    self.inner_variables = list(model.trainable_variables)

  def inner_cost(self, u, v, batch):
    return tf.reduce_mean(cross_entropy(models.forward(self.model, v, batch["features"]),
                                        batch["labels"]))


class CleanLabelPoisoning(BilevelProblem):
  """One poison image, optimised in pixel space through a frozen feature extractor.

  The batch holds ``features``/``labels`` (the clean training set), ``target`` (its feature
  vector, [1, d]), ``target_wrong`` (the class the target should be pushed to, [1]),
  ``base`` (the base image, [1, H, W, C]) and ``base_label`` ([1]). ``fix_outer`` computes
  rep(u) once for the loops in which u does not change (the extractor is the expensive part).
  """

  replication_refusal = ("its step reads one target and one base image, which cannot be split "
                         "over replicas; run the clean-label attack on one device")

  def __init__(self, classifier, extractor, image_shape, box, beta=0.01):
    super().__init__()
    self.classifier = classifier
    self.extractor = extractor
    self.low, self.high = float(box[0]), float(box[1])
    self.beta = float(beta)
    self.poison = tf.Variable(tf.zeros((1, *image_shape), tf.float32), trainable=False,
                              name="poison")
    self.outer_variables = [self.poison]
    self.inner_variables = list(classifier.trainable_variables)

  def representation(self, u, batch):
    if "rep_u" in batch:
      return batch["rep_u"]
    return self.extractor(u[0], training=False)

  def fix_outer(self, u, batch):
    # Differentiable in u (fix_outer's contract): a u-step at the same u pulls its gradient
    # back through rep_u instead of recomputing the extractor.
    return dict(batch, rep_u=self.extractor(u[0], training=False))

  def inner_cost(self, u, v, batch):
    x = tf.concat([self.representation(u, batch), batch["features"]], 0)
    y = tf.concat([batch["base_label"], batch["labels"]], 0)
    return tf.reduce_mean(cross_entropy(models.forward(self.classifier, v, x), y))

  def outer_cost(self, u, v, batch):
    rep = self.representation(u, batch)
    wrong = tf.reduce_mean(cross_entropy(models.forward(self.classifier, v, batch["target"]),
                                         batch["target_wrong"]))
    feature_gap = tf.reduce_sum(tf.square(rep - batch["target"]))
    pixel_gap = tf.reduce_sum(tf.square(u[0] - batch["base"]))
    return wrong + feature_gap + self.beta * pixel_gap

  def project_outer(self, u):
    return [tf.clip_by_value(u[0], self.low, self.high)]
