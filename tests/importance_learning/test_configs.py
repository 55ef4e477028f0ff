"""Every paper-row config loads, validates, and carries its row's values."""

import importlib
import pathlib

import pytest

from importance_learning import experiment
from importance_learning import imbalance

IMBALANCE_CONFIGS = ("mnist_imbalance",)
# Deep-network comparisons of declared approaches (importance_learning/approaches.py).
DEEP_CONFIGS = ("compare_deep_mnist", "compare_deep_cifar10")
# custom.py names the user's files: validated below with files; the ranking study writes its
# own files (tests/importance_learning/test_ranking_study.py).
CONFIGS = sorted(p.stem for p in (pathlib.Path(__file__).resolve().parents[2] /
                                  "importance_learning" / "configs").glob("*.py")
                 if p.stem not in ("__init__", "base", "custom", "ranking_study")
                 + IMBALANCE_CONFIGS + DEEP_CONFIGS)


def _load(name, arg=None):
  return importlib.import_module(f"importance_learning.configs.{name}").get_config(arg)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_and_validates_also_tiny(name):
  for arg in (None, "tiny", "0.5,tiny"):
    experiment.validate(_load(name, arg))
  assert _load(name, "0.5").noise == 0.5


@pytest.mark.parametrize("name", DEEP_CONFIGS)
def test_deep_comparison_configs_validate_also_tiny(name):
  from importance_learning import approaches
  for arg in (None, "tiny"):
    c = _load(name, arg)
    assert c.experiment == "compare"
    approaches.validate(c)
    approaches.check_sizes(c, 10)
  assert set(_load(name).compare.approaches) == set(approaches.APPROACHES)


def test_approxgrad_rows_carry_the_original_scripts_values():
  rows = {n: _load(n) for n in ("mnist_large_approxgrad", "cifar10_approxgrad",
                                "svhn_approxgrad")}
  for name, c in rows.items():
    assert c.method == "approxgrad" and c.pretrain.lr == 1e-3, name
    assert (c.approxgrad.lr_u, c.approxgrad.sigma, c.approxgrad.lr_decay_every_epochs,
            c.approxgrad.lr_decay_factor) == (1.0, 1e-3, 20, 0.5), name
  m, cf, s = (rows[n] for n in ("mnist_large_approxgrad", "cifar10_approxgrad",
                                "svhn_approxgrad"))
  assert (m.approxgrad.lr_v, m.approxgrad.lr_p, m.approxgrad.inner_steps, m.epochs,
          m.approxgrad.lr_decay_epoch_offset, m.split, m.importance_init.a_hi) == \
      (1e-6, 1e-5, 20, 100, 0, "large", 0.6)
  assert (cf.approxgrad.lr_v, cf.approxgrad.lr_p, cf.approxgrad.inner_steps,
          cf.approxgrad.p_steps, cf.epochs, cf.approxgrad.lr_decay_epoch_offset,
          cf.augmentation) == (1e-5, 1e-4, 1, 1, 201, 1, "cifar")
  assert (s.approxgrad.lr_v, s.approxgrad.lr_p, s.approxgrad.inner_steps, s.epochs,
          s.approxgrad.lr_decay_epoch_offset, s.pretrain.epochs, s.noise) == \
      (1e-6, 1e-5, 20, 101, 1, 200, 0.5)
  # The penalty rows they derive from are unchanged.
  assert _load("cifar10").method == "penalty" and _load("cifar10").pretrain.lr == 1e-4


@pytest.mark.parametrize("arg", [None, "tiny", "paper", "0.95", "paper,tiny", "small",
                                 "small,tiny"])
def test_imbalance_config_validates(arg):
  c = _load("mnist_imbalance", arg)
  assert c.experiment == "imbalance"
  imbalance.validate(c)


def test_imbalance_paper_config_is_the_official_sweep():
  c = _load("mnist_imbalance", "paper")
  assert c.source == "files" and c.imbalance.proportions == (0.9, 0.95, 0.98, 0.99, 0.995)
  assert (c.imbalance.n_train, c.imbalance.n_val, c.imbalance.n_test, c.imbalance.batch_size,
          c.imbalance.num_seeds, c.imbalance.l2rw_steps, c.imbalance.baseline_steps) == \
      (5000, 10, 500, 100, 10, 4000, 8000)
  assert (c.l2rw.lr, c.l2rw.momentum) == (1e-3, 0.9)
  assert imbalance.seeds(3) == [0, 23456789 % 100000, 246913578 % 100000]


def test_imbalance_default_is_the_paper_sweep_at_the_pool_scale_and_small_the_old_one():
  from importance_learning.configs import mnist_imbalance
  c = _load("mnist_imbalance")
  imb = c.imbalance
  assert c.source == "embedded_t10k" and imb.proportions == (0.9, 0.95, 0.98, 0.99, 0.995)
  assert imb.methods == ("l2rw", "plain", "class_ratio", "random") and imb.num_seeds >= 5
  assert (imb.n_train, imb.n_val, imb.n_test, imb.batch_size) == (0, 10, 500, 100)
  # The official 80 / 160 epochs of its ~5,000 images, on the ~1,260 images at p = 0.995.
  assert (imb.l2rw_steps, imb.baseline_steps) == (1000, 2000)
  assert 4000 * 100 / 4990 == pytest.approx(imb.l2rw_steps * 100 / 1260, rel=0.02)
  assert 8000 * 100 / 5000 == pytest.approx(imb.baseline_steps * 100 / 1270, rel=0.02)
  small = _load("mnist_imbalance", "small")
  assert small.source == "embedded" and small.imbalance.proportions == (0.98,)
  assert (small.imbalance.n_train, small.imbalance.n_test, small.imbalance.num_seeds,
          small.imbalance.l2rw_steps, small.imbalance.baseline_steps) == (400, 200, 3, 4000, 8000)
  assert small.runner.steps_per_call == 1 and _load("mnist_imbalance", "paper").runner.steps_per_call == 1
  with pytest.raises(ValueError, match="':paper' or ':small', not both"):
    mnist_imbalance.get_config("paper,small")


def test_imbalance_rejects_a_proportion_the_data_cannot_give():
  c = _load("mnist_imbalance", "small,0.99")       # embedded scale: n_train 400
  with pytest.raises(imbalance.ConfigError, match="leaves -1 fours for training"):
    imbalance.validate(c)
  c = _load("mnist_imbalance")
  c.imbalance.n_train = -1
  with pytest.raises(imbalance.ConfigError, match=r"n_train must be >= 0 \(0: every 9"):
    imbalance.validate(c)
  c = _load("mnist_imbalance", "small")
  c.imbalance.methods = ("hm",)
  with pytest.raises(imbalance.ConfigError, match=r"Unknown imbalance methods \['hm'\]"):
    imbalance.validate(c)


def _flat(d, prefix=""):
  out = {}
  for k, v in d.items():
    out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
  return out


def test_the_cifar10_comparison_is_the_paper_row_but_for_its_documented_lengths():
  import json  # pylint: disable=import-outside-toplevel
  from importance_learning import compare  # pylint: disable=import-outside-toplevel
  from importance_learning.configs import compare_cifar10  # pylint: disable=import-outside-toplevel
  reduced = _flat(json.loads(_load("compare_cifar10").to_json()))
  paper = _flat(json.loads(_load("cifar10", "0.5").to_json()))
  differ = {k for k in set(reduced) | set(paper) if reduced.get(k) != paper.get(k)}
  assert differ == set(compare_cifar10.REDUCED) | {"experiment", "compare.methods",
                                                    "compare.noise"}
  assert all(reduced[k] == v for k, v in compare_cifar10.REDUCED.items())
  assert reduced["compare.noise"] == [0.25, 0.5]
  compare.validate(_load("compare_cifar10"))
  compare.validate(_load("compare_cifar10", "tiny"))


def test_train_mode_layers_and_its_old_name():
  c = _load("default")
  assert experiment.train_mode(c) is False
  c.train_mode_layers = True
  assert experiment.train_mode(c) is True
  c = _load("default")
  c.dropout_in_training = True          # the deprecated name still switches it on
  assert experiment.train_mode(c) is True
  assert _load("proximal_cifar10").train_mode_layers and _load("l2rw_cifar_uniform").train_mode_layers


def test_custom_config_validates_once_it_names_the_data(tmp_path):
  from common.errors import ConfigError
  c = _load("custom", "tiny")
  with pytest.raises(ConfigError, match="custom.train is empty"):
    experiment.validate(c)
  c.custom.train = str(tmp_path)
  with pytest.raises(ConfigError, match="learns from a trusted subset"):
    experiment.validate(c)
  c.custom.trusted = str(tmp_path)
  experiment.validate(c)
  c.method, c.custom.trusted = "proximal", ""      # proximal needs no trusted data
  experiment.validate(c)


def test_l2rw_cifar_rows_offer_the_official_baseline_rows():
  from common.bilevel import rule_weights
  for name in ("l2rw_cifar_uniform", "l2rw_cifar_background"):
    c = _load(name)
    assert c.method == "l2rw" and "finetune" in c.baselines.run
    assert (c.baselines.clean_only_steps, c.baselines.finetune_steps) == (2000, 5000)
    r = _load(name, "random")
    assert r.method == "random" and r.random.lr == 0.1 and r.random.momentum == 0.9
    assert tuple(r.random.lr_boundaries_steps) == tuple(c.l2rw.lr_boundaries_steps)
    experiment.validate(r)
  b = _load("l2rw_cifar_background", "batch_ratio,cifar100")
  assert b.method == "batch_ratio" and b.batch_ratio.num_classes == 100
  assert b.dataset == "cifar100" and b.batch_ratio.rule == "batch_ratio"
  experiment.validate(b)
  assert "batch_ratio" in rule_weights.RULES
  with pytest.raises(ValueError, match="batch_ratio"):
    _load("l2rw_cifar_uniform", "batch_ratio")     # the background script's row only
