"""What the tf.distribute tests share: the two-CPU mirrored strategy, every replica's copy of a
variable, and the comparison of a replicated run with the one-device run."""

import keras
import numpy as np

from common import distribute


def mirrored():
  """MirroredStrategy over the two logical CPU devices conftest splits the CPU into."""
  cfg = distribute.default_config()
  cfg.strategy, cfg.cpu_devices = "mirrored", 2
  return distribute.make_strategy(cfg)


def copies(var):
  """Every replica's copy of a (mirrored) variable as arrays, or the variable's value alone."""
  if isinstance(var, keras.Variable):
    var = var.value
  return [np.asarray(c) for c in (getattr(var, "values", None) or [var])]


def assert_same_run(one_metrics, one_state, two_metrics, two_state, what, rtol=1e-9,
                    atol=1e-12):
  """The replicated run's metrics per step and every replica's copy of every variable
  (``{name: copies(var)}``) equal the one-device run's."""
  assert len(one_metrics) == len(two_metrics)
  for a, b in zip(one_metrics, two_metrics):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_allclose(b[k], a[k], rtol=rtol, atol=atol, err_msg=f"{what}: {k}")
  assert one_state.keys() == two_state.keys()
  for k, (one,) in one_state.items():
    assert len(two_state[k]) == 2, k            # mirrored: one copy per replica
    for copy in two_state[k]:                   # both copies equal one device's
      np.testing.assert_allclose(copy, one, rtol=rtol, atol=atol, err_msg=f"{what}: {k}")
