"""common.data.dogfish: tiny files in the published .npz format (keys X_train, Y_train, ...)."""

import numpy as np
import pytest

from common.data import dogfish
from common.errors import DataNotFoundError


def _arrays(num_train=6, num_test=4, size=8, seed=0):
  rng = np.random.default_rng(seed)
  return {
      "X_train": rng.uniform(-1, 1, (num_train, size, size, 3)).astype(np.float32),
      "Y_train": (np.arange(num_train) % 2).astype(np.int64),
      "X_test": rng.uniform(-1, 1, (num_test, size, size, 3)).astype(np.float32),
      "Y_test": (np.arange(num_test) % 2).astype(np.int64),
  }


def _write(folder, **arrays):
  path = folder / dogfish.FILE_NAME
  np.savez(path, **arrays)
  return path


def test_loads_file_and_folder(tmp_path):
  arrays = _arrays()
  path = _write(tmp_path, **arrays)
  for where in (path, tmp_path, str(tmp_path)):
    data = dogfish.load_dogfish(where)
    np.testing.assert_array_equal(data.x_train, arrays["X_train"])
    np.testing.assert_array_equal(data.y_train, arrays["Y_train"])
    np.testing.assert_array_equal(data.x_test, arrays["X_test"])
    np.testing.assert_array_equal(data.y_test, arrays["Y_test"])
    assert data.x_train.dtype == np.float32 and data.x_test.dtype == np.float32
    assert data.y_train.dtype == np.int64 and data.y_test.dtype == np.int64
  assert data.info["path"] == str(path)
  assert data.info["num_train"] == 6 and data.info["num_test"] == 4
  assert data.info["image_shape"] == [8, 8, 3]
  lo, hi = data.info["pixel_range"]
  assert lo == pytest.approx(arrays["X_train"].min()) and hi == pytest.approx(
      arrays["X_train"].max())
  assert -1 <= lo < hi <= 1


def test_one_hot_and_float64_inputs(tmp_path):
  arrays = _arrays()
  arrays["Y_train"] = np.eye(2)[arrays["Y_train"]]
  arrays["Y_test"] = np.eye(2, dtype=np.float32)[arrays["Y_test"]]
  arrays["X_train"] = arrays["X_train"].astype(np.float64)
  data = dogfish.load_dogfish(_write(tmp_path, **arrays))
  np.testing.assert_array_equal(data.y_train, np.arange(6) % 2)
  np.testing.assert_array_equal(data.y_test, np.arange(4) % 2)
  assert data.y_train.dtype == np.int64 and data.x_train.dtype == np.float32


def test_missing_file_names_path_url_and_config(tmp_path):
  with pytest.raises(DataNotFoundError) as e:
    dogfish.load_dogfish(tmp_path)
  message = str(e.value)
  assert str(tmp_path / dogfish.FILE_NAME) in message
  assert dogfish.URL in message and "--config.data_dir=" in message
  with pytest.raises(DataNotFoundError, match="codalab"):
    dogfish.load_dogfish(tmp_path / "nowhere")


@pytest.mark.parametrize("change, match", [
    (lambda a: a.pop("Y_test"), r"missing arrays Y_test.*found X_test, X_train, Y_train"),
    (lambda a: a["Y_train"].__setitem__(0, 2), r"labels in \{0, 1\}.*found 2"),
    (lambda a: a.__setitem__("Y_train", a["Y_train"][:5]), r"6 images but Y_train 5 labels"),
    (lambda a: a.__setitem__("X_test", a["X_test"][..., 0]), r"X_test .*\[N, H, W, 3\]"),
    (lambda a: a.__setitem__("X_test", np.zeros((4, 9, 9, 3), np.float32)),
     r"train images are \(8, 8, 3\) but test images \(9, 9, 3\)"),
    (lambda a: a.__setitem__("Y_test", np.full((4, 2), 0.5)), r"not one-hot"),
])
def test_bad_content_is_value_error(tmp_path, change, match):
  arrays = _arrays()
  change(arrays)
  path = _write(tmp_path, **arrays)
  with pytest.raises(ValueError, match=match) as e:
    dogfish.load_dogfish(path)
  assert str(path) in str(e.value)


def test_not_an_archive(tmp_path):
  path = tmp_path / dogfish.FILE_NAME
  path.write_bytes(b"<html>not found</html>")
  with pytest.raises(ValueError, match="cannot read it as an .npz archive"):
    dogfish.load_dogfish(tmp_path)
