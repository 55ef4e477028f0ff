"""Config validation shared by the experiment families: one wrapper, and the checks of the data
fields every family has. The error type lives in ``common/errors.py``.

This module imports no TensorFlow (the model and augmentation registries are imported where
they are checked): ``precheck`` runs before the command line imports it.
"""

from common import data as datalib
from common.data import custom as customlib
from common.data import noise as noiselib
from common.errors import ConfigError


def validated(check, config):
  """Run ``check(config)``, turning any ValueError into a ConfigError (the run scripts print
  those without a traceback). Call it before any data is read or any file written."""
  try:
    if "runner" in config:
      check_runner(config.runner)
    check(config)
  except ConfigError:
    raise
  except ValueError as e:
    raise ConfigError(str(e)) from None


def check_runner(runner):
  """The runner block's intervals and limits (each family's config carries one)."""
  for key in ("log_every", "checkpoint_every", "steps_per_call"):
    if key in runner and int(runner[key]) < 1:
      raise ConfigError(f"runner.{key} must be >= 1, got {runner[key]}.")
  if int(runner.get("max_steps_per_invocation", 0)) < 0:
    raise ConfigError(f"runner.max_steps_per_invocation must be >= 0 (0: no limit), got "
                      f"{runner.max_steps_per_invocation}.")


def precheck(config):
  """The checks that need no TensorFlow, which the command line runs (through ``validated``,
  which adds the runner block) before importing it, so a mistake costs about a second, not
  the import: ``noise``, ``noise_type`` and an own-data block (paths, formats, numbers). The
  family's own validation, after the import, repeats them with the rest."""
  _check_noise(config)
  if config.get("dataset") == "custom" and "custom" in config:
    customlib.check(config.custom)


def _check_noise(config):
  if "noise" in config and not 0.0 <= config.noise <= 1.0:
    raise ConfigError(f"noise must be a fraction in [0, 1], got {config.noise}.")
  if "noise_type" in config and config.noise_type not in noiselib.NOISE_TYPES:
    raise ConfigError(f"Unknown noise_type {config.noise_type!r}; choose one of "
                      f"{sorted(noiselib.NOISE_TYPES)}.")


def check_data_and_model(config):
  """noise in [0, 1], a known dataset / source / split, noise type, augmentation and model.

  Only the fields the config has are checked (not every family corrupts labels or augments).
  """
  from common import models  # pylint: disable=import-outside-toplevel
  from common.data import augment as augmentlib  # pylint: disable=import-outside-toplevel
  _check_noise(config)
  try:
    datalib.check(config.dataset, config.get("source"), kinds=("splits",),
                  split=config.get("split"))
  except ValueError as e:
    raise ConfigError(str(e)) from None
  if "augmentation" in config and config.augmentation not in augmentlib.AUGMENTATIONS:
    raise ConfigError(f"Unknown augmentation {config.augmentation!r}; choose one of "
                      f"{sorted(augmentlib.AUGMENTATIONS)}.")
  models.resolve(config.model)
