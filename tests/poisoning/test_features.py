"""poisoning.features: extractors, the no-download rule for ImageNet weights, the feature cache.

InceptionV3 is built at 75 x 75 (its smallest input) with random weights: nothing here needs
the real weights or the network.
"""

import os

import h5py
import keras
import numpy as np
import pytest

from common.errors import DataNotFoundError
from poisoning import features

SMALL = (75, 75, 3)


def _images(n, shape=SMALL, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, (n, *shape)).astype(np.float32)


def test_inception_gives_frozen_2048_features():
  model = features.build_extractor("inception_v3", SMALL, weights=None)
  assert not model.trainable and not model.trainable_weights
  f = features.extract_features(model, _images(3), batch_size=2)
  assert f.shape == (3, features.INCEPTION_FEATURE_DIM) and f.dtype == np.float32
  assert np.isfinite(f).all()


def test_inception_loads_weights_file(tmp_path):
  keras.utils.set_random_seed(1)
  source = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=SMALL,
                                          pooling="avg")
  path = tmp_path / "w.weights.h5"
  source.save_weights(path)
  loaded = features.inception_v3(SMALL, weights=str(path))
  x = _images(2)
  np.testing.assert_allclose(loaded(x, training=False), source(x, training=False),
                             rtol=1e-5, atol=1e-6)


# Keras warns about every layer of the wrong file before it gives up.
@pytest.mark.filterwarnings("ignore:Skipping")
def test_missing_or_wrong_weights_file(tmp_path):
  with pytest.raises(DataNotFoundError, match="nope.h5"):
    features.inception_v3(SMALL, weights=str(tmp_path / "nope.h5"))
  other = features.cifar_feature_net()
  path = tmp_path / "other.weights.h5"
  other.save_weights(path)
  with pytest.raises(ValueError, match="does not hold InceptionV3 no-top weights"):
    features.inception_v3(SMALL, weights=str(path))
  legacy_path = tmp_path / "other.h5"
  _save_legacy_h5(other, legacy_path)
  with pytest.raises(ValueError, match="does not hold InceptionV3 no-top weights"):
    features.inception_v3(SMALL, weights=str(legacy_path))
  garbage = tmp_path / "truncated.h5"
  garbage.write_bytes(b"not hdf5")
  with pytest.raises(ValueError, match="cannot be read"):
    features.inception_v3(SMALL, weights=str(garbage))


def test_imagenet_never_downloads(tmp_path, monkeypatch):
  monkeypatch.setenv("KERAS_HOME", str(tmp_path))

  def no_download(*args, **kwargs):
    raise AssertionError(f"tried to download {args} {kwargs}")

  monkeypatch.setattr(keras.utils, "get_file", no_download)
  monkeypatch.setattr("keras.src.utils.file_utils.get_file", no_download)
  with pytest.raises(DataNotFoundError) as e:
    features.build_extractor("inception_v3", SMALL)
  message = str(e.value)
  expected = os.path.join(str(tmp_path), "models", features.INCEPTION_WEIGHTS_FILE)
  assert expected in message and features.INCEPTION_WEIGHTS_URL in message
  assert "--config.extractor_weights=" in message and "--config.extractor=" in message
  assert not any(tmp_path.iterdir())


def _save_legacy_h5(model, path):
  """Writes weights in the layout of the published .h5 files (Keras 3 saves only .weights.h5)."""
  legacy = pytest.importorskip("keras.src.legacy.saving.legacy_h5_format")
  with h5py.File(path, "w") as f:
    legacy.save_weights_to_hdf5_group(f, model)


def test_imagenet_reads_keras_cache(tmp_path, monkeypatch):
  # A file in the cache is loaded from there: here one of random weights, saved in the
  # published .h5 (legacy) format.
  monkeypatch.setenv("KERAS_HOME", str(tmp_path))
  keras.utils.set_random_seed(2)
  source = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=SMALL,
                                          pooling="avg")
  (tmp_path / "models").mkdir()
  _save_legacy_h5(source, tmp_path / "models" / features.INCEPTION_WEIGHTS_FILE)
  loaded = features.build_extractor("inception_v3", SMALL)
  x = _images(2)
  np.testing.assert_allclose(loaded(x, training=False), source(x, training=False),
                             rtol=1e-5, atol=1e-6)


def test_user_extractor():
  model = features.build_extractor("tests.poisoning.user_extractor:tiny", (8, 8, 3))
  assert not model.trainable
  f = features.extract_features(model, _images(7, (8, 8, 3)), batch_size=3)
  assert f.shape == (7, 4) and f.dtype == np.float32


@pytest.mark.parametrize("spec, match", [
    ("tests.poisoning.user_extractor:not_flat", r"flat features"),
    ("tests.poisoning.user_extractor:not_a_model", r"not a keras.Model"),
    ("tests.poisoning.user_extractor:missing", r"no function 'missing'"),
    ("tests.poisoning.no_such_module:tiny", r"Cannot import module"),
    ("resnet", r"Unknown extractor 'resnet'"),
])
def test_bad_user_extractor(spec, match):
  with pytest.raises(ValueError, match=match):
    features.build_extractor(spec, (8, 8, 3))


def test_weights_file_with_user_extractor_is_refused(tmp_path):
  with pytest.raises(ValueError, match="inception_v3' only"):
    features.build_extractor("tests.poisoning.user_extractor:tiny", (8, 8, 3),
                             weights=str(tmp_path / "w.h5"))


class _Refuses:
  """An extractor that must not be called."""

  def __call__(self, *args, **kwargs):
    raise AssertionError("the cached features should have been read, not computed")


def test_cached_features_write_then_reload(tmp_path):
  model = features.build_extractor("tests.poisoning.user_extractor:tiny", (8, 8, 3))
  x = _images(5, (8, 8, 3))
  path = str(tmp_path / "cache" / "train.npz")
  first = features.cached_features(path, model, x, batch_size=2)
  assert os.listdir(tmp_path / "cache") == ["train.npz"]      # no temporary file left
  np.testing.assert_array_equal(np.load(path)["features"], first)
  mtime = os.stat(path).st_mtime_ns
  again = features.cached_features(path, _Refuses(), x, batch_size=2)
  np.testing.assert_array_equal(again, first)
  assert os.stat(path).st_mtime_ns == mtime
  # Other images (as many, or fewer): the cache is stale and is recomputed.
  other = features.cached_features(path, model, x[::-1].copy(), batch_size=2)
  np.testing.assert_allclose(other, first[::-1], rtol=1e-6, atol=1e-6)
  fewer = features.cached_features(path, model, x[:3], batch_size=2)
  assert fewer.shape == (3, 4)
  np.testing.assert_allclose(fewer, first[:3], rtol=1e-6, atol=1e-6)
  # A damaged cache is rebuilt, not a crash.
  with open(path, "wb") as f:
    f.write(b"not a zip")
  np.testing.assert_allclose(features.cached_features(path, model, x, batch_size=2), first,
                             rtol=1e-6, atol=1e-6)


def test_cifar_feature_net():
  model = features.cifar_feature_net(feature_dim=16)
  assert model.name == "cifar_feature_net" and model.built
  assert model.output_shape == (None, 16)
  f = features.extract_features(model, _images(4, (32, 32, 3)))
  assert f.shape == (4, 16) and (f >= 0).all()
