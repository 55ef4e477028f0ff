"""``batches_follow_data`` (the own-data config): batch sizes, epochs and proximal's splits
fitted to a small dataset, against hand-computed values."""

import types

import numpy as np
import pytest

from importance_learning import experiment
from importance_learning.configs import custom


def _data(n_train, n_val):
  return types.SimpleNamespace(n_train=n_train,
                               ds=types.SimpleNamespace(x_val=np.zeros((n_val, 2))))


def _fit(method, n_train, n_val, **fields):
  config = custom.get_config()
  config.method = method
  for key, value in fields.items():
    target = config
    *path, last = key.split("__")
    for part in path:
      target = target[part]
    target[last] = value
  notes = []
  fitted = experiment.fit_batches_to_data(config, _data(n_train, n_val),
                                          experiment.per_step(method), notes.append)
  return fitted, notes, config


def test_a_small_trusted_set_caps_both_batches_for_the_penalty_method():
  fitted, notes, config = _fit("penalty", 400, 60)
  # Pretraining draws its batches from the 60 trusted points, the bilevel steps too.
  assert (fitted.batch_size, fitted.val_batch_size) == (60, 60)
  assert len(notes) == 2 and config.batch_size == 100     # the given config is not changed


def test_l2rw_trains_at_least_the_minimum_steps():
  fitted, notes, _ = _fit("l2rw", 400, 60)
  # The noisy batches stay 100 (400 points, no pretraining); 4 steps an epoch -> 500 epochs.
  assert (fitted.batch_size, fitted.val_batch_size, fitted.epochs) == (100, 60, 500)
  assert any("epochs raised from 15 to 500" in n for n in notes)


def test_data_parameters_keep_their_epochs():
  fitted, notes, config = _fit("data_parameters", 400, 60)
  # No pretraining: the noisy batches stay 100; the clean batches are drawn, so they shrink.
  assert (fitted.batch_size, fitted.val_batch_size) == (100, 60)
  assert fitted.epochs == config.epochs and len(notes) == 1


@pytest.mark.parametrize("batch,splits,chosen", [
    (100, 8, 5),     # the largest divisor of 100 up to 8
    (90, 4, 3),
    (49, 4, 7),      # no divisor up to 4: the smallest divisor of 49
    (13, 8, 13),     # a prime batch: itself
    (96, 8, 8),      # already a divisor: unchanged
])
def test_proximal_splits_become_a_divisor_of_the_batch(batch, splits, chosen):
  fitted, notes, _ = _fit("proximal", 5000, 0, batch_size=batch, proximal__splits=splits)
  assert fitted.proximal.splits == chosen and batch % fitted.proximal.splits == 0
  assert any("proximal.splits changed" in n for n in notes) == (chosen != splits)


def test_off_returns_the_config_untouched():
  fitted, notes, config = _fit("penalty", 40, 10, batches_follow_data=False)
  assert fitted is config and not notes
