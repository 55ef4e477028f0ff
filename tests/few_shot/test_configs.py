"""The few-shot configs carry the reference's settings (penalty.md §4, §5.1, §7)."""

import pytest

from few_shot import experiment
from few_shot.configs import miniimagenet, omniglot


@pytest.mark.parametrize("ways, shots", [(5, 1), (5, 5), (20, 1), (20, 5)])
@pytest.mark.parametrize("method", ["penalty", "approxgrad"])
def test_omniglot_rows(ways, shots, method):
  c = omniglot.get_config(f"{ways}way,{shots}shot,{method}")
  experiment.validate(c)
  assert (c.ways, c.shots, c.queries, c.encoder, c.eval_tasks, c.eval_steps, c.eval_every) == \
      (ways, shots, 15, "conv4", 600, 100, 1000)
  extra = 1 if method == "approxgrad" else 0
  assert (c.meta_iterations, c.meta_batch) == ((5000 + extra, 30) if ways == 5
                                               else (10000 + extra, 15))
  p, a = c.penalty, c.approxgrad
  assert (p.lr_u, p.lr_v, p.rho0, p.lamb0, p.eps0, p.nu0, p.c_rho, p.c_lamb, p.c_eps,
          p.lr_decay, p.inner_steps) == (1e-2, 1e-2, 1e-2, 1e-2, 1e-2, 1e-4, 1.1, 0.9, 0.9,
                                         0.99, 20)
  assert (a.lr_u, a.lr_v, a.lr_p, a.sigma, a.inner_steps, a.p_steps, a.lr_decay_every_epochs,
          a.correction) == (1e-2, 1e-2, 1e-2, 1e-3, 20, 20, 0, "all_groups")
  assert c.eval_lr == (1e-3 if method == "penalty" else 1e-2)
  assert c.eval_fresh_tasks is True     # new test tasks at every evaluation, as the original


def test_omniglot_default_is_the_originals_committed_20way_5shot():
  c = omniglot.get_config()
  assert (c.ways, c.shots, c.method, c.source) == (20, 5, "penalty", "npz")


@pytest.mark.parametrize("arg, iters, shots", [
    ("", 20001, 5), ("5way,1shot", 20001, 1), ("approxgrad", 20001, 1),
    ("5shot,approxgrad", 10001, 5)])
def test_miniimagenet_rows(arg, iters, shots):
  c = miniimagenet.get_config(arg)
  experiment.validate(c)
  assert (c.ways, c.shots, c.meta_batch, c.meta_iterations, c.encoder, c.image_size,
          c.eval_tasks, c.eval_lr) == (5, shots, 2, iters, "resnet_mini", 84, 600, 1e-3)
  assert c.penalty.lr_u == c.penalty.lr_v == 1e-3 and c.penalty.lr_decay == 0.99
  assert c.approxgrad.lr_u == c.approxgrad.lr_p == 1e-3
  assert c.eval_fresh_tasks is True


def test_tiny_and_bad_arguments():
  c = omniglot.get_config("5way,1shot,tiny")
  experiment.validate(c)
  assert (c.meta_iterations, c.meta_batch, c.eval_tasks, c.penalty.inner_steps) == (2, 2, 4, 2)
  with pytest.raises(ValueError, match="5way"):
    omniglot.get_config("fiveway")
