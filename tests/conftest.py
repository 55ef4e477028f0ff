import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPU devices for the whole session, so the tf.distribute tests can mirror over
# them (the split must happen before TensorFlow starts). Every other test runs on the first,
# as it would without the split.
CPU_REPLICAS = 2
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration() for _ in range(CPU_REPLICAS)])

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data():
  """../shared/data beside the checkout; tests that need it skip cleanly without it."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"real data folder {SHARED_DATA} is not present on this machine")
  return SHARED_DATA


@pytest.fixture(autouse=True)
def _release_workdir_locks():
  """A run's workdir lock is held until its process ends; the tests run many in one process,
  so each test gives its locks back."""
  yield
  from common import lock  # pylint: disable=import-outside-toplevel
  lock.release()
