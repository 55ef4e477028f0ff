"""The papers' Keras architectures, and the hook for a user's own model.

Every model maps images to *logits* (no softmax): the originals took the pre-softmax tensor
through cleverhans' ``get_logits``, and the losses here apply the softmax themselves.
Initialisers are the Keras defaults (Glorot-uniform kernels, zero biases), as in the originals.

A user's model is named ``package.module:function``; the function is called as
``function(input_shape, num_classes)`` and must return a built ``keras.Model`` whose output has
shape ``(batch, num_classes)``.
"""

import importlib

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from common import nets
from common import precision
from common.errors import ConfigError


def mnist_logreg(input_shape=(28, 28, 1), num_classes=10):
  """Multinomial logistic regression (MNIST small scale): 7,850 parameters."""
  return keras.Sequential([
      keras.Input(input_shape),
      layers.Flatten(),
      layers.Dense(num_classes),
  ], name="mnist_logreg")


def mnist_linear_nobias(input_shape=(28, 28, 1), num_classes=10):
  """The poisoning attacks' classifier: logits = x W, no bias (7,840 parameters for MNIST).

  Glorot-uniform W, the default initialiser of TF1's ``tf.get_variable`` the original used.
  """
  return keras.Sequential([
      keras.Input(input_shape),
      layers.Flatten(),
      layers.Dense(num_classes, use_bias=False),
  ], name="mnist_linear_nobias")


def _head_512_256(num_classes):
  """Flatten -> Dense 512 -> Dropout 0.5 -> Dense 256 -> Dropout 0.5 -> logits (MNIST, CIFAR)."""
  return [
      layers.Flatten(),
      layers.Dense(512, activation="relu"),
      layers.Dropout(0.5),
      layers.Dense(256, activation="relu"),
      layers.Dropout(0.5),
      layers.Dense(num_classes),
  ]


def mnist_cnn(input_shape=(28, 28, 1), num_classes=10):
  """The MNIST CNN of the large-scale experiment (valid padding): 1,389,578 parameters."""
  return keras.Sequential([
      keras.Input(input_shape),
      layers.Conv2D(64, 5, activation="relu"),
      layers.MaxPooling2D(2),
      layers.Dropout(0.25),
      layers.Conv2D(128, 5, activation="relu"),
      layers.MaxPooling2D(2),
      layers.Dropout(0.25),
      *_head_512_256(num_classes),
  ], name="mnist_cnn")


def cifar10_cnn(input_shape=(32, 32, 3), num_classes=10):
  """The CIFAR-10 CNN (32 -> 30 -> 15 -> 13 -> 6 -> 4 -> 2): 1,172,410 parameters."""
  blocks = []
  for width in (48, 96, 192):
    blocks += [
        layers.Conv2D(width, 3, padding="same", activation="relu"),
        layers.Conv2D(width, 3, padding="valid", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
    ]
  return keras.Sequential([
      keras.Input(input_shape),
      *blocks,
      *_head_512_256(num_classes),
  ], name="cifar10_cnn")


def svhn_cnn(input_shape=(32, 32, 1), num_classes=10):
  """The SVHN CNN on greyscale input, all same padding: 1,340,650 parameters."""
  blocks = []
  for width in (32, 64, 128):
    blocks += [
        layers.Conv2D(width, 3, padding="same", activation="relu"),
        layers.Conv2D(width, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.3),
    ]
  return keras.Sequential([
      keras.Input(input_shape),
      *blocks,
      layers.Flatten(),
      layers.Dense(512, activation="relu"),
      layers.Dropout(0.3),
      layers.Dense(num_classes),
  ], name="svhn_cnn")


def small_cnn(input_shape=(32, 32, 3), num_classes=10):
  """A small CNN for any image size (custom data): three 3x3 conv blocks (32, 64, 128
  channels, ReLU, 2x2 max-pooling after the first two), global average pooling, logits.
  No batch norm or dropout, so it trains the same in either layer mode."""
  return keras.Sequential([
      keras.Input(input_shape),
      layers.Conv2D(32, 3, padding="same", activation="relu"),
      layers.MaxPooling2D(2),
      layers.Conv2D(64, 3, padding="same", activation="relu"),
      layers.MaxPooling2D(2),
      layers.Conv2D(128, 3, padding="same", activation="relu"),
      layers.GlobalAveragePooling2D(),
      layers.Dense(num_classes),
  ], name="small_cnn")


def compact_cnn(input_shape=(32, 32, 3), num_classes=10):
  """The CIFAR-10 network of the deep comparison: three 3x3 conv blocks (16, 32, 64 channels,
  ReLU, 2x2 max-pooling after each), a 256-unit ReLU layer, logits (288,554 parameters on
  32x32x3). The dense layer lets it memorise wrong labels within tens of epochs; no batch norm
  or dropout, so it trains the same in either layer mode."""
  blocks = []
  for width in (16, 32, 64):
    blocks += [layers.Conv2D(width, 3, padding="same", activation="relu"),
               layers.MaxPooling2D(2)]
  return keras.Sequential([
      keras.Input(input_shape),
      *blocks,
      layers.Flatten(),
      layers.Dense(256, activation="relu"),
      layers.Dense(num_classes),
  ], name="compact_cnn")


def mlp(input_shape=(16,), num_classes=10):
  """One hidden layer of 256 ReLU units (custom feature data, e.g. a CSV), logits."""
  return keras.Sequential([
      keras.Input(input_shape),
      layers.Flatten(),
      layers.Dense(256, activation="relu"),
      layers.Dense(num_classes),
  ], name="mlp")


def auto(input_shape, num_classes):
  """``small_cnn`` for images (rank-3 inputs), ``mlp`` for feature vectors."""
  return (small_cnn if len(input_shape) == 3 else mlp)(input_shape, num_classes)


MODELS = {
    "auto": auto,
    "small_cnn": small_cnn,
    "compact_cnn": compact_cnn,
    "mlp": mlp,
    "mnist_logreg": mnist_logreg,
    "mnist_linear_nobias": mnist_linear_nobias,
    "mnist_cnn": mnist_cnn,
    "cifar10_cnn": cifar10_cnn,
    "svhn_cnn": svhn_cnn,
    "l2rw_mnist_cnn": nets.l2rw_mnist_cnn,
    "resnet32": nets.resnet32,
    "wrn28_10": nets.wrn28_10,
    "inception_small": nets.inception_small,
    "preact_resnet18": nets.preact_resnet18,
    "wrn28_10_dp": nets.wrn28_10_dp,
    "resnet18_imagenet": nets.resnet18_imagenet,
}


def resolve(spec):
  """The model-building function named by ``spec`` (a registry name or ``pkg.module:fn``)."""
  if spec in MODELS:
    return MODELS[spec]
  if ":" not in spec:
    raise ValueError(f"Unknown model {spec!r}: use one of {sorted(MODELS)} or your own as "
                     "'package.module:function' (called as function(input_shape, num_classes)).")
  return import_function(spec, "model")


def import_function(spec, what):
  """The function named by ``spec`` = 'package.module:function' (a user's model, extractor,
  ...); a ValueError naming ``what`` when it cannot be imported."""
  module_name, _, fn_name = spec.partition(":")
  if not module_name or not fn_name:
    raise ValueError(f"{what} {spec!r} is not of the form 'package.module:function'.")
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ValueError(f"Cannot import module {module_name!r} of {what} {spec!r}: {e}. "
                     "Is it on PYTHONPATH?") from e
  fn = getattr(module, fn_name, None)
  if not callable(fn):
    raise ValueError(f"Module {module_name!r} has no function {fn_name!r} ({what} {spec!r}).")
  return fn


def build(spec, input_shape, num_classes, **builder_kwargs):
  """Build model ``spec`` and check that it maps ``input_shape`` images to ``num_classes``
  logits. ``builder_kwargs`` go to the builder (e.g. ``init`` of ``nets.wrn28_10_dp``).

  Any Keras 3 model works: Sequential, functional or subclassed (built by calling it on a
  sample batch, so no ``compute_output_shape`` is needed). A model that ends in a softmax or
  sigmoid, or whose outputs are probabilities (every row non-negative and summing to 1), is
  refused: the losses here take logits. Errors are one-line ConfigErrors (families build their
  models before the run writes anything).
  """
  model = resolve(spec)(tuple(input_shape), num_classes, **builder_kwargs)
  if not isinstance(model, keras.Model):
    raise ConfigError(f"Model {spec!r} returned {type(model).__name__}, not a keras.Model.")
  sample = np.random.default_rng(0).uniform(0.0, 1.0, (2, *input_shape)).astype(np.float32)
  try:
    out = np.asarray(precision.to_float32(model(sample, training=False)))
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError(f"Model {spec!r} cannot be called on a batch of inputs of shape "
                     f"{tuple(input_shape)}: {type(e).__name__}: "
                     f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None
  if out.shape[1:] != (num_classes,):
    raise ConfigError(f"Model {spec!r} maps inputs of shape {tuple(input_shape)} to "
                     f"{out.shape[1:]}, expected logits of shape ({num_classes},).")
  check_ends_in_logits(model, f"Model {spec!r}")
  if num_classes > 1 and np.all(out >= 0) and np.allclose(out.sum(-1), 1.0, atol=1e-5):
    raise ConfigError(f"Model {spec!r} returns probabilities (each output row sums to 1): "
                     "return logits instead; the losses apply the softmax themselves.")
  return model


def check_ends_in_logits(model, what="The model"):
  """ConfigError (one line) when ``model``'s last layer applies a softmax or sigmoid."""
  final = _final_activation(model)
  if final in ("softmax", "sigmoid"):
    raise ConfigError(f"{what} ends in a {final}: return logits instead (drop the final "
                      "activation); the losses apply the softmax / sigmoid themselves.")


def _final_activation(model):
  """The activation of the last layer of a Sequential or functional ``model`` ("" for a
  subclassed one, whose layer list need not follow the call order)."""
  if type(model).__name__ not in ("Sequential", "Functional") or not model.layers:
    return ""
  last = model.layers[-1]
  if isinstance(last, layers.Softmax):
    return "softmax"
  if isinstance(last, keras.Model):
    return _final_activation(last)
  act = getattr(last, "activation", None)
  return getattr(act, "__name__", "") if act is not None else ""


def inactive_layers_notice(model, training):
  """A one-line notice when ``model`` has batch normalisation or dropout and runs with
  ``training=False`` (importance learning's ``train_mode_layers=False``): its batch-norm layers then use their
  moving statistics (which never update) and dropout never runs. None when nothing to say."""
  if training:
    return None
  kinds = sorted({type(l).__name__ for l in _all_layers(model)
                  if isinstance(l, (layers.BatchNormalization, layers.Dropout))})
  if not kinds:
    return None
  return (f"NOTE: the model has {', '.join(kinds)} layers and runs in inference mode "
          "(train_mode_layers=False, the penalty papers' setting): batch normalisation uses "
          "its initial moving statistics, which never update, and dropout is off. Set "
          "--config.train_mode_layers=True to train them.")


def _all_layers(model):
  for layer in getattr(model, "layers", []):
    yield layer
    if hasattr(layer, "layers"):
      yield from _all_layers(layer)


def has_dropout(model):
  """Whether ``model`` holds a dropout layer with a positive rate."""
  return any(isinstance(l, layers.Dropout) and float(l.rate) > 0 for l in _all_layers(model))


def advance_seeds(model):
  """Advance every random-seed state of ``model`` as one training-mode call would (Keras'
  SeedGenerator adds [0, 1] per draw), without touching batch-norm statistics: the next
  training-mode pass draws new dropout masks."""
  for var in model.non_trainable_variables:
    if var.path.endswith("seed_generator_state"):
      var.assign_add(tf.constant([0, 1], var.dtype))


def forward(model, weights, x, training=False, update_state=True):
  """Logits of ``model`` at trainable ``weights`` (tensors, possibly not its variables).

  Pure in the weights, so costs built on it can be differentiated twice (rule 1 of
  DESIGN.md). In training mode the model's non-trainable state (dropout seeds, batch-norm
  statistics) advances, as a normal training-mode call would, unless ``update_state=False``:
  meta passes (L2RW's weight computation) use batch statistics but must leave the moving
  averages alone (rule 3).
  """
  non_trainable = [v.value for v in model.non_trainable_variables]
  logits, new_state = model.stateless_call(weights, non_trainable, x, training=training)
  if training and update_state:
    for var, value in zip(model.non_trainable_variables, new_state):
      var.assign(value)
  return precision.to_float32(logits)      # a mixed-precision model's costs stay float32


def count_params(model):
  return int(sum(int(v.numpy().size) for v in model.weights))
