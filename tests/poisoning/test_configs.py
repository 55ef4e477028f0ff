"""The poisoning configs carry the reference's settings (penalty.md §4, §5.1, §8)."""

import pytest

from poisoning.configs import (cifar10_clean_label, dogfish_clean_label, mnist_targeted,
                               mnist_untargeted)


def test_untargeted_row():
  c = mnist_untargeted.get_config("paper")
  p, a = c.penalty, c.approxgrad
  assert (p.lr_u, p.lr_v, p.rho0, p.lamb0, p.eps0, p.nu0, p.inner_steps) == (
      0.1, 1e-3, 10.0, 100.0, 1.0, 0.0, 20)
  assert (p.c_rho, p.c_lamb, p.c_eps, p.lr_decay) == (1.1, 0.9, 0.9, 0.9)
  assert (a.lr_u, a.lr_v, a.lr_p, a.sigma, a.inner_steps, a.p_steps) == (
      1e-2, 1e-3, 1e-2, 1e-3, 20, 20)
  assert (a.lr_decay_every_epochs, a.lr_decay_factor) == (1000, 0.5)
  assert dict(c.attack_steps)["penalty"] == 5000 and dict(c.attack_steps)["approxgrad"] == 5000
  assert (c.train_size, c.val_size, c.test_size, c.num_poisons) == (1000, 1000, 8000, 60)
  assert (c.pretrain_steps, c.retrain_steps, c.weight_decay) == (10001, 10001, 0.005)
  assert c.model == "mnist_linear_nobias" and tuple(c.box) == (0.0, 1.0)
  # Without :paper only the number of outer iterations changes.
  cpu = mnist_untargeted.get_config()
  assert cpu.attack_steps.penalty == 1000 and cpu.penalty == c.penalty


def test_targeted_row():
  c = mnist_targeted.get_config("paper")
  p, a = c.penalty, c.approxgrad
  assert (p.lr_u, p.lr_v, p.rho0, p.lamb0, p.eps0, p.nu0, p.inner_steps) == (
      0.1, 1e-4, 10.0, 1.0, 1.0, 0.0, 20)
  assert (a.lr_u, a.lr_v, a.lr_p, a.sigma) == (1e-3, 1e-4, 1e-3, 1e-3)
  assert c.attack_steps.penalty == 5001 and c.attack_steps.approxgrad == 5000
  assert (c.train_size, c.val_size, c.test_size, c.num_poisons) == (1000, 4000, 5000, 60)
  assert (c.source_class, c.target_class, c.test_set) == (8, 3, "official")


@pytest.mark.parametrize("module", [dogfish_clean_label, cifar10_clean_label])
def test_clean_label_rows(module):
  c = module.get_config()
  p = c.penalty
  assert (p.lr_u, p.lr_v, p.rho0, p.lamb0, p.eps0, p.nu0, p.inner_steps) == (
      1e-2, 1e-3, 1.0, 1.0, 1.0, 0.0, 10)
  assert (c.attack_steps, c.train_steps, c.train_lr, c.beta, c.classifier_stddev) == (
      201, 2001, 1e-3, 0.01, 0.01)
  assert c.method == "penalty"


def test_dogfish_uses_inception_and_every_test_image():
  c = dogfish_clean_label.get_config()
  assert c.extractor == "inception_v3" and c.extractor_weights == "imagenet"
  assert c.num_targets == 0 and not c.train_extractor


def test_unknown_config_argument_is_an_error():
  with pytest.raises(ValueError, match="paper"):
    mnist_untargeted.get_config("fast")


def _script_rates(loop, nepochs, lr=1.0):
  """The lr_u each ApproxGrad iteration of the original scripts uses, in order, by hand:
  ``for epoch in loop: train(..., lr_u, ...); if epoch % 1000 == 0 and epoch != 0: lr_u *=
  0.5``."""
  used = []
  for epoch in loop(nepochs):
    used.append(lr)
    if epoch % 1000 == 0 and epoch != 0:
      lr *= 0.5
  return used


def _config_rates(approxgrad_cfg, num_steps, lr=1.0):
  """The rate each outer iteration of ours uses: the family calls ``end_epoch(e)`` after
  iteration e (from 1; full batch, one iteration per epoch) on the method's rate variables."""
  import tensorflow as tf
  from common.bilevel import optim
  schedule = optim.Schedule.from_config(approxgrad_cfg)
  var = tf.Variable(lr, dtype=tf.float64)
  used = []
  for e in range(1, num_steps + 1):
    used.append(float(var.numpy()))
    schedule.end_epoch(e, [var])
  return used


def test_approxgrad_halving_falls_after_the_scripts_iterations():
  # Untargeted script: ``nepochs = 5000; for epoch in range(nepochs)``: 0-based, so the
  # halvings come after its iterations 1001, 2001, 3001, 4001 (counted from 1).
  untargeted = _script_rates(range, 5000)
  assert len(untargeted) == 5000
  assert [i + 1 for i in range(1, 5000) if untargeted[i] < untargeted[i - 1]] == \
      [1002, 2002, 3002, 4002]                 # the first iteration at each new rate
  assert untargeted[1000] == 1.0 and untargeted[1001] == 0.5
  c = mnist_untargeted.get_config("paper")
  assert c.approxgrad.lr_decay_epoch_offset == 1
  assert _config_rates(c.approxgrad, c.attack_steps.approxgrad) == untargeted
  # Targeted script: ``nepochs = 5001; for epoch in range(1, nepochs)``: 1-based, so after
  # iterations 1000, 2000, 3000, 4000: one iteration earlier than the untargeted one.
  targeted = _script_rates(lambda n: range(1, n), 5001)
  assert len(targeted) == 5000 and targeted[999] == 1.0 and targeted[1000] == 0.5
  t = mnist_targeted.get_config("paper")
  assert t.approxgrad.lr_decay_epoch_offset == 0
  assert _config_rates(t.approxgrad, t.attack_steps.approxgrad) == targeted
  # The default job (1000 iterations): no halving reaches any of its iterations, either way.
  cpu = mnist_untargeted.get_config()
  assert set(_config_rates(cpu.approxgrad, cpu.attack_steps.approxgrad)) == {1.0}
