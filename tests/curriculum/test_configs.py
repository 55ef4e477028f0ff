"""Every curriculum config loads, validates and carries the original's values."""

import importlib
import pathlib

import pytest

from common import models
from common.errors import ConfigError
from curriculum import experiment

CONFIGS = sorted(p.stem for p in (pathlib.Path(__file__).resolve().parents[2] / "curriculum" /
                                  "configs").glob("*.py") if p.stem not in ("__init__", "base"))


def _load(name, arg=None):
  return importlib.import_module(f"curriculum.configs.{name}").get_config(arg)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_validates(name):
  for arg in (None, "tiny", "0.2,tiny"):
    experiment.validate(_load(name, arg))
  assert _load(name, "0.8").noise == 0.8


def test_cifar100_row_is_the_readme_command():
  c = _load("cifar100_instance", "0.4")
  dp = c.training.data_params
  assert (c.dataset, c.split, c.model, c.augmentation, c.noise_type) == \
      ("cifar100", "all_train", "wrn28_10_dp", "dp_cifar", "permute_first")
  assert (dp.learn_inst_parameters, dp.learn_class_parameters, dp.init_inst_param,
          dp.lr_inst_param, dp.wd_inst_param) == (True, False, 1.0, 0.2, 0.0)
  assert (c.training.lr, c.training.momentum, c.training.weight_decay,
          tuple(c.training.lr_milestones_epochs), c.batch_size, c.epochs, c.report_epoch,
          c.seed) == (0.1, 0.9, 5e-4, (80, 100), 128, 120, 84, 1)


@pytest.mark.parametrize("arg", ["class", "joint"])
def test_imagenet_rows_are_the_readme_commands(arg):
  c = _load("imagenet", arg)
  dp, t = c.training.data_params, c.training
  assert (c.dataset, c.model, c.augmentation, c.noise, c.image_size, c.eval_resize) == \
      ("imagenet", "resnet18_imagenet", "imagenet", 0.0, 224, 256)
  assert (t.lr, t.momentum, t.weight_decay, tuple(t.lr_milestones_epochs),
          t.lr_decay_every_epochs, c.batch_size, c.epochs) == (0.1, 0.9, 1e-4, (), 30, 256, 100)
  assert (dp.learn_class_parameters, dp.init_class_param, dp.lr_class_param,
          dp.wd_class_param) == (True, 1.0, 0.1, 1e-4)
  if arg == "class":
    assert not dp.learn_inst_parameters
  else:
    assert (dp.learn_inst_parameters, dp.init_inst_param, dp.lr_inst_param,
            dp.wd_inst_param) == (True, 0.001, 0.8, 1e-8)
  assert _load("imagenet", None).training.data_params.learn_inst_parameters is False


def test_imagenet_config_rejects_unknown_arguments():
  with pytest.raises(ValueError, match="'jiont' is not one this config takes.*'class', 'joint'"):
    _load("imagenet", "jiont")


def test_model_init_is_validated_and_reaches_the_builder():
  c = _load("cifar100_instance")
  assert c.model_init == "pytorch" and experiment._model_kwargs(c) == {"init": "pytorch"}
  c.model_init = "xavier"
  with pytest.raises(ConfigError, match="Unknown model_init 'xavier'"):
    experiment.validate(c)
  # Models without the switch keep their own init; asking them for Keras' is an error.
  assert experiment._model_kwargs(_load("imagenet")) == {}
  d = _load("default")
  d.model_init = "keras"
  with pytest.raises(ConfigError, match="'mnist_logreg' has none"):
    experiment.validate(d)
  c.model, c.model_init = "preact_resnet18", "keras"
  experiment.validate(c)
  for init, zero_bias in (("keras", True), ("pytorch", False)):
    c.model_init = init
    model = models.build(c.model, (32, 32, 3), 10, **experiment._model_kwargs(c))
    assert (not model.layers[-1].bias.numpy().any()) == zero_bias
