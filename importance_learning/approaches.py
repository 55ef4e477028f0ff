"""The approaches of a deep-network comparison: each is a name, a trainer and a score.

  python importance_learning/run.py --config=importance_learning/configs/compare_deep_mnist.py \
      --config.data_dir=/path/to/mnist_t10k --workdir=runs/compare_deep_mnist

A *trainer* trains one network in one cell, a Runner workdir
``cells/<setting>/<trainer>/seed<s>/`` (checkpoints, metrics.jsonl, record.json), evaluating
the test set and the clean split at every epoch end. A *score* turns a cell's record into the
approach's row. Approaches that share a trainer share its cell: the noisy baseline at its last
epoch and early-stopped on the clean split are one training run, read two ways.

Every trainer trains the comparison's one network (``config.model``) with the same momentum
SGD, batch size, weight decay and number of epochs (``config.deep``); what differs is the
data it sees and the per-example weighting:

  noisy               uniform weights on the noisy training set
  clean_only          uniform weights on the clean split alone, for as many steps as noisy, at
                      ``deep.clean_lr``
  oracle              uniform weights on the noisy set's true labels + the clean split
  finetune            the noisy cell's final model, trained on the clean split
                      (``deep.finetune_epochs`` passes over it at ``deep.finetune_lr``)
  confident_learning  cleanlab's find_label_issues on K-fold out-of-sample probabilities of
                      the network (``deep.cl_folds`` folds of ``deep.cl_fold_epochs`` epochs on
                      the noisy set), then retrained on the points kept + the clean split
  l2rw                Learning to Reweight: every step's weights from a clean batch
  proximal            Deep Bilevel's proximal reweighting (split 0 of each batch validates; no
                      clean data)
  dp_instance         data parameters, one learned temperature per training example
  dp_class            data parameters, one learned temperature per class
  penalty             the penalty method's importance-learning run (``experiment.run`` with the
                      config's ``penalty`` block): pretraining on the clean split, then bilevel
                      epochs

The epoch of every trainer is the noisy set's number of steps (n_noisy // batch_size), so the
curves of one figure share their x-axis in compute; fine-tuning's epochs are its own.

The data (``deep_data``): a pool of labelled images (MNIST: the 15,000 of source
``embedded_t10k``; CIFAR-10: the training images), cut in a fixed order into a test set (unless
the source has its own), a clean split of ``deep.clean_max_per_class`` images per class (a
smaller clean setting takes the first k of each class of it) and the noisy training set (the
rest: the same images for every clean size). Each seed shuffles the noisy set before the noise
corrupts its first fraction, so the seeds differ in which labels are wrong as well as in
initialisation and batch order.
"""

import dataclasses
import json
import pathlib
import time
from typing import Callable

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from common import bilevel
from common import confident
from common import data as datalib
from common import evaluators as evaluatorslib
from common import metrics as metriclib
from common import models
from common import plots
from common import problems as problemlib
from common import records
from common import runner as runnerlib
from common.data import noise as noiselib
from common.data.batching import Batcher
from common.data.sampling import ClassMatchedSampler
from common.data.splits import Splits
from common.errors import ConfigError
from importance_learning import experiment
from importance_learning.configs import base as base_lib


# -- the data --------------------------------------------------------------------------------


@dataclasses.dataclass
class DeepData:
  x_noisy: np.ndarray
  y_noisy: np.ndarray
  y_true: np.ndarray
  corrupted: np.ndarray
  x_clean: np.ndarray
  y_clean: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  class_names: tuple
  note: str


def read_pool(config):
  """(x, y, x_test, y_test, class_names, origin): the source's images as float32 in [0, 1],
  NHWC; the test set is the source's own or (a single pool, MNIST) the last ``deep.test``
  images of the pool's fixed order."""
  pools, names, origin = datalib.read_pools(config.dataset, config.source, config.data_dir)
  as_images = lambda x: (np.asarray(x, np.float32) / 255.0).reshape(  # noqa: E731
      (len(x),) + tuple(np.shape(x)[1:]) + ((1,) if np.ndim(x) == 3 else ()))
  x, y = as_images(pools.x_train), np.asarray(pools.y_train, np.int64)
  if pools.x_test is not None and not int(config.deep.test):
    return x, y, as_images(pools.x_test), np.asarray(pools.y_test, np.int64), names, origin
  n_test = int(config.deep.test)
  if not 0 < n_test < len(y):
    raise ConfigError(f"deep.test must be between 1 and {len(y) - 1} (the pool holds "
                      f"{len(y)} images), got {n_test}.")
  return x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:], names, origin


def clean_rows(y, per_class, num_classes):
  """Rows of the first ``per_class`` images of each class in ``y``'s order (sorted)."""
  rows = []
  for k in range(num_classes):
    members = np.flatnonzero(y == k)
    if len(members) < per_class:
      raise ConfigError(f"class {k} has {len(members)} images in the pool, fewer than the "
                        f"{per_class} a clean split of {per_class} a class needs.")
    rows.append(members[:per_class])
  return np.sort(np.concatenate(rows))


def deep_data(config, pool, noise_type, noise, clean_per_class, seed):
  """The noisy training set, the clean split and the test set of one setting and seed."""
  x, y, x_test, y_test, names, origin = pool
  k = len(names)
  deep = config.deep
  if clean_per_class > int(deep.clean_max_per_class):
    raise ConfigError(f"a clean split of {clean_per_class} a class is larger than "
                      f"deep.clean_max_per_class ({deep.clean_max_per_class}).")
  reserved = clean_rows(y, int(deep.clean_max_per_class), k)
  is_reserved = np.zeros(len(y), bool)
  is_reserved[reserved] = True
  picked = clean_rows(y[reserved], clean_per_class, k)
  noisy_rows = np.flatnonzero(~is_reserved)
  noisy_rows = noisy_rows[np.random.default_rng([int(seed), 1]).permutation(len(noisy_rows))]
  if int(deep.get("max_noisy", 0)):
    noisy_rows = noisy_rows[:int(deep.max_noisy)]
  y_true = y[noisy_rows]
  y_noisy, corrupted = noiselib.apply_noise(noise_type, y_true, float(noise), k, int(seed),
                                            as_coded=bool(config.noise_as_coded))
  note = (f"{config.dataset} ({origin}): {len(noisy_rows)} noisy training images "
          f"({int(corrupted.sum())} labels corrupted, {noise_type} noise {noise:g}), a clean "
          f"split of {clean_per_class} a class ({len(picked)}), {len(y_test)} test images")
  return DeepData(x[noisy_rows], y_noisy, y_true, corrupted, x[reserved][picked],
                  y[reserved][picked], x_test, y_test, k, tuple(names), note)


# -- one cell --------------------------------------------------------------------------------


@dataclasses.dataclass
class Cell:
  config: ml_collections.ConfigDict
  data: DeepData
  folder: pathlib.Path
  seed: int
  setting: tuple               # (noise_type, noise, clean_per_class)
  log: Callable
  folder_of: Callable          # trainer name -> that trainer's cell folder (same setting, seed)

  @property
  def deep(self):
    return self.config.deep

  def steps_per_epoch(self):
    return len(self.data.y_noisy) // int(self.deep.batch_size)

  def model(self):
    return models.build(self.config.model, self.data.x_noisy.shape[1:], self.data.num_classes)

  def sgd(self, cfg=None):
    """The comparison's optimiser block, for the reweighting methods' configs."""
    cfg = cfg or bilevel.UniformWeights.default_config()
    cfg.update({"lr": float(self.deep.lr), "momentum": float(self.deep.momentum)})
    return cfg

  def evaluators(self, model):
    """Test and clean-split accuracy at every epoch end."""
    test = metriclib.TestSet(self.data.x_test, self.data.y_test, 1000)
    clean = metriclib.TestSet(self.data.x_clean, self.data.y_clean, 1000)
    return [evaluatorslib.Evaluator("test", lambda e: {"test_accuracy": test.accuracy(model)}),
            evaluatorslib.Evaluator("clean", lambda e: {"clean_accuracy": clean.accuracy(model)})]


def curves(metrics_path, phase):
  """(test accuracies, clean-split accuracies) per epoch of ``phase`` in metrics.jsonl."""
  return tuple(plots.epoch_curves(metrics_path, key).get(phase, ([], []))[1]
               for key in ("test_accuracy", "clean_accuracy"))


def _train(cell, run_, phase, model, problem, method, batch_fn, epochs, steps_per_epoch,
           on_start=None):
  """Phase ``phase``: ``epochs`` x ``steps_per_epoch`` steps of ``method``, the test and
  clean-split accuracy at every epoch end."""
  run_.run_phase(phase, bilevel.combined_step(problem, method), batch_fn,
                 int(epochs) * steps_per_epoch, steps_per_epoch, on_start=on_start,
                 on_epoch_end=method.end_epoch, evaluators=cell.evaluators(model))


def _record(cell, run_, phase, model, scores=None, **extra):
  test, clean = curves(run_.metrics_path, phase)
  rec = {"phase": phase, "test_curve": test, "clean_curve": clean,
         "test_accuracy": metriclib.TestSet(cell.data.x_test, cell.data.y_test,
                                            1000).accuracy(model),
         "seconds": float(sum(run_.seconds_total().values())), **extra}
  if scores is not None:
    scores = np.asarray(scores, np.float64)
    records.save_npy(cell.folder / "scores.npy", scores)
    rec["detection"] = metriclib.detection(scores, cell.data.corrupted,
                                           float(np.median(scores)))
  return rec


def _uniform(cell, x, y, phase, num_steps_epochs=None, init_from=None, batch_size=None,
             lr=None):
  """Uniform-weight momentum SGD on (x, y): noisy, clean-only, oracle and fine-tuning."""
  deep = cell.deep
  batch_size = int(batch_size or deep.batch_size)
  keras.utils.set_random_seed(cell.seed)
  model = cell.model()
  problem = problemlib.ExampleReweighting(model, batch_size, float(deep.weight_decay))
  cfg = cell.sgd()
  if lr is not None:
    cfg.lr = float(lr)
  method = bilevel.UniformWeights(problem, cfg)
  run_ = runnerlib.Runner(cell.folder, cell.config.runner,
                          dict(model=model, method=method), (phase,), log=cell.log)
  batcher = Batcher(x, y, batch_size, cell.seed, phase)
  epochs, per_epoch = num_steps_epochs or (int(deep.epochs), cell.steps_per_epoch())
  on_start = None
  if init_from is not None:
    on_start = lambda: model.set_weights(init_from)  # noqa: E731
  _train(cell, run_, phase, model, problem, method, lambda s: {"train": batcher.epoch_batch(s)},
         epochs, per_epoch, on_start=on_start)
  return run_, model


def train_noisy(cell):
  run_, model = _uniform(cell, cell.data.x_noisy, cell.data.y_noisy, "noisy")
  records.save_npz(cell.folder / "final_weights.npz",
                   **{f"w{i}": w for i, w in enumerate(model.get_weights())})
  return _record(cell, run_, "noisy", model)


def train_clean_only(cell):
  d = cell.data
  run_, model = _uniform(cell, d.x_clean, d.y_clean, "clean_only",
                         batch_size=min(int(cell.deep.batch_size), len(d.y_clean)),
                         lr=cell.deep.clean_lr)
  return _record(cell, run_, "clean_only", model)


def train_oracle(cell):
  d = cell.data
  run_, model = _uniform(cell, np.concatenate([d.x_noisy, d.x_clean]),
                         np.concatenate([d.y_true, d.y_clean]), "oracle")
  return _record(cell, run_, "oracle", model)


def train_finetune(cell):
  """The noisy cell's final model, then ``deep.finetune_epochs`` passes over the clean split."""
  d = cell.data
  source = cell.folder_of("noisy") / "final_weights.npz"
  if not source.exists():
    raise ConfigError("approach 'finetune' starts from the noisy cell's final model: put "
                      "'noisy_last' or 'noisy_early_stopped' before it in compare.approaches.")
  with np.load(source) as z:
    weights = [z[f"w{i}"] for i in range(len(z.files))]
  batch_size = min(int(cell.deep.batch_size), len(d.y_clean))
  per_epoch = len(d.y_clean) // batch_size
  run_, model = _uniform(cell, d.x_clean, d.y_clean, "finetune",
                         (int(cell.deep.finetune_epochs), per_epoch), init_from=weights,
                         batch_size=batch_size, lr=cell.deep.finetune_lr)
  return _record(cell, run_, "finetune", model, start_weights=str(source))


def train_confident_learning(cell):
  d, deep = cell.data, cell.deep
  folds = int(deep.cl_folds)
  phases = tuple(f"fold{k}" for k in range(folds)) + ("retrain",)
  keras.utils.set_random_seed(cell.seed)
  model = cell.model()
  problem = problemlib.ExampleReweighting(model, int(deep.batch_size), float(deep.weight_decay))
  method = bilevel.UniformWeights(problem, cell.sgd())
  # Every fold and the retraining start from this initial state. It is taken before the
  # runner restores a checkpoint: taken after, a cell resumed inside a fold would start the
  # later folds and the retraining from that fold's half-trained weights.
  initial = runnerlib.snapshot(model, method)
  run_ = runnerlib.Runner(cell.folder, cell.config.runner, dict(model=model, method=method),
                          phases, log=cell.log)
  reset = lambda: runnerlib.restore(initial)  # noqa: E731

  def fit(phase, x, y, epochs, per_epoch, evaluate):
    b = Batcher(x, y, int(deep.batch_size), cell.seed, phase)
    run_.run_phase(phase, bilevel.combined_step(problem, method),
                   lambda s: {"train": b.epoch_batch(s)}, int(epochs) * per_epoch, per_epoch,
                   on_start=reset, evaluators=cell.evaluators(model) if evaluate else ())

  def fit_predict(k, train_rows, held_rows):
    def compute():
      # A fold's epochs are passes over its own training rows.
      fit(f"fold{k}", d.x_noisy[train_rows], d.y_noisy[train_rows], deep.cl_fold_epochs,
          len(train_rows) // int(deep.batch_size), False)
      return {"probs": metriclib.probabilities(model, d.x_noisy[held_rows], 1000)}
    return records.Sweep(lambda k: cell.folder / f"fold{k}.npz").run(k, compute)[0]["probs"]

  probs = confident.out_of_sample_probabilities(d.y_noisy, d.num_classes, folds, cell.seed,
                                                fit_predict)
  flagged, quality = confident.label_issues(d.y_noisy, probs)
  # The retraining's epochs are the noisy set's steps, as every trainer's curve.
  fit("retrain", np.concatenate([d.x_noisy[~flagged], d.x_clean]),
      np.concatenate([d.y_noisy[~flagged], d.y_clean]), deep.epochs, cell.steps_per_epoch(),
      True)
  rec = _record(cell, run_, "retrain", model, scores=quality, kept=int((~flagged).sum()))
  rec["detection"] = metriclib.detection(quality, d.corrupted, flagged=flagged)
  return rec


def _reweighting(cell, name, cfg, batch_fn_of, uses_clean):
  """A per-step reweighting method (L2RW, proximal) on the noisy set."""
  d, deep = cell.data, cell.deep
  keras.utils.set_random_seed(cell.seed)
  model = cell.model()
  problem = problemlib.ExampleReweighting(model, int(deep.batch_size), float(deep.weight_decay),
                                          num_train=len(d.y_noisy))
  method = bilevel.build_method(name, problem, cfg)
  run_ = runnerlib.Runner(cell.folder, cell.config.runner,
                          dict(model=model, problem=problem, method=method), (name,),
                          log=cell.log)
  train = Batcher(d.x_noisy, d.y_noisy, int(deep.batch_size), cell.seed, name)
  batch_fn = batch_fn_of(train, method)
  if uses_clean:
    clean = Batcher(d.x_clean, d.y_clean, min(int(deep.val_batch_size), len(d.y_clean)),
                    cell.seed, f"{name}_clean")
    inner = batch_fn
    batch_fn = lambda s: {**inner(s), "val": clean.random_batch(s)}  # noqa: E731
  _train(cell, run_, name, model, problem, method, batch_fn, deep.epochs,
         cell.steps_per_epoch())
  return _record(cell, run_, name, model, scores=problem.scores())


def train_l2rw(cell):
  cfg = cell.sgd(bilevel.L2RW.default_config())
  return _reweighting(cell, "l2rw", cfg, lambda b, m: lambda s: {"train": b.epoch_batch(s)},
                      uses_clean=True)


def train_proximal(cell):
  cfg = bilevel.ProximalReweighting.default_config()
  cfg.update(dict(cell.config.proximal))
  cell.sgd(cfg)

  def batches(train, method):
    sampler = ClassMatchedSampler(cell.data.y_noisy, cfg.splits, method.split_size, cell.seed)
    return lambda s: {"train": train.indexed_batch(sampler.batch_indices(s), s)}
  return _reweighting(cell, "proximal", cfg, batches, uses_clean=False)


def _data_parameters(cell, level):
  d, deep = cell.data, cell.deep
  training = bilevel.DataParameterDescent.default_config()
  training.update({"lr": float(deep.lr), "momentum": float(deep.momentum),
                   "weight_decay": float(deep.weight_decay), "lr_milestones_epochs": ()})
  training.data_params = problemlib.DataParameters.default_config()
  training.data_params.update(dict(cell.config.data_parameters[level]))
  keras.utils.set_random_seed(cell.seed)
  model = cell.model()
  dp = problemlib.DataParameters.from_config(training.data_params, d.num_classes,
                                             len(d.y_noisy))
  problem = problemlib.TemperatureScaledClassification(model, dp)
  method = bilevel.build_method("data_parameters", problem, training)
  phase = f"dp_{level}"
  run_ = runnerlib.Runner(cell.folder, cell.config.runner,
                          dict(model=model, data_params=dp, method=method), (phase,),
                          log=cell.log)
  train = Batcher(d.x_noisy, d.y_noisy, int(deep.batch_size), cell.seed, phase)
  _train(cell, run_, phase, model, problem, method, lambda s: {"train": train.epoch_batch(s)},
         deep.epochs, cell.steps_per_epoch())
  return _record(cell, run_, phase, model,
                 scores=instance_trust(dp) if level == "instance" else None)


def instance_trust(data_params):
  """The trust score of learned instance temperatures: -sigma (a corrupted example raises its
  temperature to flatten its softmax)."""
  return -np.exp(data_params.inst_parameters.numpy().astype(np.float64))


def train_dp_instance(cell):
  return _data_parameters(cell, "instance")


def train_dp_class(cell):
  return _data_parameters(cell, "class")


def train_penalty(cell):
  """The importance-learning run of the config's ``penalty`` block on this cell's data."""
  d = cell.data
  run_config = penalty_config(cell.config, cell.setting, cell.seed)
  splits = Splits(d.x_noisy, d.y_true, d.x_clean, d.y_clean, d.x_test, d.y_test, d.num_classes,
                  d.class_names, {"origin": "the comparison's split", "source": "memory",
                                  "split": "compare_deep"})
  # experiment.run corrupts y_true itself, with the call deep_data made: the same labels.
  y_noisy, _ = noiselib.apply_noise(run_config.noise_type, d.y_true, run_config.noise,
                                    d.num_classes, run_config.seed,
                                    as_coded=run_config.noise_as_coded)
  if not np.array_equal(y_noisy, d.y_noisy):
    raise RuntimeError("the penalty cell's labels differ from the comparison's noisy labels.")
  res = experiment.run(run_config, cell.folder, log=cell.log, splits=splits)
  test, _ = curves(cell.folder / "metrics.jsonl", "bilevel")
  scores = np.load(cell.folder / "importances.npy")
  records.save_npy(cell.folder / "scores.npy", scores)
  return {"phase": "bilevel", "test_curve": test, "clean_curve": [],
          "test_accuracy": res["method_test_accuracy"], "detection": res["detection"],
          # Its phases' seconds over every invocation, as the other cells count theirs.
          "seconds": float(sum(json.loads((cell.folder / "results.json").read_text())
                               ["phase_seconds"].values()))}


def penalty_config(config, setting, seed):
  """The importance-learning config of a penalty cell: the comparison's network, data, noise
  and seed, the ``penalty`` block and the ``penalty_run`` lengths; no baselines (the
  comparison has its own) and no retraining (the paper's large-scale rows report the bilevel
  classifier)."""
  noise_type, noise, _ = setting
  run = config.penalty_run
  c = base_lib.base()
  c.dataset = config.dataset
  # Validation only (the cell hands experiment.run its own splits): the dataset's default.
  c.split = datalib.DATASETS[config.dataset].default_split
  c.model = config.model
  c.noise_type, c.noise = noise_type, float(noise)
  c.noise_as_coded = bool(config.noise_as_coded)
  c.penalty = config.penalty.copy_and_resolve_references()
  c.epochs = int(run.epochs)
  c.batch_size, c.val_batch_size = int(run.batch_size), int(run.val_batch_size)
  c.pretrain.epochs, c.pretrain.lr = int(run.pretrain_epochs), float(run.pretrain_lr)
  c.importance_init.a_lo, c.importance_init.a_hi = float(run.a_lo), float(run.a_hi)
  c.baseline.enabled = False
  c.baselines.run = ()
  c.retrain.enabled = False
  c.evaluators = ("accuracy", "detection")
  c.seed = int(seed)
  c.runner = config.runner.copy_and_resolve_references()
  return c


TRAINERS = {
    "noisy": train_noisy,
    "clean_only": train_clean_only,
    "oracle": train_oracle,
    "finetune": train_finetune,
    "confident_learning": train_confident_learning,
    "l2rw": train_l2rw,
    "proximal": train_proximal,
    "dp_instance": train_dp_instance,
    "dp_class": train_dp_class,
    "penalty": train_penalty,
}


# -- the approaches: a name, a trainer, a score ------------------------------------------------


def last_epoch(rec):
  return {"test_accuracy": rec["test_accuracy"], "epoch": len(rec["test_curve"])}


def early_stopped(rec):
  """The epoch of the best clean-split accuracy (the first of ties) and its test accuracy."""
  clean = np.asarray(rec["clean_curve"], np.float64)
  best = int(np.argmax(clean))
  return {"test_accuracy": rec["test_curve"][best], "epoch": best + 1,
          "clean_accuracy": float(clean[best])}


@dataclasses.dataclass(frozen=True)
class Approach:
  name: str
  label: str
  trainer: str
  score: Callable = last_epoch


APPROACHES = {a.name: a for a in (
    Approach("noisy_last", "noisy labels, last epoch", "noisy"),
    Approach("noisy_early_stopped", "noisy labels, early-stopped on the clean split", "noisy",
             early_stopped),
    Approach("clean_only", "clean split only", "clean_only"),
    Approach("finetune", "noisy, then fine-tuned on the clean split", "finetune"),
    Approach("oracle", "oracle: true labels + clean split", "oracle"),
    Approach("confident_learning", "confident learning (cleanlab), retrained on kept + clean",
             "confident_learning"),
    Approach("l2rw", "L2RW", "l2rw"),
    Approach("proximal", "proximal reweighting (Deep Bilevel)", "proximal"),
    Approach("dp_instance", "data parameters, instance level", "dp_instance"),
    Approach("dp_class", "data parameters, class level", "dp_class"),
    Approach("penalty", "penalty method (importance learning)", "penalty"),
)}


# -- the comparison: settings x approaches x seeds ---------------------------------------------

# compare.* fields a comparison may change between invocations (it grows in place).
SWEEP_FIELDS = ("approaches", "noise_types", "noise", "clean_per_class", "seeds", "headline",
                "headline_seeds")


def settings(config):
  """Every (noise_type, noise, clean_per_class) of the comparison, in order."""
  cmp_ = config.compare
  return [(t, float(n), int(k)) for t in cmp_.noise_types for n in cmp_.noise
          for k in cmp_.clean_per_class]


def setting_name(setting):
  noise_type, noise, k = setting
  return f"{noise_type}{noise:g}_clean{k}"


def headline(config):
  """The setting given the most seeds (``compare.headline``: 'noise_type,noise,k')."""
  noise_type, noise, k = str(config.compare.headline).split(",")
  return (noise_type, float(noise), int(k))


def seeds_of(config, setting):
  n = config.compare.headline_seeds if setting == headline(config) else config.compare.seeds
  return list(range(int(n)))


def trainers_of(approach_names):
  """The trainers the approaches need, in TRAINERS order (noisy before finetune)."""
  needed = {APPROACHES[a].trainer for a in approach_names}
  return [t for t in TRAINERS if t in needed]


def check_sizes(config, num_classes):
  """Batch sizes against the smallest clean split (before anything is written)."""
  smallest = min(int(k) for k in config.compare.clean_per_class) * int(num_classes)
  if "penalty" in config.compare.approaches:
    for key in ("batch_size", "val_batch_size"):
      if int(config.penalty_run[key]) > smallest:
        raise ConfigError(f"penalty_run.{key}={config.penalty_run[key]} is larger than the "
                          f"smallest clean split ({smallest} images), which the penalty run "
                          f"pretrains on and validates with; lower it.")


def validate(config):
  cmp_ = config.compare
  names = list(cmp_.approaches)
  unknown = [a for a in names if a not in APPROACHES]
  if unknown or not names:
    raise ConfigError(f"compare.approaches names {unknown or 'nothing'}; choose from "
                      f"{list(APPROACHES)}.")
  if len(set(names)) < len(names):
    raise ConfigError("compare.approaches must not repeat an approach.")
  if "finetune" in names and "noisy" not in trainers_of(names):
    raise ConfigError("approach 'finetune' starts from the noisy cell's final model: list "
                      "'noisy_last' or 'noisy_early_stopped' in compare.approaches too.")
  for t in cmp_.noise_types:
    if t not in noiselib.NOISE_TYPES:
      raise ConfigError(f"compare.noise_types holds {t!r}; choose from "
                        f"{sorted(noiselib.NOISE_TYPES)}.")
  for n in cmp_.noise:
    if not 0.0 <= float(n) < 1.0:
      raise ConfigError(f"compare.noise holds {n}: noise levels are fractions in [0, 1).")
  for k in cmp_.clean_per_class:
    if not 1 <= int(k) <= int(config.deep.clean_max_per_class):
      raise ConfigError(f"compare.clean_per_class holds {k}: it must lie in [1, "
                        f"deep.clean_max_per_class = {config.deep.clean_max_per_class}].")
  try:
    h = headline(config)
  except ValueError:
    raise ConfigError(f"compare.headline must read 'noise_type,noise,clean_per_class', got "
                      f"{cmp_.headline!r}.") from None
  if h not in settings(config):
    raise ConfigError(f"compare.headline {cmp_.headline!r} is not one of the settings "
                      f"{[','.join(map(str, s)) for s in settings(config)]}.")
  for key in ("seeds", "headline_seeds"):
    if int(cmp_[key]) < 1:
      raise ConfigError(f"compare.{key} must be >= 1, got {cmp_[key]}.")
  deep = config.deep
  for key in ("batch_size", "val_batch_size", "epochs", "finetune_epochs", "cl_fold_epochs"):
    if int(deep[key]) < 1:
      raise ConfigError(f"deep.{key} must be >= 1, got {deep[key]}.")
  for key in ("lr", "clean_lr", "finetune_lr"):
    if not float(deep[key]) >= 0.0:
      raise ConfigError(f"deep.{key} must be >= 0, got {deep[key]}.")
  if int(deep.cl_folds) < 2:
    raise ConfigError(f"deep.cl_folds must be >= 2, got {deep.cl_folds}.")
  if "proximal" in names and int(deep.batch_size) % int(config.proximal.splits):
    raise ConfigError(f"proximal.splits ({config.proximal.splits}) must divide "
                      f"deep.batch_size ({deep.batch_size}).")
  models.resolve(config.model)


def run(config, workdir, log=print):
  """Every (setting, trainer, seed) cell, cached; then the tables and figures."""
  validate(config)
  # Every cell runs with op determinism. A penalty cell's run turns it on (its config's
  # ``deterministic``), and it stays on for the rest of the process. Without this line the
  # cells before an invocation's first penalty cell ran without it, so a cell's numbers
  # depended on where the invocation started. Measured on MNIST 40%/100, seed 0: the noisy
  # run's last epoch 0.753 without, 0.720 with; data parameters, class level, 0.631 and 0.648.
  tf.config.experimental.enable_op_determinism()
  t_start = time.time()
  workdir = pathlib.Path(workdir)
  datalib.check_present(config.dataset, config.source, config.data_dir)
  pool = read_pool(config)                       # before anything is written
  check_sizes(config, len(pool[4]))
  records.check_or_write_sweep_config(workdir, config, "compare", SWEEP_FIELDS)
  names = list(config.compare.approaches)
  folder = lambda setting, trainer, seed: (  # noqa: E731
      workdir / "cells" / setting_name(setting) / trainer / f"seed{seed}")
  sweep = records.Sweep(lambda key: folder(*key) / "record.json")
  cells = {}
  for setting in settings(config):
    for seed in seeds_of(config, setting):
      data = deep_data(config, pool, *setting, seed)
      for trainer in trainers_of(names):
        cell = Cell(config, data, folder(setting, trainer, seed), seed, setting, log,
                    lambda t, s=setting, sd=seed: folder(s, t, sd))
        log(f"[compare] {setting_name(setting)} {trainer} seed {seed}")
        rec, cached = sweep.run((setting, trainer, seed), lambda: TRAINERS[trainer](cell))
        log(f"[compare] {setting_name(setting)} {trainer} seed {seed}: test accuracy "
            f"{rec['test_accuracy']:.4f}" + (" (cached)" if cached else ""))
        cells[(setting, trainer, seed)] = rec
  rows = table_rows(config, cells)
  results = {"experiment": "compare_deep", "dataset": config.dataset, "model": config.model,
             "approaches": names, "rows": rows, "git_commit": records.git_commit(),
             "wall_seconds_this_invocation": time.time() - t_start}
  records.write_json(workdir / "comparison.json", results)
  records.write_text(workdir / "comparison.md", markdown(results))
  for setting in settings(config):
    plots.accuracy_curves(
        workdir / f"curves_{setting_name(setting)}.png",
        curve_series(config, cells, setting),
        title=f"{config.dataset}, {setting[0]} noise {setting[1]:g}, clean split "
              f"{setting[2]} a class: test accuracy per epoch (mean over seeds)")
  log(f"Results written to {workdir / 'comparison.json'}, comparison.md and curves_*.png.")
  return results


def table_rows(config, cells):
  """One row per (setting, approach): mean and std over seeds of the test accuracy, the
  detection ROC AUC and average precision, the epoch chosen, the wall time; every value."""
  rows = []
  for setting in settings(config):
    for name in config.compare.approaches:
      a = APPROACHES[name]
      scored = [(cells[(setting, a.trainer, s)], a.score(cells[(setting, a.trainer, s)]))
                for s in seeds_of(config, setting) if (setting, a.trainer, s) in cells]
      if not scored:
        continue
      acc = [sc["test_accuracy"] for _, sc in scored]
      row = {"setting": setting_name(setting), "approach": name, "label": a.label,
             "seeds": len(acc), "test_accuracy": _mean_std(acc),
             "epochs": [sc.get("epoch") for _, sc in scored],
             "seconds": float(np.mean([rec["seconds"] for rec, _ in scored]))}
      det = [rec["detection"] for rec, _ in scored if rec.get("detection")]
      if det:
        row["roc_auc"] = _mean_std([d["roc_auc"] for d in det])
        row["average_precision"] = _mean_std([d["average_precision"] for d in det])
      rows.append(row)
  return rows


def _mean_std(values):
  values = [float(v) for v in values]
  return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}


def _fmt(stat):
  return f"{stat['mean']:.4f} ± {stat['std']:.4f}" if stat else "-"


def markdown(results):
  lines = [f"# Deep-network comparison on {results['dataset']} ({results['model']})", ""]
  for setting in dict.fromkeys(r["setting"] for r in results["rows"]):
    rows = [r for r in results["rows"] if r["setting"] == setting]
    lines += [f"## {setting}", "",
              "| approach | test accuracy | seeds | epoch used | detection ROC AUC | "
              "avg precision | train s (mean) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
      epochs = ", ".join(str(e) for e in r["epochs"] if e is not None) or "-"
      lines.append(f"| {r['label']} | {_fmt(r['test_accuracy'])} | {r['seeds']} | {epochs} | "
                   f"{_fmt(r.get('roc_auc'))} | {_fmt(r.get('average_precision'))} | "
                   f"{r['seconds']:.0f} |")
    lines.append("")
  lines += ["Test accuracy: mean ± std over seeds (std with ddof 0). Epoch used: the epoch whose "
            "model is scored (early stopping picks the best clean-split accuracy). Detection: "
            "each approach's corruption score against the labels the noise changed.", ""]
  return "\n".join(lines)


def curve_series(config, cells, setting):
  """{label: (epochs, mean test accuracy)} of every trainer that ran in ``setting``; the
  fine-tuning curve continues after the noisy run's last epoch."""
  series = {}
  labels = {"noisy": "noisy labels"}
  for trainer in trainers_of(config.compare.approaches):
    recs = [cells[(setting, trainer, s)] for s in seeds_of(config, setting)
            if (setting, trainer, s) in cells]
    runs = [r["test_curve"] for r in recs if r["test_curve"]]
    if not runs:
      continue
    n = min(len(c) for c in runs)
    mean = np.mean([c[:n] for c in runs], axis=0)
    start = int(config.deep.epochs) if trainer == "finetune" else 0
    label = labels.get(trainer) or next(a.label for a in APPROACHES.values()
                                        if a.trainer == trainer)
    series[label] = (np.arange(start + 1, start + n + 1), mean)
  return series
