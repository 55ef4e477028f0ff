"""Poisons every bilevel attack is compared with, at the same count and the same labels.

- ``random_label``: the bilevel attacks' starting point itself, i.e. copies of training images
  with the attack's wrong labels (random for the untargeted attack, 3 <-> 8 swapped for the
  targeted one). What the bilevel optimisation adds is measured against it.
- ``fgsm`` / ``pgd``: adversarial examples of the *pretrained* classifier made from the same
  starting images with cleverhans (Goodfellow et al.'s fast gradient sign method; Madry et al.'s
  projected gradient descent, L-infinity ball), each pushed away from its true class, then
  given the attack's wrong label like the bilevel poisons. Clipped to the same pixel box.
"""

import importlib.util

import numpy as np
import tensorflow as tf

BASELINES = ("random_label", "fgsm", "pgd")
# The baselines made with cleverhans (an optional dependency: pip install '.[cleverhans]').
CLEVERHANS = ("fgsm", "pgd")


def check_available(names):
  """ValueError (one line, before any work) when a baseline of ``names`` needs cleverhans and
  it is not installed."""
  wanted = [n for n in names if n in CLEVERHANS]
  if wanted and importlib.util.find_spec("cleverhans") is None:
    raise ValueError(f"baselines {wanted} are made with cleverhans, which is not installed: "
                     "pip install '.[cleverhans]' (see the README), or drop them, e.g. "
                     "--config.baselines=random_label.")


def adversarial_poisons(kind, model, x, y_true, config, box=(0.0, 1.0)):
  """Adversarial examples of ``model`` from ``x`` (numpy), untargeted w.r.t. ``y_true``.

  ``config`` holds ``eps`` (L-infinity radius), and for PGD ``step_size``, ``iterations`` and
  ``rand_init`` (a uniform start in the ball, seeded by ``seed``).
  """
  # pylint: disable=import-outside-toplevel  (optional: check_available has run)
  from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
  from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent
  x = tf.convert_to_tensor(x, tf.float32)
  y = tf.convert_to_tensor(y_true, tf.int64)
  model_fn = lambda images: model(images, training=False)  # noqa: E731  (logits)
  low, high = float(box[0]), float(box[1])
  if kind == "fgsm":
    out = fast_gradient_method(model_fn, x, float(config.eps), np.inf, clip_min=low,
                               clip_max=high, y=y, targeted=False)
  elif kind == "pgd":
    if config.rand_init:
      tf.random.set_seed(int(config.seed))
    out = projected_gradient_descent(
        model_fn, x, float(config.eps), float(config.step_size), int(config.iterations), np.inf,
        clip_min=low, clip_max=high, y=y, targeted=False, rand_init=bool(config.rand_init),
        rand_minmax=float(config.eps), sanity_checks=False)
  else:
    raise ValueError(f"Unknown adversarial baseline {kind!r}; choose 'fgsm' or 'pgd'.")
  return np.asarray(out, np.float32)
