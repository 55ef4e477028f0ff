"""The one config-argument grammar, and every family's configs speaking it."""

import importlib

import pytest

from common import config_args


def test_tokens_of_every_kind():
  args = config_args.parse("5way,1shot,approxgrad,tiny", takes=("ways", "shots", "tiny"),
                           methods=("penalty", "approxgrad"))
  assert (args.ways, args.shots, args.method, args.tiny, args.paper, args.number) == \
      (5, 1, "approxgrad", True, False, None)
  args = config_args.parse("0.25,cifar100,paper", takes=("number", "paper"),
                           words=("cifar100", "resnet32"))
  assert (args.number, args.paper, args.words) == (0.25, True, frozenset({"cifar100"}))
  assert config_args.parse(None) == config_args.Args()
  assert config_args.parse("") == config_args.Args()


@pytest.mark.parametrize("arg,takes,match", [
    ("0.25:tiny", ("number", "tiny"), "separate arguments with commas"),
    ("banana", ("number", "tiny"), "'banana' is not one this config takes; it takes a number"),
    ("5way", ("number", "tiny"), "'5way' is not one"),
    ("0.25", ("tiny",), "'0.25' is not one this config takes; it takes 'tiny'"),
    ("0.2,0.4", ("number",), "a number was already given"),
    ("approxgrad", ("tiny",), "'approxgrad' is not one"),
])
def test_bad_arguments_say_what_the_config_takes(arg, takes, match):
  with pytest.raises(ValueError, match=match):
    config_args.parse(arg, takes=takes)


def test_unknown_kind_is_a_programming_error():
  with pytest.raises(ValueError, match="Unknown argument kinds"):
    config_args.parse("", takes=("noise",))


@pytest.mark.parametrize("module,good,bad", [
    ("importance_learning.configs.default", "0.25,tiny", "0.25:tiny"),
    ("importance_learning.configs.proximal_cifar10", "cifar100,preact,tiny", "resnet32"),
    ("importance_learning.configs.l2rw_cifar_uniform", "cifar100,resnet32,0.2", "preact"),
    ("importance_learning.configs.l2rw_cifar_background", "cifar100,tiny", "resnet32"),
    ("importance_learning.configs.mnist_imbalance", "0.95,tiny", "cifar100"),
    ("curriculum.configs.default", "0.2,tiny", "paper"),
    ("curriculum.configs.imagenet", "joint,tiny", "0.2:joint"),
    ("few_shot.configs.omniglot", "5way,1shot,approxgrad,tiny", "0.25"),
    ("poisoning.configs.mnist_untargeted", "paper,tiny", "0.25"),
    ("poisoning.configs.mnist_targeted", "tiny", "5way"),
    ("poisoning.configs.dogfish_clean_label", "tiny", "paper"),
    ("synthetic.configs.default", "tiny", "paper"),
])
def test_every_family_uses_the_grammar(module, good, bad):
  get_config = importlib.import_module(module).get_config
  get_config(good)
  with pytest.raises(ValueError, match="not one this config takes|separate arguments"):
    get_config(bad)


def test_tiny_shrinks_every_method_block_of_a_config():
  # Configs never name a method's knobs: each method shrinks its own block, so a method block
  # a config carries is shrunk even when the config's own code forgets it (poisoning's gd).
  c = importlib.import_module("poisoning.configs.mnist_untargeted").get_config("tiny")
  assert (c.penalty.inner_steps, c.approxgrad.inner_steps, c.approxgrad.p_steps,
          c.gd.inner_steps) == (2, 2, 2, 2)
  c = importlib.import_module("importance_learning.configs.default").get_config("tiny")
  assert (c.penalty.inner_steps, c.rmd.inner_steps, c.gd.inner_steps) == (2, 2, 2)
  assert c.runner.log_every == 1 and not c.runner.progress_bar


def test_set_field_sets_existing_dotted_fields_only():
  import ml_collections
  from common import config_args
  c = ml_collections.ConfigDict({"a": {"b": 1}, "c": 2})
  config_args.set_field(c, "a.b", 5)
  config_args.set_field(c, "c", 3)
  assert (c.a.b, c.c) == (5, 3)
  for key in ("a.x", "x.b", "x"):
    with pytest.raises(KeyError):
      config_args.set_field(c, key, 0)
  assert set(c.a) == {"b"} and set(c) == {"a", "c"}
