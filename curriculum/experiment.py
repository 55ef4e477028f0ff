"""Data parameters (Saxena et al., NeurIPS 2019): a learned class/instance curriculum.

Two phases through ``common.runner.Runner``, each a fresh model trained with the original's
recipe (momentum SGD with coupled L2, the epoch schedule, batches of the training set with the
dataset index of every row):

  baseline         data parameters off (sigma = 1): plain training on the noisy labels
  data_parameters  the same, with the class and/or instance temperatures learned

There is no clean validation set: the training set is the whole (noisy) training pool of the
split (its train and val parts together), and the test set is evaluated every epoch with
*unscaled* logits, as the original does. Every epoch also records the mean / highest / lowest
of the class and instance parameters, the instance sigmas of corrupted and clean points
(TensorBoard scalars and histograms), and a snapshot for the figure of how the distributions
evolve. ``report_epoch`` (84 in the original's noisy-data results, chosen there by
cross-validation) names the epoch whose test accuracy is reported beside the final one.

Outputs: results.json, sigmas_instance.npy / sigmas_class.npy (final sigma = exp(parameter)),
data_parameters.png (class and instance sigma percentiles per epoch, corrupted vs clean),
metrics.jsonl, TensorBoard, checkpoints. Re-running the same command resumes.

Several devices (``runner.distribute``): each replica takes its block of every batch's rows
and the step is one device's (``TemperatureScaledClassification``), for models without batch
normalisation or dropout; a model with either is refused replicated (its statistics and masks
would be per replica), with the reason.
"""

import dataclasses
import json
import time

import keras
import numpy as np
import tensorflow as tf

from common import bilevel
from common import config_checks
from common import data as datalib
from common import evaluators as evaluatorslib
from common import metrics as metriclib
from common import models
from common import nets
from common import plots
from common import problems as problemlib
from common import runner as runnerlib
from common import records
from common.data import augment as augmentlib
from common.data import imagefolder
from common.data import noise as noiselib
from common.data.batching import Batcher, evaluable
from common.errors import ConfigError

PHASES = ("baseline", "data_parameters")


def _streamed(config):
  """Whether the dataset is streamed from image folders (training/ and validation/ under
  data_dir, the ImageNet augmentation of imagefolder.py) rather than loaded whole."""
  return datalib.REGISTRY[config.dataset].kind == "folders"


def validate(config):
  """Fail fast, before any data is read or any file written, on a bad config."""
  config_checks.validated(_validate, config)


def _validate(config):
  datalib.check(config.dataset, kinds=("splits", "folders"))
  evaluatorslib.check(config.evaluators, ("accuracy", "temperatures"), "the curriculum family")
  if _streamed(config):
    _validate_folder_dataset(config)
  else:
    config_checks.check_data_and_model(config)
  dp = config.training.data_params
  if not (dp.learn_class_parameters or dp.learn_inst_parameters):
    raise ValueError("the data_parameters phase learns nothing: set "
                     "training.data_params.learn_class_parameters and/or learn_inst_parameters "
                     "(the baseline phase is the run without them).")
  for key in ("init_class_param", "init_inst_param"):
    if not dp[key] > 0:
      raise ValueError(f"training.data_params.{key} is a temperature and must be > 0, got "
                       f"{dp[key]}.")
  for key in ("batch_size", "epochs"):
    if int(config[key]) < 1:
      raise ValueError(f"{key} must be >= 1, got {config[key]}.")
  if not 0 <= int(config.report_epoch) <= int(config.epochs):
    raise ValueError(f"report_epoch must lie in [0, epochs = {config.epochs}] (0: none), got "
                     f"{config.report_epoch}.")
  if config.model_init not in nets.INITS:
    raise ValueError(f"Unknown model_init {config.model_init!r}; choose one of {nets.INITS}.")
  if config.model_init != "pytorch" and not _model_kwargs(config):
    raise ValueError(f"model_init={config.model_init!r} needs a model with an init switch "
                     f"(wrn28_10_dp, preact_resnet18); {config.model!r} has none.")


def _validate_folder_dataset(config):
  if not 0.0 <= config.noise <= 1.0:
    raise ValueError(f"noise must be a fraction in [0, 1], got {config.noise}.")
  if config.noise_type not in noiselib.NOISE_TYPES:
    raise ValueError(f"Unknown noise_type {config.noise_type!r}; choose one of "
                     f"{sorted(noiselib.NOISE_TYPES)}.")
  if config.augmentation != "imagenet":
    raise ValueError(f"{config.dataset} is read from image folders with the ImageNet transforms "
                     f"(augmentation='imagenet'), got augmentation={config.augmentation!r}.")
  for key in ("image_size", "eval_resize"):
    if key not in config:
      raise ValueError(f"{config.dataset} needs config.{key} (see "
                       f"curriculum/configs/imagenet.py).")
  if int(config.image_size) < 32:
    raise ValueError(f"image_size must be >= 32 (ResNet-18 downsamples by 32), got "
                     f"{config.image_size}.")
  if int(config.eval_resize) < int(config.image_size):
    raise ValueError(f"eval_resize ({config.eval_resize}) must be >= image_size "
                     f"({config.image_size}): the evaluation centre-crops the resized image.")
  models.resolve(config.model)


def _model_kwargs(config):
  """``init=config.model_init`` for the builders with that switch (``nets.wrn28_10_dp``,
  ``nets.preact_resnet18``); nothing for the others, which keep their own initialisers."""
  if models.resolve(config.model) in (nets.wrn28_10_dp, nets.preact_resnet18):
    return dict(init=config.model_init)
  return {}


def _without_data_parameters(cfg):
  cfg = cfg.copy_and_resolve_references()
  cfg.data_params.learn_class_parameters = False
  cfg.data_params.learn_inst_parameters = False
  return cfg


def _method(model, training, num_classes, num_train):
  """The data-parameters step on ``model`` with the temperatures of ``training.data_params``."""
  data_params = problemlib.DataParameters.from_config(training.data_params, num_classes,
                                                      num_train)
  problem = problemlib.TemperatureScaledClassification(model, data_params)
  return bilevel.build_method("data_parameters", problem, training)


@dataclasses.dataclass
class _Data:
  """The training pool (noisy labels, corruption mask, batches) and the test evaluation."""

  n: int
  y_noisy: np.ndarray
  corrupted: np.ndarray
  num_classes: int
  input_shape: tuple
  batcher: object          # epoch_batch(step) -> {"x", "y", "index"}; steps_per_epoch
  test: metriclib.TestSet   # top-1 (and top-5 for image folders) test accuracy
  info: dict


def _load_data(config, log):
  if _streamed(config):
    folders = imagefolder.load_folders(config.data_dir)
    y_clean = folders.train.labels
    info = folders.info
    num_classes = folders.num_classes
    num_test = len(folders.test)
  else:
    ds = datalib.load(config.dataset, source=config.source, data_dir=config.data_dir,
                      split=config.split, tfds_download=config.tfds_download)
    if ds.info.get("scaled"):
      log(f"NOTE: {ds.info['note']}")
    # No clean set in this method: the split's train and val parts are one training pool.
    x_train = np.concatenate([ds.x_train, ds.x_val])
    y_clean = np.concatenate([ds.y_train, ds.y_val])
    info = ds.info
    num_classes = ds.num_classes
    num_test = len(ds.x_test)
  y_noisy, corrupted = noiselib.apply_noise(config.noise_type, y_clean, config.noise,
                                            num_classes, config.seed,
                                            as_coded=config.noise_as_coded)
  n = len(y_clean)
  log(f"{config.dataset} ({info['source']}): train {n} ({int(corrupted.sum())} labels "
      f"corrupted, {config.noise_type} noise), test {num_test}, {num_classes} classes.")

  if _streamed(config):
    size = int(config.image_size)
    batcher = imagefolder.FolderBatcher(folders.train, y_noisy, config.batch_size, config.seed,
                                        "train", size)
    test = metriclib.TestSet(batches=imagefolder.eval_dataset(
        folders.test, config.eval_batch_size, size, int(config.eval_resize)), ks=(1, 5))
    return _Data(n, y_noisy, corrupted, num_classes, (size, size, 3), batcher, test, info)

  augment = augmentlib.AUGMENTATIONS[config.augmentation]
  transform = augmentlib.EVAL_TRANSFORMS[config.augmentation]
  shape = augmentlib.output_shape(config.augmentation, x_train.shape[1:])
  batcher = Batcher(x_train, y_noisy, config.batch_size, config.seed, "train", augment,
                    transform)
  test = metriclib.TestSet(evaluable(ds.x_test, transform), ds.y_test, config.eval_batch_size)
  return _Data(n, y_noisy, corrupted, num_classes, tuple(shape), batcher, test, info)


def run(config, workdir, log=print):
  """Run both phases (resuming from ``workdir``) and return the results dict."""
  validate(config)
  t_start = time.time()
  # First, before TensorFlow starts: a CPU split into logical devices must happen now.
  setup = runnerlib.Setup(config.runner)
  setup.check_batch_size("batch_size", config.batch_size)
  setup.log_replicas(log)
  keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()

  data = _load_data(config, log)
  n, corrupted, k = data.n, data.corrupted, data.num_classes
  shape = data.input_shape
  with setup.scope():
    base_model = models.build(config.model, shape, k, **_model_kwargs(config))
    dp_model = models.build(config.model, shape, k, **_model_kwargs(config))
    methods = {name: _method(model, cfg, k, n) for name, model, cfg in (
        ("baseline", base_model, _without_data_parameters(config.training)),
        ("data_parameters", dp_model, config.training))}
  check_replicable(config.model, dp_model, setup.num_replicas)
  setup.check(*methods.values(), *(m.problem for m in methods.values()))
  run_ = runnerlib.Runner(workdir, config.runner, dict(base_model=base_model, dp_model=dp_model,
                                                       **methods),
                          PHASES, run_config=config, log=log, setup=setup)
  dp = methods["data_parameters"].problem.data_params
  snapshots_path = run_.workdir / "sigma_snapshots.jsonl"

  def evaluators(name, model):
    temperatures = dict(data_params=dp, corrupted=corrupted, snapshots_path=snapshots_path) \
        if name == "data_parameters" else {}
    return evaluatorslib.build(config.evaluators, evaluatorslib.Context(
        model=model, test=data.test, **temperatures))

  batcher = data.batcher
  steps = config.epochs * batcher.steps_per_epoch
  for name, model in (("baseline", base_model), ("data_parameters", dp_model)):
    if name == "baseline" and not config.baseline_enabled:
      run_.run_phase(name, None, None, 0)
      continue
    run_.run_phase(name, methods[name].step, lambda s: {"train": batcher.epoch_batch(s)}, steps,
                   batcher.steps_per_epoch, on_epoch_end=methods[name].end_epoch,
                   evaluators=evaluators(name, model))

  curves = plots.epoch_curves(run_.metrics_path)
  inst = np.exp(dp.inst_parameters.numpy())
  cls = np.exp(dp.class_parameters.numpy())
  results = {"dataset": config.dataset, "noise": config.noise, "noise_type": config.noise_type,
             "model": config.model, "data": data.info, "num_train": n,
             "num_corrupted": int(corrupted.sum()), "report_epoch": config.report_epoch}
  for name, model in (("baseline", base_model), ("data_parameters", dp_model)):
    if name == "baseline" and not config.baseline_enabled:
      continue
    final = data.test.evaluate(model)
    results[f"{name}_test_accuracy"] = final[1]
    if 5 in final:
      results[f"{name}_test_top5_accuracy"] = final[5]
    _, accs = curves.get(name, ([], []))
    if 0 < config.report_epoch <= len(accs):
      results[f"{name}_test_accuracy_at_report_epoch"] = accs[config.report_epoch - 1]
  if dp.learn_inst_parameters:
    results["inst_sigma_corrupted_mean"] = float(inst[corrupted].mean()) if corrupted.any() \
        else None
    results["inst_sigma_clean_mean"] = float(inst[~corrupted].mean()) if (~corrupted).any() \
        else None
    results["inst_sigma_roc_auc"] = metriclib.roc_auc(corrupted, inst) \
        if 0 < corrupted.sum() < n else None
    # The same detection metrics as every importance-learning score: sigma is the corruption
    # score (high = corrupted), a point is flagged when its sigma rose above its initial one.
    results["inst_sigma_detection"] = metriclib.detection(
        -inst, corrupted, flagged=inst > dp_init_sigma(config))
    records.save_npy(run_.workdir / "sigmas_instance.npy", inst)
  if dp.learn_class_parameters:
    records.save_npy(run_.workdir / "sigmas_class.npy", cls)
  snaps = [json.loads(line) for line in snapshots_path.open()] if snapshots_path.exists() else []
  plots.data_parameter_figure(run_.workdir / "data_parameters.png", snaps,
                              learn_class=dp.learn_class_parameters,
                              learn_inst=dp.learn_inst_parameters,
                              title=f"{config.dataset}, {config.noise:.0%} {config.noise_type}")
  results["wall_seconds_this_invocation"] = time.time() - t_start
  run_.write_results(results, summary(results))
  return results


def check_replicable(name, model, replicas):
  """A ConfigError when ``model`` (trained in training mode) cannot be replicated exactly:
  batch normalisation would normalise with each replica's statistics, dropout draw each
  replica's masks, so the step would not be one device's."""
  if replicas <= 1:
    return
  kinds = sorted({"batch normalisation" if isinstance(layer, keras.layers.BatchNormalization)
                  else "dropout" for layer in _layers(model)
                  if isinstance(layer, keras.layers.BatchNormalization)
                  or (isinstance(layer, keras.layers.Dropout) and float(layer.rate) > 0)})
  if kinds:
    raise ConfigError(
        f"model {name!r} has {' and '.join(kinds)} layers, whose batch statistics or masks "
        f"would differ per replica, so a step over {replicas} replicas would not be the "
        "one-device step; replicate a model without them (e.g. mnist_logreg, mlp) or run "
        "with runner.distribute.strategy=none.")


def _layers(model):
  """Every layer of ``model``, nested ones included (inside a user's own layer classes too)."""
  flatten = getattr(model, "_flatten_layers", None)
  if flatten is not None:
    yield from flatten(include_self=False, recursive=True)
    return
  for layer in getattr(model, "layers", []):
    yield layer
    yield from _layers(layer)


def dp_init_sigma(config):
  """The instance temperature every point starts from (as stored: exp of a float32 log)."""
  return float(np.exp(np.float32(np.log(config.training.data_params.init_inst_param))))


def summary(results):
  rows = []
  e = results["report_epoch"]
  top5 = any(f"{name}_test_top5_accuracy" in results for name in PHASES)
  for name, what in (("baseline", "baseline (no data parameters)"),
                     ("data_parameters", "data parameters")):
    if f"{name}_test_accuracy" in results:
      rows.append({"what": what, "final": results[f"{name}_test_accuracy"],
                   "top5": results.get(f"{name}_test_top5_accuracy"),
                   "at": results.get(f"{name}_test_accuracy_at_report_epoch")})
  columns = [("what", "model"), ("final", "test accuracy (final)")]
  if top5:
    columns.append(("top5", "top-5 (final)"))
  if e > 0:
    columns.append(("at", f"at epoch {e}"))
  out = records.summary_table(rows, columns)
  if results.get("inst_sigma_roc_auc") is not None:
    out += (f"\n\ninstance sigma: corrupted points {results['inst_sigma_corrupted_mean']:.4f}, "
            f"clean points {results['inst_sigma_clean_mean']:.4f} (mean); ROC AUC of sigma as "
            f"a corruption score {results['inst_sigma_roc_auc']:.4f} "
            f"({results['num_corrupted']} corrupted of {results['num_train']})")
  det = results.get("inst_sigma_detection")
  if det is not None:
    out += (f"\nsigma above its initial value flags {det['flagged']} points: precision "
            f"{det['precision']:.4f}, recall {det['recall']:.4f}, F1 {det['f1']:.4f}; "
            f"average precision {det['average_precision']:.4f}")
  return out
