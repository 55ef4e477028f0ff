"""The source-stamped array cache (common/data/cache.py) in both formats."""

import os

import numpy as np
import pytest

from common.data import cache


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_round_trip_keeps_arrays_and_metadata(tmp_path, suffix):
  path = tmp_path / f"c{suffix}"
  arrays = {"images": np.arange(12, dtype=np.uint8).reshape(2, 2, 3),
            "names": np.array(["a", "bc"]), "y": np.array([3, -1], np.int64)}
  meta = {"stamp": "k|abc", "val_seed": 7}
  assert cache.write(path, meta, arrays)
  entry = cache.read(path)
  assert entry.meta == meta
  assert sorted(entry.arrays) == sorted(arrays)
  for k, v in arrays.items():
    np.testing.assert_array_equal(entry.arrays[k].astype(v.dtype), v)
  assert sorted(cache.read(path, names=("y",)).arrays) == ["y"]
  assert os.listdir(tmp_path) == [path.name]           # no temporary file left behind


def test_the_stamp_follows_the_source_files(tmp_path):
  src = tmp_path / "source.bin"
  src.write_bytes(b"12345")
  first = cache.file_stamp("key", [src, tmp_path / "absent"])
  assert cache.file_stamp("key", [src]) == first
  assert cache.file_stamp("other", [src]) != first
  src.write_bytes(b"123456")                          # another size
  assert cache.file_stamp("key", [src]) != first


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_damaged_or_missing_is_none_and_unwritable_is_a_warning(tmp_path, suffix, caplog):
  assert cache.read(tmp_path / f"absent{suffix}") is None
  bad = tmp_path / f"bad{suffix}"
  bad.write_bytes(b"garbage")
  assert cache.read(bad, "test cache") is None
  assert "test cache" in caplog.text and "unreadable" in caplog.text
  blocked = tmp_path / "file"
  blocked.write_text("a file where a folder should be")
  assert cache.write(blocked / f"c{suffix}", {}, {"x": np.zeros(2)}) is False
