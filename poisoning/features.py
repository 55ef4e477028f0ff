"""Frozen feature extractors for the clean-label poisoning attack.

The attack works in the feature space of a fixed network: an extractor is a non-trainable
`keras.Model` mapping images [B, H, W, C] to features [B, d].

    extractor = build_extractor("inception_v3", (299, 299, 3))       # 2048-d, ImageNet weights
    extractor = build_extractor("my_pkg.nets:features", (32, 32, 3))  # your own
    f = cached_features("runs/x/train_features.npz", extractor, x_train)

The ImageNet weights are read from the Keras cache only: `inception_v3` never downloads, since
the machines that run experiments may be offline and a download that hangs is worse than an
error saying where to put the file.
"""

import hashlib
import logging
import os

import keras
import numpy as np
import tensorflow as tf
import tqdm

from common import models
from common.data import cache as cachelib
from common.errors import DataNotFoundError

INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/"
                         f"inception_v3/{INCEPTION_WEIGHTS_FILE}")
INCEPTION_FEATURE_DIM = 2048


def _keras_cache_path():
  """Where Keras would keep the downloaded InceptionV3 weights (KERAS_HOME, else ~/.keras)."""
  home = os.environ.get("KERAS_HOME", "~/.keras")
  return os.path.expanduser(os.path.join(home, "models", INCEPTION_WEIGHTS_FILE))


def _inception_weights_path(weights):
  """The weights file `weights` ("imagenet" or a path) stands for, checked to exist."""
  if weights == "imagenet":
    path = _keras_cache_path()
    if not os.path.isfile(path):
      raise DataNotFoundError(
          f"The InceptionV3 ImageNet weights are not in the Keras cache ({path}). Download "
          f"them from {INCEPTION_WEIGHTS_URL} into {os.path.dirname(path)}, or pass "
          "--config.extractor_weights=/path/to/file.h5, or use your own extractor with "
          "--config.extractor=package.module:function.")
    return path
  path = os.path.expanduser(os.fspath(weights))
  if not os.path.isfile(path):
    raise DataNotFoundError(f"InceptionV3 weights file {path} does not exist (set by "
                            "--config.extractor_weights).")
  return path


def inception_v3(input_shape=(299, 299, 3), weights="imagenet"):
  """InceptionV3 without its classifier, average-pooled to 2048-d features, frozen.

  Args:
    input_shape: image shape (H, W, 3), H and W at least 75. The dog/fish images are
      299 x 299 and already Inception-preprocessed (values in [-1, 1]).
    weights: "imagenet" (read from the Keras cache, never downloaded), the path of a weights
      file (.h5 as published by Keras, or .weights.h5 as written by `save_weights`), or None
      for random weights (tests only: random features make the attack meaningless).

  Returns:
    A non-trainable keras.Model mapping [B, H, W, 3] to [B, 2048].

  Raises:
    DataNotFoundError: the weights file is not there.
    ValueError: the weights file does not hold InceptionV3 no-top weights.
  """
  path = None if weights is None else _inception_weights_path(weights)
  try:
    # Given a path, Keras loads it as it would its own download; it never fetches anything.
    model = keras.applications.InceptionV3(include_top=False, weights=path,
                                           input_shape=tuple(input_shape), pooling="avg")
  except (ValueError, OSError) as e:
    if path is None:
      raise  # a bad input_shape: Keras's message says what is wrong
    # OSError: h5py cannot read the file at all (truncated download, not HDF5).
    raise ValueError(f"{path} does not hold InceptionV3 no-top weights "
                     f"(include_top=False, as in {INCEPTION_WEIGHTS_FILE}) or cannot be read: "
                     f"{e}") from e
  model.trainable = False
  return model


def build_extractor(spec, input_shape, weights="imagenet"):
  """The frozen feature extractor named by `spec`.

  Args:
    spec: "inception_v3", or "package.module:function" where function(input_shape) returns a
      keras.Model mapping [B, *input_shape] to [B, d].
    input_shape: image shape (H, W, C).
    weights: for "inception_v3", as in `inception_v3`. A user extractor brings its own
      weights, so a weights file given with one is an error rather than silently ignored.

  Returns:
    A keras.Model with trainable = False.
  """
  input_shape = tuple(int(d) for d in input_shape)
  if spec == "inception_v3":
    return inception_v3(input_shape, weights)
  if ":" not in spec:
    raise ValueError(f"Unknown extractor {spec!r}: use 'inception_v3' or your own as "
                     "'package.module:function' (called as function(input_shape)).")
  if weights not in ("imagenet", None):
    raise ValueError(f"A weights file ({weights}) applies to extractor 'inception_v3' only; "
                     f"the function of {spec!r} must load its own weights.")
  model = models.import_function(spec, "extractor")(input_shape)
  if not isinstance(model, keras.Model):
    raise ValueError(f"Extractor {spec!r} returned {type(model).__name__}, not a keras.Model.")
  if not model.built:
    model.build((None, *input_shape))
  try:
    out_shape = tuple(model.compute_output_shape((1, *input_shape)))
  except Exception as e:  # pylint: disable=broad-except
    # Whatever the model raises here means it cannot take these images at all.
    raise ValueError(f"Extractor {spec!r} cannot be applied to images of shape "
                     f"{input_shape}: {e}") from e
  if len(out_shape) != 2:
    raise ValueError(f"Extractor {spec!r} maps images of shape {input_shape} to "
                     f"{out_shape[1:]}; it must return flat features [B, d] (add a pooling or "
                     "Flatten layer).")
  model.trainable = False
  return model


def _feature_dim(extractor, image_shape):
  return int(extractor.compute_output_shape((1, *image_shape))[-1])


def extract_features(extractor, x, batch_size=100, desc="features", progress=True):
  """Features of images `x` [N, H, W, C] as float32 numpy [N, d], in inference mode.

  Batches are converted to float32 one at a time, so a large float64 `x` is never copied
  whole.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive; got {batch_size}")
  n = len(x)
  if n == 0:
    return np.zeros((0, _feature_dim(extractor, np.shape(x)[1:])), dtype=np.float32)

  # One function per call: reduce_retracing makes the smaller last batch reuse a trace with a
  # free batch dimension instead of compiling the whole network a second time.
  @tf.function(reduce_retracing=True)
  def features(batch):
    return extractor(batch, training=False)

  num_batches = -(-n // batch_size)
  outputs = []
  for start in tqdm.tqdm(range(0, n, batch_size), total=num_batches, desc=desc, unit="batch",
                         dynamic_ncols=True, disable=not progress or num_batches < 3):
    batch = np.asarray(x[start:start + batch_size], dtype=np.float32)
    outputs.append(np.asarray(features(tf.constant(batch)), dtype=np.float32))
  out = np.concatenate(outputs, axis=0)
  if out.ndim != 2:
    raise ValueError(f"The extractor returned features of shape {out.shape[1:]} per image; "
                     "expected flat features [N, d].")
  return out


def cached_features(path, extractor, x, batch_size=100, desc="features", progress=True):
  """Features of `x`, read from the cache file `path` (.npz, ``common.data.cache``) when it was
  built from these very images (a digest of `x` is its stamp).

  Otherwise they are computed with `extract_features` and written to `path` atomically, so an
  interrupted run never leaves a truncated cache behind. The extractor is not part of the
  stamp: use a different path for a different extractor.
  """
  x = np.asarray(x)
  stamp = f"{x.shape}|{x.dtype}|{hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()}"
  entry = cachelib.read(path, "feature cache", ("features",))
  if entry is not None and entry.meta.get("stamp") == stamp:
    return entry.arrays["features"].astype(np.float32, copy=False)
  if entry is not None:
    logging.info("Feature cache %s was built from other images; computing the features again.",
                 path)
  features = extract_features(extractor, x, batch_size=batch_size, desc=desc, progress=progress)
  cachelib.write(path, {"stamp": stamp}, {"features": features}, "feature cache")
  return features


def cifar_feature_net(input_shape=(32, 32, 3), feature_dim=128):
  """A small CNN feature extractor for the offline CIFAR-10 demo of the attack.

  Conv 32, Conv 32, MaxPool, Conv 64, Conv 64, MaxPool, Conv 128 (3x3, same, ReLU), global
  average pooling, Dense(feature_dim, ReLU). Keras default initialisers.
  """
  layers = keras.layers
  return keras.Sequential([
      keras.Input(shape=tuple(input_shape)),
      layers.Conv2D(32, 3, padding="same", activation="relu"),
      layers.Conv2D(32, 3, padding="same", activation="relu"),
      layers.MaxPooling2D(2),
      layers.Conv2D(64, 3, padding="same", activation="relu"),
      layers.Conv2D(64, 3, padding="same", activation="relu"),
      layers.MaxPooling2D(2),
      layers.Conv2D(128, 3, padding="same", activation="relu"),
      layers.GlobalAveragePooling2D(),
      layers.Dense(feature_dim, activation="relu"),
  ], name="cifar_feature_net")


__all__ = ["INCEPTION_FEATURE_DIM", "INCEPTION_WEIGHTS_FILE", "INCEPTION_WEIGHTS_URL",
           "build_extractor", "cached_features", "cifar_feature_net", "extract_features",
           "inception_v3"]
