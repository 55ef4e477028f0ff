"""Importance learning: two protocols (``ImportanceVariables``: the penalty paper's, for the
bilevel methods; ``PerStepReweighting``: the reweighting papers', for L2RW, proximal and the
fixed rules) over one data setup (``_Data``), phase by phase.

  baseline  plain training on the noisy training set (+ the clean validation set): the
            comparison every run reports. For the per-step reweighting methods (L2RW, proximal)
            it is the same training with uniform weights instead: their optimiser, schedule,
            batches and augmentation, no clean data (the originals' ``--baseline`` and
            StandardTrainer)
  pretrain  plain training of the bilevel classifier on the validation set only
  bilevel   importances initialised by agreement with the pretrained model (a_hi / a_lo),
            then epochs of bilevel steps; at each epoch end the importances are renormalised
            to mean 0.5 and the classifier is evaluated on the test set
  retrain   (small-scale protocol) a fresh classifier trained on {a > threshold} + validation

Every phase runs through ``common.runner.Runner``; a re-run of the same command resumes.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from common import bilevel
from common import confident
from common import config_checks
from common import data as datalib
from common import evaluators as evaluatorslib
from common import metrics as metriclib
from common import models
from common import plots
from common import runner as runnerlib
from common import records
from common.errors import ConfigError
from common.data import augment as augmentlib
from common.data import custom as customlib
from common.data import noise as noiselib
from common.data.batching import Batcher, evaluable
from common.data.sampling import ClassMatchedSampler
from common.problems import Classification, ExampleReweighting
from common.problems import ImportanceProblem
from common.problems import DataParameters, TemperatureScaledClassification
from importance_learning import label_issues

PHASES = ("baseline", "pretrain", "bilevel", "retrain")
BASELINES = ("clean_only", "oracle", "confident_learning", "finetune")
# Confident learning without and with the trusted validation split in every fold.
CL_VARIANTS = ("confident_learning", "confident_learning_trusted")


# What importance learning can measure at epoch ends (config.evaluators chooses).
OFFERED_EVALUATORS = ("importance_stats", "accuracy", "detection")


def validate(config, splits=None):
  """Fail fast, before any data is read or any file written, on a bad config (``splits``:
  the data given in memory, instead of the config's files)."""
  config_checks.validated(lambda c: _validate(c, splits), config)


def _validate(config, splits=None):
  config_checks.check_data_and_model(config)
  method = bilevel.get_method(config.method)
  label_issues.precheck(config)
  if config.dataset == "custom":
    if "custom" not in config:
      raise ValueError("dataset 'custom' reads its files from a config block 'custom': start "
                       "from importance_learning/configs/custom.py.")
    c = config.custom
    if splits is None:
      customlib.check(c)
    has_trusted = (len(splits.y_val) > 0 if splits is not None
                   else bool(c.trusted or c.trusted_ids))
    if not has_trusted and (method.needs_outer_variables or method.uses_clean_batches):
      raise ValueError(f"method {config.method!r} learns from a trusted subset: give "
                       "custom.trusted (a folder / file of clean data) or custom.trusted_ids "
                       "(a file of ids of custom.train), or use method 'proximal', which needs "
                       "none.")
  usable = sorted(n for n, m in bilevel.METHODS.items()
                  if (m.needs_outer_variables or m.learns_example_weights
                      or n == "data_parameters") and n in config)
  if config.method == "data_parameters":
    if "data_parameters" in config and \
        not config.data_parameters.data_params.learn_inst_parameters:
      raise ValueError("method 'data_parameters' scores each training point by its learned "
                       "temperature: set data_parameters.data_params.learn_inst_parameters="
                       "True.")
  elif not (method.needs_outer_variables or method.learns_example_weights):
    raise ValueError(f"method {config.method!r} learns no importances (the plain baseline runs "
                     f"in every experiment anyway); choose one of {usable}.")
  if config.method not in config:
    raise ValueError(f"the config has no block '{config.method}' for method {config.method!r}; "
                     f"methods with a block in this config: {usable}.")
  evaluatorslib.check(config.evaluators, OFFERED_EVALUATORS, "importance learning")
  if config.retrain.enabled and not 0.0 < config.retrain.threshold < 1.0:
    raise ValueError(f"retrain.threshold must lie in (0, 1) (importances are clipped to "
                     f"[0, 1]), got {config.retrain.threshold}.")
  a_lo, a_hi = config.importance_init.a_lo, config.importance_init.a_hi
  if not (0.0 < a_lo < 1.0 and 0.0 < a_hi < 1.0):
    raise ValueError(f"importance_init a_lo and a_hi must lie in (0, 1), got {a_lo}, {a_hi}.")
  for key in ("batch_size", "val_batch_size", "epochs"):
    if int(config[key]) < 1:
      raise ValueError(f"{key} must be >= 1, got {config[key]}.")
  unknown = [b for b in config.baselines.run if b not in BASELINES]
  if unknown:
    raise ValueError(f"Unknown baseline(s) {unknown} in baselines.run; choose from "
                     f"{list(BASELINES)} (or () for none).")
  if "confident_learning" in config.baselines.run and int(config.baselines.folds) < 2:
    raise ValueError(f"baselines.folds must be >= 2 (confident learning's K-fold "
                     f"cross-validation), got {config.baselines.folds}.")
  for key in ("clean_only_steps", "finetune_steps"):
    if int(config.baselines.get(key, 0)) < 0:
      raise ValueError(f"baselines.{key} must be >= 0, got {config.baselines[key]}.")
  if "finetune" in config.baselines.run and int(config.baselines.get("finetune_steps", 0)) < 1:
    raise ValueError("baselines.finetune_steps must be >= 1 when 'finetune' is in "
                     "baselines.run.")
  if int(config.baselines.steps_per_call) < 1:
    raise ValueError(f"baselines.steps_per_call must be >= 1, got "
                     f"{config.baselines.steps_per_call}.")


def per_step(method):
  """Whether ``method`` trains per step on the noisy set (no pretraining, no importance
  variables): the reweighting methods, and data parameters."""
  return bilevel.get_method(method).learns_example_weights or method == "data_parameters"


def train_mode(config):
  """Whether forward passes run in training mode (``train_mode_layers``, or its deprecated
  name ``dropout_in_training``)."""
  return bool(config.train_mode_layers or config.get("dropout_in_training", False))


def fit_batches_to_data(config, data, reweighting, log):
  """``batches_follow_data`` (the own-data config): a batch larger than the part of the split
  it is drawn from is lowered to that part's size, with a note. Returns the config (a copy
  when a size changed), resolved before the run records it, so a resumed run resolves the
  same sizes."""
  if not config.get("batches_follow_data", False):
    return config
  n_train, n_val = data.n_train, len(data.ds.x_val)
  val_used = n_val and (not reweighting or bilevel.get_method(config.method).uses_clean_batches)
  limits = {"batch_size": [n_train], "val_batch_size": [n_val] if val_used else []}
  if n_val and not reweighting and config.pretrain.epochs:
    limits["batch_size"].append(n_val)      # the pretraining batches come from the trusted set
  for key, bounds in limits.items():
    if bounds and int(config[key]) > min(bounds):
      log(f"NOTE: {key} lowered from {config[key]} to {min(bounds)}, the size of the data it "
          "is drawn from (batches_follow_data).")
      config = config.copy_and_resolve_references()
      config[key] = int(min(bounds))
  # The reweighting methods only: data parameters' temperatures rank worse when trained
  # longer on small data (measured on the 400-row table at 30% flips: ROC AUC 0.968 after 240
  # steps, 0.803 after 2,000), and keep the config's epochs.
  min_steps = int(config.get("per_step_min_steps", 0))
  if bilevel.get_method(config.method).learns_example_weights and min_steps and \
      not config.get("steps", 0):
    per_epoch = n_train // int(config.batch_size)
    epochs = -(-min_steps // per_epoch)
    if epochs > int(config.epochs):
      log(f"NOTE: epochs raised from {config.epochs} to {epochs}: {per_epoch} steps an epoch, "
          f"and {config.method} needs at least {min_steps} steps to train "
          "(per_step_min_steps).")
      config = config.copy_and_resolve_references()
      config.epochs = epochs
  if config.method == "proximal":
    batch, splits = int(config.batch_size), int(config.proximal.splits)
    if batch % splits:
      # The largest divisor of the batch up to the configured splits, else its smallest one.
      chosen = next((d for d in range(splits, 1, -1) if batch % d == 0), None) or \
          next(d for d in range(2, batch + 1) if batch % d == 0)
      log(f"NOTE: proximal.splits changed from {splits} to {chosen}, a divisor of the batch "
          f"size {batch} (batches_follow_data).")
      config = config.copy_and_resolve_references()
      config.proximal.splits = chosen
  return config


def _check_batches(config, data, reweighting):
  """Batch sizes against the split this data gave (before anything is written)."""
  n_train, n_val = data.n_train, len(data.ds.x_val)
  needs = [("batch_size", config.batch_size, n_train, "training")]
  if n_val and (not reweighting or bilevel.get_method(config.method).uses_clean_batches):
    needs.append(("val_batch_size", config.val_batch_size, n_val, "validation"))
  if n_val and not reweighting and config.pretrain.epochs:
    needs.append(("batch_size", config.batch_size, n_val, "validation (pretraining)"))
  for key, size, n, part in needs:
    if int(size) > n:
      raise ConfigError(f"{key}={size} is larger than the {n} {part} points of this split "
                        f"({data.ds.info.get('split')!r}); lower {key} or use a larger split.")


def _num_steps(config, steps_per_epoch):
  """``config.steps`` when set (the originals that count steps, not epochs), else whole epochs."""
  return int(config.steps) if config.get("steps", 0) else config.epochs * steps_per_epoch


def _plain_config(lr):
  cfg = bilevel.Plain.default_config()
  cfg.lr = lr
  return cfg


class _Data:
  """The data setup both protocols share: the split, its label noise, the augmentation and
  the test evaluation."""

  def __init__(self, config, log, splits=None):
    if splits is not None:
      ds = splits
    elif config.dataset == "custom":
      with datalib.usable(f"custom data ({config.custom.train})"):
        ds = customlib.load(config.custom)
    else:
      ds = datalib.load(config.dataset, source=config.source, data_dir=config.data_dir,
                        split=config.split, tfds_download=config.tfds_download,
                        svhn_rescale=config.svhn_rescale)
    if ds.info.get("scaled"):
      log(f"NOTE: {ds.info['note']}")
    self.ds = ds
    self.y_noisy, self.corrupted = noiselib.apply_noise(
        config.noise_type, ds.y_train, config.noise, ds.num_classes, config.seed,
        as_coded=config.noise_as_coded)
    self.n_train = len(ds.x_train)
    # A user's own labels, not corrupted by the run: nothing to judge a detection against.
    self.has_truth = not (config.dataset == "custom" and float(config.noise) == 0.0)
    labels = (f"{int(self.corrupted.sum())} labels corrupted, {config.noise_type} noise"
              if self.has_truth else "your labels as given: no ground truth, no detection "
              "metrics")
    log(f"{config.dataset} ({ds.info['source']}): train {self.n_train} ({labels}), "
        f"val {len(ds.x_val)}, test {len(ds.x_test)}.")
    if not len(ds.x_test):
      log(f"NOTE: no test set{NO_TEST_HINT.get(config.dataset, '')}: no test accuracy is "
          "measured (results.json holds null).")
    self.augment = augmentlib.AUGMENTATIONS[config.augmentation]
    self.transform = augmentlib.EVAL_TRANSFORMS[config.augmentation]
    self.shape = augmentlib.output_shape(config.augmentation, ds.x_train.shape[1:])
    self.test = metriclib.TestSet(evaluable(ds.x_test, self.transform), ds.y_test,
                                  config.eval_batch_size,
                                  config.batch_size if config.legacy_eval_divisor else None)
    self.config = config

  def build_model(self):
    return models.build(self.config.model, self.shape, self.ds.num_classes)

  def test_accuracy(self, model):
    return self.test.accuracy(model)

  def evaluators(self, model, every, last=None, **context):
    """The config's evaluators this phase can serve (``context``: the fields of
    ``evaluators.Context`` it offers beyond the model and the test set)."""
    names = [e for e in self.config.evaluators if self.has_truth or e != "detection"]
    return evaluatorslib.build(names, evaluatorslib.Context(
        model=model, test=self.test, **context), every, last)


class _Protocol:
  """The phases every importance-learning run shares; the two protocols below fill in what
  differs. By default the baseline trains on the noisy set (+ the validation set) with plain
  Adam, and a classifier is pretrained on the validation set (the penalty paper's protocol)."""

  def __init__(self, config, data, log):
    self.config, self.data, self.log = config, data, log
    self.method_class = bilevel.get_method(config.method)
    self.method_cfg = config[config.method]

  def make_problem(self, model):
    raise NotImplementedError

  def make_baseline(self, model):
    return self._plain(model, self.config.baseline.lr)

  def make_finetuner(self, model):
    """The trainer that fine-tunes the method's model on the clean split: the baseline's."""
    return self.make_baseline(model)

  def _plain(self, model, lr):
    return bilevel.Plain(Classification(model, training=train_mode(self.config)),
                         _plain_config(lr))

  def build(self, setup):
    """Everything stateful, created before the runner restores the checkpoint, inside the
    setup's scope (mirrored variables, the dtype policy)."""
    c = self.config
    with setup.scope():
      self.base_model, self.clf_model, self.retrain_model = (self.data.build_model()
                                                             for _ in range(3))
      self.problem = self.make_problem(self.clf_model)
      self.method = bilevel.build_method(c.method, self.problem, self.method_cfg)
      self.plain = {"baseline": self.make_baseline(self.base_model),
                    "pretrain": self._plain(self.clf_model, c.pretrain.lr),
                    "retrain": self._plain(self.retrain_model, c.retrain.lr)}
      # The extra baselines, built after the method's models (whose initial weights stay
      # those of a run without them); confident learning's folds and retraining share one
      # model and trainer, reset to their initial state before each.
      self.extra_models = {}
      for name in c.baselines.run:
        if name == "oracle" and not self.data.has_truth:
          self.log("[baselines] no oracle: without ground truth it would train on the given "
                   "labels, as the noisy baseline does.")
          continue
        self.extra_models[name] = self.data.build_model()
        self.plain[name] = (self.make_finetuner(self.extra_models[name]) if name == "finetune"
                            else self.make_baseline(self.extra_models[name]))
      if "confident_learning" in self.extra_models:
        self.cl_initial = runnerlib.snapshot(self.extra_models["confident_learning"],
                                             self.plain["confident_learning"])
    notice = models.inactive_layers_notice(self.clf_model, train_mode(c))
    if notice:
      self.log(notice)
    setup.check(self.problem, self.method, *self.plain.values(),
                *(p.problem for p in self.plain.values()))
    return dict(base_model=self.base_model, clf_model=self.clf_model,
                retrain_model=self.retrain_model, importance=self.problem, method=self.method,
                **{f"{k}_opt": v for k, v in self.plain.items()},
                **{f"{k}_model": m for k, m in self.extra_models.items()})

  def phases(self):
    """Every phase this run may execute, in order."""
    names = list(PHASES) + [n for n in ("clean_only", "oracle", "finetune")
                            if n in self.extra_models]
    if "confident_learning" in self.extra_models:
      for variant in CL_VARIANTS:
        names += [f"{variant}_f{k}" for k in range(int(self.config.baselines.folds))]
        names.append(f"{variant}_retrain")
    return tuple(names)

  # -- phases ------------------------------------------------------------------------------

  def plain_phase(self, run_, name, model, x, y, epochs, num_steps=None, augment=None,
                  trainer=None, evaluate=True, on_start=None, steps_per_call=None):
    """Phase ``name``: ``trainer`` (default: ``self.plain[name]``) on (x, y) for ``epochs``
    (or ``num_steps``); the test accuracy at the evaluation cadence when ``evaluate``."""
    c = self.config
    if not (num_steps or epochs):
      run_.run_phase(name, None, None, 0)      # logs that the phase is not part of this run
      return
    batcher = Batcher(x, y, c.batch_size, c.seed, name, augment, self.data.transform)
    opt = self.plain[name] if trainer is None else trainer
    step = bilevel.combined_step(opt.problem, opt)

    evaluators = self.data.evaluators(model, c.eval_every_epochs, epochs) if evaluate else []
    # Without an evaluation or an epoch schedule nothing happens at epoch ends, so a call of
    # several steps need not stop there.
    per_epoch = batcher.steps_per_epoch if evaluators or opt.scheduled_rates() else None
    run_.run_phase(name, step, lambda s: {"train": batcher.epoch_batch(s)},
                   num_steps or epochs * batcher.steps_per_epoch, per_epoch,
                   on_start=on_start, on_epoch_end=opt.end_epoch,   # the baseline's schedule
                   steps_per_call=steps_per_call, evaluators=evaluators)

  def with_val(self, x, y):
    """(x, y) plus the validation split when the noisy baseline trains with it."""
    d = self.data
    if not self.config.baseline.include_val:
      return x, y
    return np.concatenate([x, d.ds.x_val]), np.concatenate([y, d.ds.y_val])

  def train_like_baseline(self, run_, name, model, x, y, **kw):
    """Phase ``name``: (x, y) with the noisy baseline's trainer and schedule."""
    self.plain_phase(run_, name, model, x, y, self.config.baseline.epochs, **kw)

  def baseline_phase(self, run_):
    d = self.data
    x, y = self.with_val(d.ds.x_train, d.y_noisy)
    self.train_like_baseline(run_, "baseline", self.base_model, x, y)

  def pretrain_phase(self, run_):
    c, d = self.config, self.data
    self.plain_phase(run_, "pretrain", self.clf_model, d.ds.x_val, d.ds.y_val,
                     c.pretrain.epochs)

  def batches(self, train_b):
    """The bilevel phase's batch function: a noisy batch and a clean one."""
    c, d = self.config, self.data
    val_b = Batcher(d.ds.x_val, d.ds.y_val, c.val_batch_size, c.seed, "bilevel_val",
                    d.augment, d.transform)
    return lambda s: {"train": train_b.epoch_batch(s), "val": val_b.random_batch(s)}

  def on_bilevel_start(self, run_):
    pass

  def end_bilevel_epoch(self):
    pass

  def bilevel_phase(self, run_):
    c, d = self.config, self.data
    train_b = Batcher(d.ds.x_train, d.y_noisy, c.batch_size, c.seed, "bilevel_train",
                      d.augment, d.transform)
    batch_fn = self.batches(train_b)

    def epoch_end(epoch):
      self.method.end_epoch(epoch)   # the method's epoch schedule (ApproxGrad: x0.5 every 20)
      self.end_bilevel_epoch()

    evaluators = d.evaluators(self.clf_model, c.eval_every_epochs, c.epochs,
                              scores=self.problem.scores, corrupted=d.corrupted,
                              scores_name=("example_weights"
                                           if self.method_class.learns_example_weights
                                           else "importances"),
                              threshold=self.problem.detection_threshold)
    run_.run_phase("bilevel", bilevel.combined_step(self.problem, self.method), batch_fn,
                   _num_steps(c, train_b.steps_per_epoch), train_b.steps_per_epoch,
                   on_start=lambda: self.on_bilevel_start(run_), on_epoch_end=epoch_end,
                   evaluators=evaluators)

  def finish(self, run_, results):
    """After the bilevel phase (the penalty paper's retraining)."""

  def final_model(self):
    """The model the method's row reports: the retrained one, where the protocol retrains."""
    return self.clf_model

  def extra_baselines(self, run_):
    """The baselines of ``config.baselines.run``, trained after the method: {name: row}."""
    c, d = self.config, self.data
    per_call = int(c.baselines.steps_per_call)
    rows = {}
    has_val = len(d.ds.x_val) > 0
    for name in ("clean_only", "oracle"):
      if name not in self.extra_models or (name == "clean_only" and not has_val):
        continue
      model = self.extra_models[name]
      steps = {}
      if name == "clean_only":
        x, y = d.ds.x_val, d.ds.y_val
        # The official L2RW CIFAR "clean only": 2,000 steps (0: the baseline's schedule).
        if int(c.baselines.get("clean_only_steps", 0)):
          steps = {"num_steps": int(c.baselines.clean_only_steps)}
      else:     # the ceiling: the training set's true labels
        x, y = self.with_val(d.ds.x_train, d.ds.y_train)
      self.train_like_baseline(run_, name, model, x, y, evaluate=False,
                               steps_per_call=per_call, **steps)
      rows[name] = {"test_accuracy": d.test_accuracy(model), "train_points": len(y)}
    if "finetune" in self.extra_models and has_val:
      # The method's final model, fine-tuned on the clean split (L2RW's --finetune).
      model, source = self.extra_models["finetune"], self.final_model()
      self.plain_phase(run_, "finetune", model, d.ds.x_val, d.ds.y_val, 0,
                       num_steps=int(c.baselines.finetune_steps), augment=d.augment,
                       evaluate=False, steps_per_call=per_call,
                       on_start=lambda: model.set_weights(source.get_weights()))
      rows["finetune"] = {"test_accuracy": d.test_accuracy(model), "train_points": len(d.ds.y_val)}
    if "confident_learning" in self.extra_models:
      for variant in CL_VARIANTS[:2 if has_val else 1]:
        rows[variant] = self.confident_learning(run_, variant, per_call)
    if not has_val and self.extra_models:
      self.log("[baselines] the split holds no validation images: no clean-only baseline and "
               "no confident learning with trusted folds.")
    return rows

  def confident_learning(self, run_, variant, per_call):
    """cleanlab on K-fold out-of-sample probabilities of the run's model (``variant``
    "confident_learning_trusted": the validation split added to every fold's training data),
    then the model retrained on the points kept (+ validation). Every fold's probabilities
    and the variant's outcome are cached, so a resumed run redoes nothing finished."""
    c, d = self.config, self.data
    model, trainer = self.extra_models["confident_learning"], self.plain["confident_learning"]
    trusted = variant.endswith("_trusted")
    folder = run_.workdir / "confident_learning"
    reset = lambda: runnerlib.restore(self.cl_initial)  # noqa: E731

    def add_val(x, y):
      return (np.concatenate([x, d.ds.x_val]), np.concatenate([y, d.ds.y_val])) if trusted \
          else (x, y)

    def fit_predict(k, train_rows, held_rows):
      def compute():
        x, y = add_val(d.ds.x_train[train_rows], d.y_noisy[train_rows])
        self.train_like_baseline(run_, f"{variant}_f{k}", model, x, y, trainer=trainer,
                                 evaluate=False, on_start=reset, steps_per_call=per_call)
        held = evaluable(d.ds.x_train[held_rows], d.transform)
        return {"probs": metriclib.probabilities(model, held, c.eval_batch_size)}
      folds = records.Sweep(lambda k: folder / f"{variant}_f{k}.npz")
      return folds.run(k, compute)[0]["probs"]

    def compute():
      probs = confident.out_of_sample_probabilities(d.y_noisy, d.ds.num_classes,
                                                    c.baselines.folds, c.seed, fit_predict)
      flagged, quality = confident.label_issues(d.y_noisy, probs)
      # Both variants retrain on the points kept plus the validation split.
      x = np.concatenate([d.ds.x_train[~flagged], d.ds.x_val])
      y = np.concatenate([d.y_noisy[~flagged], d.ds.y_val])
      self.train_like_baseline(run_, f"{variant}_retrain", model, x, y, trainer=trainer,
                               evaluate=False, on_start=reset, steps_per_call=per_call)
      return {"quality": quality, "flagged": flagged,
              "test_accuracy": np.float64(d.test_accuracy(model))}

    out = records.Sweep(lambda v: folder / f"{v}.npz").run(variant, compute)[0]
    quality, flagged = out["quality"], out["flagged"].astype(bool)
    return {"test_accuracy": float(out["test_accuracy"]),
            "train_points": int((~flagged).sum()) + len(d.ds.x_val),
            "detection": (metriclib.detection(quality, d.corrupted, flagged=flagged)
                          if d.has_truth else None),
            "scores": quality, "flags": flagged}


class ImportanceVariables(_Protocol):
  """The penalty paper's protocol: an importance per training point, learned as the outer
  variable of a bilevel method (penalty, ApproxGrad, GD, RMD) after pretraining on the
  validation set; then retraining on the confident points."""

  def make_problem(self, model):
    c = self.config
    return ImportanceProblem(model, self.data.n_train, c.batch_size, train_mode(c),
                             c.per_example_state)

  def on_bilevel_start(self, run_):
    c, d = self.config, self.data
    pred = metriclib.predict(self.clf_model, evaluable(d.ds.x_train, d.transform),
                             c.eval_batch_size)
    if c.importance_init.legacy_scalar_argmax:
      # The original before May 2020 compared predictions with np.argmax(Y_onehot) without an
      # axis: a scalar, the label of training point 0.
      agree = pred == d.y_noisy[0]
    else:
      agree = pred == d.y_noisy
    self.problem.set_importances(np.where(agree, c.importance_init.a_hi,
                                          c.importance_init.a_lo))
    # Where the bilevel epochs start from (the detection study compares the two).
    records.save_npy(run_.workdir / "importances_init.npy", self.problem.scores())
    self.log(f"[bilevel] importances initialised: {int(agree.sum())} of {d.n_train} points "
             "agree with the pretrained classifier.")

  def end_bilevel_epoch(self):
    self.problem.renormalise()

  def final_model(self):
    return self.retrain_model if self.config.retrain.enabled else self.clf_model

  def finish(self, run_, results):
    # Small-scale protocol: retrain on the confident points plus the validation set.
    c, d = self.config, self.data
    if not c.retrain.enabled:
      return
    keep = self.problem.scores() > c.retrain.threshold
    if not keep.any():
      self.log(f"[retrain] WARNING: no importance is above retrain.threshold="
               f"{c.retrain.threshold}: the retraining uses the validation split alone. "
               "Lower the threshold (importances moved by a small penalty.lr_u stay near their "
               "initial values).")
    results["retrain_selected"] = int(keep.sum())
    results["retrain_selected_corrupted"] = int((keep & d.corrupted).sum())
    x = np.concatenate([d.ds.x_train[keep], d.ds.x_val])
    y = np.concatenate([d.y_noisy[keep], d.ds.y_val])
    self.plain_phase(run_, "retrain", self.retrain_model, x, y, c.retrain.epochs)
    results["retrained_test_accuracy"] = d.test_accuracy(self.retrain_model)


class PerStepReweighting(_Protocol):
  """The reweighting papers' protocol: example weights computed at every step from the
  batches (L2RW with a clean batch, proximal reweighting from splits of the noisy batch, the
  fixed rules); no pretraining, no importance variables, no retraining. The baseline is the
  method's own training with uniform weights: its optimiser, schedule, batches and
  augmentation, no clean data (the originals' ``--baseline`` and StandardTrainer)."""

  def make_problem(self, model):
    c = self.config
    return ExampleReweighting(model, c.batch_size, c.weight_decay, train_mode(c),
                              num_train=self.data.n_train)

  def make_baseline(self, model, cfg=None):
    """Uniform weights with the method's optimiser and schedule (or ``cfg``)."""
    c = self.config
    cfg = cfg or self._uniform_config()
    return bilevel.UniformWeights(ExampleReweighting(model, c.batch_size, c.weight_decay,
                                                     train_mode(c)), cfg)

  def _uniform_config(self):
    cfg = bilevel.UniformWeights.default_config()
    cfg.update({k: self.method_cfg[k] for k in cfg if k in self.method_cfg and k != "rule"})
    return cfg

  def make_finetuner(self, model):
    """Uniform weights at the method's final learning rate (the schedule's end), no further
    schedule: the reference does not say which rate the official --finetune resumes with."""
    cfg = self._uniform_config()
    cfg.lr = float(cfg.lr) * float(cfg.lr_boundaries_factor) ** len(cfg.lr_boundaries_steps)
    cfg.lr_boundaries_steps = ()
    cfg.lr_decay_every_epochs = 0
    return self.make_baseline(model, cfg)

  def with_val(self, x, y):
    return x, y        # the reweighting baselines never see the clean set

  def train_like_baseline(self, run_, name, model, x, y, num_steps=None, **kw):
    c = self.config
    self.plain_phase(run_, name, model, x, y, c.epochs,
                     num_steps or _num_steps(c, len(x) // c.batch_size),
                     augment=self.data.augment, **kw)

  def pretrain_phase(self, run_):
    run_.run_phase("pretrain", None, None, 0)

  def batches(self, train_b):
    if self.method_class.uses_clean_batches:
      return super().batches(train_b)
    # Proximal reweighting: splits with identical label multisets, split 0 validates.
    c = self.config
    sampler = ClassMatchedSampler(self.data.y_noisy, self.method_cfg.splits,
                                  self.method.split_size, c.seed)
    return lambda s: {"train": train_b.indexed_batch(sampler.batch_indices(s), s)}


class TrustedTemperatures(TemperatureScaledClassification):
  """The data-parameters loss, with each training point's trust 1 / sigma_i as its score
  (low = suspicious: a point whose label the model cannot fit raises its temperature to
  flatten its softmax), flagged below the initial 1 / sigma."""

  def __init__(self, model, data_params, training, init_inst_param):
    super().__init__(model, data_params, training)
    self.init_inst_param = float(init_inst_param)

  def scores(self):
    dp = self.data_params
    return np.exp(-dp.inst_parameters.numpy().astype(np.float64))

  @property
  def detection_threshold(self):
    return 1.0 / float(self.init_inst_param)


class DataParameterRun(PerStepReweighting):
  """Data parameters (Saxena et al.): the model and a temperature per training point (and
  per class, if learned) descend the temperature-scaled loss together, on the noisy set
  alone. As for the per-step methods, no pretraining and no retraining; the baseline is the
  same training without temperatures (uniform weights, the method's rate and momentum)."""

  def make_problem(self, model):
    c, d = self.config, self.data
    cfg = self.method_cfg.data_params
    self.data_params = DataParameters.from_config(cfg, d.ds.num_classes, d.n_train)
    return TrustedTemperatures(model, self.data_params, train_mode(c), cfg.init_inst_param)

  def build(self, setup):
    state = super().build(setup)
    state["data_params"] = self.data_params
    return state

  def batches(self, train_b):
    return lambda s: {"train": train_b.epoch_batch(s)}


def run(config, workdir, log=print, splits=None):
  """Run the whole protocol (resuming from ``workdir``) and return the results dict.

  ``splits``: the data as a ``Splits`` in memory (``importance_learning.api``), instead of
  the files the config names."""
  validate(config, splits)
  t_start = time.time()
  # First, before TensorFlow starts: a CPU split into logical devices must happen now.
  setup = runnerlib.Setup(config.runner)
  for key in ("batch_size", "val_batch_size"):
    setup.check_batch_size(key, config[key])
  setup.log_replicas(log)
  keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()

  data = _Data(config, log, splits)
  method_class = bilevel.get_method(config.method)
  reweighting = per_step(config.method)
  if reweighting and method_class.uses_clean_batches and len(data.ds.x_val) == 0:
    raise ConfigError(f"method {config.method!r} needs clean validation batches, but split "
                      f"{data.ds.info['split']!r} holds no validation images; choose another "
                      "split.")
  config = fit_batches_to_data(config, data, reweighting, log)
  _check_batches(config, data, reweighting)
  if config.get("dropout_in_training"):
    log("NOTE: dropout_in_training is the old name of train_mode_layers; it still works.")
  protocol_class = (DataParameterRun if config.method == "data_parameters" else
                    PerStepReweighting if method_class.learns_example_weights
                    else ImportanceVariables)
  protocol = protocol_class(config, data, log)
  state = protocol.build(setup)
  run_ = runnerlib.Runner(workdir, config.runner, state, protocol.phases(), run_config=config,
                          log=log, setup=setup)

  # 1. Baseline: the same classifier trained on the noisy data.
  if config.baseline.enabled:
    protocol.baseline_phase(run_)
  # 2. Pretrain the bilevel classifier on the clean validation set.
  protocol.pretrain_phase(run_)
  # 3. Bilevel importance learning, or per-step reweighting.
  protocol.bilevel_phase(run_)

  problem, corrupted, truth = protocol.problem, data.corrupted, data.has_truth
  a = problem.scores()
  results = {
      "dataset": config.dataset, "method": config.method, "noise": config.noise,
      "model": config.model, "data": data.ds.info,
      "num_corrupted": int(corrupted.sum()) if truth else None,
      "bilevel_model_test_accuracy": data.test_accuracy(protocol.clf_model),
      "detection": (metriclib.detection(a, corrupted, problem.detection_threshold)
                    if truth else None),
      "detection_threshold": problem.detection_threshold,
      "mean_importance_clean": (float(a[~corrupted].mean())
                                if truth and (~corrupted).any() else None),
      "mean_importance_corrupted": float(a[corrupted].mean()) if corrupted.any() else None,
  }
  # 4. The penalty paper's small-scale protocol retrains on the confident points; the
  # reweighting methods' own protocols end with their model.
  protocol.finish(run_, results)
  # 5. The baselines a user would try first (after the method: its numbers do not move).
  extra = protocol.extra_baselines(run_)

  if config.baseline.enabled:
    results["baseline_test_accuracy"] = data.test_accuracy(protocol.base_model)
  results["baselines"] = {name: {k: v for k, v in row.items() if k not in ("scores", "flags")}
                          for name, row in extra.items()}
  for name, row in extra.items():
    if "scores" in row:     # confident learning's label-quality score (low = corrupted)
      records.save_npy(run_.workdir / f"{name}_quality.npy", row["scores"])
  results["method_test_accuracy"] = results.get("retrained_test_accuracy",
                                                results["bilevel_model_test_accuracy"])
  results["warnings"] = _warnings(results, data.ds.num_classes)
  results["wall_seconds_this_invocation"] = time.time() - t_start
  # Learned importances, or for per-step reweighting each point's mean weight over the run
  # (x batch size; 1 = uniform).
  records.save_npy(run_.workdir / "importances.npy", a)
  records.save_npy(run_.workdir / "corrupted.npy", corrupted)   # which labels the noise changed
  results["label_issues"] = _write_label_issues(config, data, protocol, run_.workdir, extra,
                                                log)
  plots.importance_figure(
      run_.workdir / "importances.png", a, corrupted if truth else None,
      plots.epoch_curves(run_.metrics_path),
      title=f"{config.dataset}, {config.noise:.0%} noise, {config.method}")
  run_.write_results(results, summary(results))
  return results


def _warnings(results, num_classes):
  """One line for each way the method's final model fails its user: at or below chance, or
  below the noisy baseline it is meant to beat."""
  out = []
  acc, chance = results["method_test_accuracy"], 1.0 / num_classes
  if acc <= chance:
    out.append(f"the {results['method']} model's test accuracy {acc:.4f} is at or below chance "
               f"({chance:.4f} for {num_classes} classes): it did not learn; try more epochs "
               "or another learning rate.")
  base = results.get("baseline_test_accuracy")
  if base is not None and acc < base:
    out.append(f"the {results['method']} model's test accuracy {acc:.4f} is below the noisy "
               f"baseline's {base:.4f}: on this data the baseline is the better model.")
  return out


def training_data(config, splits=None):
  """The training set a run of ``config`` trains on (``.ds``: the split; ``.y_noisy``,
  ``.corrupted``: the labels after the config's noise), read the way ``run`` reads it."""
  return _Data(config, lambda *a, **k: None, splits)


def _write_label_issues(config, data, protocol, workdir, extra, log):
  """label_issues.csv (every training point ranked by ``label_issues.choose``'s ranking of the
  run's scores, each score a column, with the label the final classifier suggests) and, for
  images, the contact sheet label_issues.png; returns what results.json says of it."""
  model = protocol.final_model()
  ds = data.ds
  probs = metriclib.probabilities(model, evaluable(ds.x_train, data.transform),
                                  config.eval_batch_size)
  problem = protocol.problem
  method_score = problem.scores()
  confident = {name: (row["scores"], row["flags"]) for name, row in extra.items()
               if "flags" in row}
  offered = label_issues.rankings(config.method, method_score,
                                  method_score <= problem.detection_threshold, confident)
  name = label_issues.choose(offered, config.get("label_issues_ranking", "auto"),
                             config.method, log, per_step(config.method))
  score, flags = offered[name]
  columns = {n: offered[n][0] for n in (config.method, *confident)}
  label_issues.write(workdir, score, data.y_noisy, probs, ds.class_names, None,
                     images=ds.x_train, ids=ds.train_ids,
                     true_labels=ds.y_train if config.noise > 0 else None,
                     title=f"{config.dataset}: the run's most suspicious labels, by {name} "
                           "(given -> suggested)", flagged=flags, columns=columns)
  return {"path": str(workdir / "label_issues.csv"), "ranked_by": name,
          "flagged": int(flags.sum()), "columns": list(columns)}


BASELINE_LABELS = {
    "clean_only": "clean validation split only",
    "oracle": "oracle: true training labels (ceiling)",
    "confident_learning": "confident learning (cleanlab), retrained on kept + val",
    "confident_learning_trusted": "confident learning, val in every fold, retrained",
    "finetune": "the method's model fine-tuned on the clean split",
}


# Where a run without a test set gets one.
NO_TEST_HINT = {"custom": " (give custom.test, or custom.test_fraction > 0 to hold out part of "
                          "custom.train)"}


def summary(results):
  """The tables printed at the end of a run: test accuracy of the method and of every
  baseline, then how well each corruption score finds the corrupted labels."""
  method, extra = results["method"], results.get("baselines", {})
  rows = []
  if "baseline_test_accuracy" in results:
    rows.append({"what": "baseline: train on noisy data", "acc": results["baseline_test_accuracy"]})
  for name in ("clean_only", "oracle", "confident_learning", "confident_learning_trusted",
               "finetune"):
    if name in extra:
      rows.append({"what": BASELINE_LABELS[name], "acc": extra[name]["test_accuracy"]})
  rows.append({"what": f"{method} (bilevel classifier)",
               "acc": results["bilevel_model_test_accuracy"]})
  if "retrained_test_accuracy" in results:
    rows.append({"what": f"{method} (retrained on a > threshold)",
                 "acc": results["retrained_test_accuracy"]})
  if not results["data"].get("actual", {}).get("test", 1):
    table = (f"no test set{NO_TEST_HINT.get(results.get('dataset'), '')}: no test accuracy "
             f"for the {len(rows)} models.")
  else:
    table = records.summary_table(rows, [("what", "model"), ("acc", "test accuracy")])
  for line in results.get("warnings", ()):
    table += f"\nWARNING: {line}"
  issues = results.get("label_issues")
  where = (f"\n\nlabel issues: {issues['path']} ({issues['flagged']} flagged, ranked by "
           f"{issues['ranked_by']})") if issues else ""
  if results["detection"] is None:
    return (f"{table}\n\nno ground truth (your labels as given): no detection metrics; the "
            f"ranking of your labels is the output.{where}")
  detectors = [(f"{method} (weight <= {results['detection_threshold']:g})",
                results["detection"])]
  for name in ("confident_learning", "confident_learning_trusted"):
    if name in extra:
      label = "confident learning" + (", val in folds" if name.endswith("trusted") else "")
      detectors.append((f"{label} (cleanlab flags)", extra[name]["detection"]))
  det_rows = [{"what": what, **d} for what, d in detectors]
  det_table = records.summary_table(det_rows, [
      ("what", "corruption score"), ("flagged", "flagged"), ("precision", "precision"),
      ("recall", "recall"), ("f1", "F1"), ("roc_auc", "ROC AUC"),
      ("average_precision", "avg precision")])
  corrupted = results["detection"]["corrupted"]
  return f"{table}\n\nnoisy-point detection ({corrupted} corrupted labels):\n{det_table}{where}"
