"""The poisoning problems, splits and baselines: box projection, costs, data protocols, and an
attack that must beat random-label poisons on a tiny real-MNIST problem."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import bilevel, models
from common.bilevel import base
from poisoning import baselines
from poisoning import data as pdata
from poisoning.configs import mnist_targeted, mnist_untargeted
from poisoning.problem import (AugmentationPoisoning, CleanLabelPoisoning, PoisonedTraining,
                               logistic_regression)


def _tiny_untargeted(seed=0, train=100, val=100, poisons=10):
  c = mnist_untargeted.get_config()
  c.train_size, c.val_size, c.test_size, c.num_poisons, c.seed = train, val, 200, poisons, seed
  return c, pdata.untargeted(c, log=lambda *_: None)


def _batch(d):
  return {"x_train": tf.constant(d.x_train), "y_train": tf.constant(d.y_train),
          "x_val": tf.constant(d.x_val), "y_val": tf.constant(d.y_val),
          "poison_y": tf.constant(d.y_poison)}


def _train(d, x_poison=None, steps=300, lr=1e-2, seed=1):
  keras.utils.set_random_seed(seed)
  model = models.build("mnist_linear_nobias", (28, 28, 1), 10)
  cfg = bilevel.Plain.default_config()
  cfg.lr = lr
  method = bilevel.Plain(PoisonedTraining(model, 0.005), cfg)
  batch = {"x_train": tf.constant(d.x_train), "y_train": tf.constant(d.y_train)}
  if x_poison is not None:
    batch.update(poison_x=tf.constant(x_poison), poison_y=tf.constant(d.y_poison))
  step = tf.function(method.step)
  for _ in range(steps):
    step(batch)
  return model


def _val_loss(model, d):
  logits = model(tf.constant(d.x_val))
  return float(tf.reduce_mean(
      tf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant(d.y_val), logits)))


def _attack(d, pretrained, name, config, outer, inner, box=(0.0, 1.0)):
  model = models.build("mnist_linear_nobias", (28, 28, 1), 10)
  model.set_weights(pretrained.get_weights())
  problem = AugmentationPoisoning(model, d.x_poison, box, 0.005, sign=-1.0)
  cfg = config[name].copy_and_resolve_references()
  cfg.inner_steps = inner
  if name == "approxgrad":
    cfg.p_steps = inner
  method = bilevel.build_method(name, problem, cfg)
  step = tf.function(bilevel.combined_step(problem, method))
  batch = _batch(d)
  boxes = []
  for _ in range(outer):
    step(batch)
    p = problem.poisons.numpy()
    boxes.append((p.min(), p.max()))
  return problem.poisons.numpy(), boxes


def test_untargeted_split_follows_the_protocol():
  c, d = _tiny_untargeted(train=100, val=50, poisons=10)
  assert d.x_train.shape == (100, 28, 28, 1) and len(d.y_val) == 50 and len(d.y_test) == 200
  assert d.x_train.dtype == np.float32 and 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
  # Poisons start as copies of the first training images and keep them in the training set.
  np.testing.assert_array_equal(d.x_poison, d.x_train[:10])
  np.testing.assert_array_equal(d.poison_source, np.arange(10))
  # Every poison label is wrong, and the wrong labels are not all the same class.
  assert np.all(d.y_poison != d.y_train[:10]) and len(set(d.y_poison)) > 1
  # The seed decides the split; the same seed gives the same one.
  _, again = _tiny_untargeted(train=100, val=50, poisons=10)
  np.testing.assert_array_equal(again.x_train, d.x_train)


def test_random_wrong_labels_are_uniform_over_the_other_classes():
  rng = np.random.default_rng(0)
  y = np.full(90000, 4)
  wrong = pdata.random_wrong_labels(y, 10, rng)
  counts = np.bincount(wrong, minlength=10)
  assert counts[4] == 0
  np.testing.assert_allclose(counts[np.arange(10) != 4] / len(y), 1 / 9, atol=0.005)


def test_targeted_split_follows_the_protocol():
  c = mnist_targeted.get_config()
  c.train_size, c.val_size, c.test_size, c.num_poisons = 200, 400, 400, 20
  d = pdata.targeted(c, log=lambda *_: None)
  # Balanced training set: 20 per class.
  np.testing.assert_array_equal(np.bincount(d.y_train, minlength=10), np.full(10, 20))
  # The attacker's validation set and the test set: source-class images labelled as target.
  assert np.all(d.y_val == 3) and np.all(d.y_test == 3) and len(d.y_val) > 0
  # Poisons: 10 threes labelled 8 and 10 eights labelled 3, copies of training images.
  source_labels = d.y_train[d.poison_source]
  assert sorted(source_labels.tolist()) == [3] * 10 + [8] * 10
  np.testing.assert_array_equal(d.y_poison, np.where(source_labels == 3, 8, 3))
  np.testing.assert_array_equal(d.x_poison, d.x_train[d.poison_source])
  with pytest.raises(ValueError, match="even"):
    c.num_poisons = 7
    pdata.targeted(c, log=lambda *_: None)


def test_inner_cost_is_the_originals_g():
  rng = np.random.default_rng(0)
  model = models.build("mnist_linear_nobias", (28, 28, 1), 10)
  x_p = rng.random((3, 28, 28, 1), np.float32)
  problem = AugmentationPoisoning(model, x_p, decay=0.005)
  batch = {"x_train": tf.constant(rng.random((5, 28, 28, 1), np.float32)),
           "y_train": tf.constant(rng.integers(0, 10, 5), tf.int64), "poison_y": tf.constant([1, 2, 3], tf.int64),
           "x_val": tf.constant(rng.random((4, 28, 28, 1), np.float32)),
           "y_val": tf.constant(rng.integers(0, 10, 4))}
  w = model.trainable_variables[0].numpy()
  x = np.concatenate([x_p, batch["x_train"].numpy()]).reshape(8, -1)
  y = np.concatenate([[1, 2, 3], batch["y_train"].numpy()])
  logits = x @ w
  logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  expected = -logp[np.arange(8), y].mean() + 0.005 * 0.5 * np.sum(w ** 2)
  got = problem.inner_cost(base.values(problem.outer_variables),
                           base.values(problem.inner_variables), batch)
  np.testing.assert_allclose(float(got), expected, rtol=1e-5)
  # f maximises the validation loss: it is minus the validation cross-entropy.
  f = problem.outer_cost(None, base.values(problem.inner_variables), batch)
  logits_v = batch["x_val"].numpy().reshape(4, -1) @ w
  logp_v = logits_v - np.log(np.exp(logits_v).sum(1, keepdims=True))
  np.testing.assert_allclose(float(f), logp_v[np.arange(4), batch["y_val"].numpy()].mean(),
                             rtol=1e-5)


@pytest.mark.parametrize("name", ["penalty", "approxgrad"])
@pytest.mark.parametrize("box", [(0.0, 1.0), (0.2, 0.7)])
def test_projection_keeps_every_poison_inside_its_box(name, box):
  c, d = _tiny_untargeted(train=50, val=50, poisons=6)
  # Large outer steps push pixels far past the box; the projection must catch every one.
  c.penalty.lr_u = 5.0
  c.approxgrad.lr_u = 5.0
  keras.utils.set_random_seed(0)
  pretrained = models.build("mnist_linear_nobias", (28, 28, 1), 10)
  poisons, boxes = _attack(d, pretrained, name, c, outer=5, inner=2, box=box)
  for low, high in boxes:
    assert low >= box[0] - 1e-7 and high <= box[1] + 1e-7
  # And the attack did move pixels onto the bounds (the projection was active).
  assert np.isclose(poisons, box[0]).any() or np.isclose(poisons, box[1]).any()


def test_clean_label_projection_and_fixed_outer_costs():
  rng = np.random.default_rng(0)
  extractor = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                                keras.layers.GlobalAveragePooling2D()])
  classifier = logistic_regression(4, 2, 0.01, seed=0)
  problem = CleanLabelPoisoning(classifier, extractor, (8, 8, 3), box=(-1.0, 1.0), beta=0.01)
  problem.poison.assign(rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32))
  batch = {"features": tf.constant(rng.normal(size=(10, 4)).astype(np.float32)),
           "labels": tf.constant(rng.integers(0, 2, 10), tf.int64),
           "target": tf.constant(rng.normal(size=(1, 4)).astype(np.float32)),
           "target_wrong": tf.constant([1], tf.int64), "base_label": tf.constant([0], tf.int64),
           "base": tf.constant(rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32))}
  u, v = base.values(problem.outer_variables), base.values(problem.inner_variables)
  fixed = problem.fix_outer(u, batch)
  for cost in (problem.inner_cost, problem.outer_cost):
    np.testing.assert_allclose(float(cost(u, v, fixed)), float(cost(u, v, batch)), rtol=1e-6)
  cfg = bilevel.Penalty.default_config()
  cfg.update(dict(lr_u=10.0, inner_steps=2))
  method = bilevel.build_method("penalty", problem, cfg)
  for _ in range(3):
    method.step(batch)
    p = problem.poison.numpy()
    assert p.min() >= -1.0 and p.max() <= 1.0
  # The hypergradient reaches the pixels through the extractor.
  assert float(tf.reduce_sum(tf.abs(method.hypergradient(batch)[0]))) > 0


@pytest.mark.parametrize("kind", ["fgsm", "pgd"])
def test_cleverhans_poisons_stay_in_the_eps_ball_and_box_and_raise_the_loss(kind):
  c, d = _tiny_untargeted(train=100, val=50, poisons=10)
  model = _train(d, steps=100)
  true = d.y_train[d.poison_source]
  cfg = c[kind].copy_and_resolve_references()
  cfg.eps = 0.1
  adv = baselines.adversarial_poisons(kind, model, d.x_poison, true, cfg, (0.0, 1.0))
  assert adv.shape == d.x_poison.shape
  assert np.abs(adv - d.x_poison).max() <= 0.1 + 1e-6
  assert adv.min() >= 0.0 and adv.max() <= 1.0
  loss = lambda x: float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(  # noqa
      tf.constant(true), model(tf.constant(x)))))
  assert loss(adv) > loss(d.x_poison) + 0.1


@pytest.mark.slow
def test_bilevel_attacks_raise_the_validation_loss_more_than_random_label_poisons():
  # Real MNIST (the embedded images), 100 train / 100 val, 10 poisons; the attack has 100
  # outer iterations, then a fresh classifier is retrained on train + poisons.
  c, d = _tiny_untargeted(train=100, val=100, poisons=10)
  pretrained = _train(d)
  clean = _val_loss(pretrained, d)
  random_label = _val_loss(_train(d, d.x_poison), d)
  assert random_label > clean
  for name in ("penalty", "approxgrad"):
    poisons, _ = _attack(d, pretrained, name, c, outer=100, inner=5)
    attacked = _val_loss(_train(d, poisons), d)
    assert attacked > random_label + 0.03, (name, attacked, random_label)


def test_missing_cleverhans_is_a_one_line_error_before_any_work(monkeypatch):
  from poisoning import baselines  # pylint: disable=import-outside-toplevel
  real = baselines.importlib.util.find_spec
  monkeypatch.setattr(baselines.importlib.util, "find_spec",
                      lambda name: None if name == "cleverhans" else real(name))
  with pytest.raises(ValueError, match=r"baselines \['fgsm'\] are made with cleverhans, which "
                                       r"is not installed: pip install '\.\[cleverhans\]'"):
    baselines.check_available(("random_label", "fgsm"))
  baselines.check_available(("random_label",))      # needs nothing
