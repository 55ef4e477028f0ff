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
from common import config_checks
from common import data as datalib
from common import metrics as metriclib
from common import models
from common import plots
from common import runner as runnerlib
from common import records
from common.errors import ConfigError
from common.data import augment as augmentlib
from common.data import noise as noiselib
from common.data.batching import Batcher, evaluable
from common.data.sampling import ClassMatchedSampler
from common.problems import Classification, ExampleReweighting
from common.problems import ImportanceProblem

PHASES = ("baseline", "pretrain", "bilevel", "retrain")


def validate(config):
  """Fail fast, before any data is read or any file written, on a bad config."""
  config_checks.validated(_validate, config)


def _validate(config):
  config_checks.check_data_and_model(config)
  method = bilevel.get_method(config.method)
  usable = sorted(n for n, m in bilevel.METHODS.items()
                  if (m.needs_outer_variables or m.learns_example_weights) and n in config)
  if not (method.needs_outer_variables or method.learns_example_weights):
    raise ValueError(f"method {config.method!r} learns no importances (the plain baseline runs "
                     f"in every experiment anyway); choose one of {usable}.")
  if config.method not in config:
    raise ValueError(f"the config has no block '{config.method}' for method {config.method!r}; "
                     f"methods with a block in this config: {usable}.")
  a_lo, a_hi = config.importance_init.a_lo, config.importance_init.a_hi
  if not (0.0 < a_lo < 1.0 and 0.0 < a_hi < 1.0):
    raise ValueError(f"importance_init a_lo and a_hi must lie in (0, 1), got {a_lo}, {a_hi}.")
  for key in ("batch_size", "val_batch_size", "epochs"):
    if int(config[key]) < 1:
      raise ValueError(f"{key} must be >= 1, got {config[key]}.")


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

  def __init__(self, config, log):
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
    log(f"{config.dataset} ({ds.info['source']}): train {self.n_train} "
        f"({int(self.corrupted.sum())} labels corrupted, {config.noise_type} noise), "
        f"val {len(ds.x_val)}, test {len(ds.x_test)}.")
    self.augment = augmentlib.AUGMENTATIONS[config.augmentation]
    self.transform = augmentlib.EVAL_TRANSFORMS[config.augmentation]
    self.shape = augmentlib.output_shape(config.augmentation, ds.x_train.shape[1:])
    self.x_test_eval = evaluable(ds.x_test, self.transform)
    self.config = config

  def build_model(self):
    return models.build(self.config.model, self.shape, self.ds.num_classes)

  def test_accuracy(self, model):
    c = self.config
    return metriclib.accuracy(model, self.x_test_eval, self.ds.y_test, c.eval_batch_size,
                              c.batch_size if c.legacy_eval_divisor else None)


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

  def _plain(self, model, lr):
    return bilevel.Plain(Classification(model, training=self.config.dropout_in_training),
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
    setup.check(self.problem, self.method, *self.plain.values(),
                *(p.problem for p in self.plain.values()))
    return dict(base_model=self.base_model, clf_model=self.clf_model,
                retrain_model=self.retrain_model, importance=self.problem, method=self.method,
                **{f"{k}_opt": v for k, v in self.plain.items()})

  # -- phases ------------------------------------------------------------------------------

  def plain_phase(self, run_, name, model, x, y, epochs, num_steps=None, augment=None):
    c = self.config
    if not (num_steps or epochs):
      run_.run_phase(name, None, None, 0)      # logs that the phase is not part of this run
      return
    batcher = Batcher(x, y, c.batch_size, c.seed, name, augment, self.data.transform)
    opt = self.plain[name]
    step = bilevel.combined_step(opt.problem, opt)

    def epoch_end(e):
      opt.end_epoch(e)     # the reweighting baseline's schedule; Plain has none
      if e % c.eval_every_epochs == 0 or e == epochs:
        return {"test_accuracy": self.data.test_accuracy(model)}
      return None

    run_.run_phase(name, step, lambda s: {"train": batcher.epoch_batch(s)},
                   num_steps or epochs * batcher.steps_per_epoch, batcher.steps_per_epoch,
                   on_epoch_end=epoch_end)

  def baseline_phase(self, run_):
    c, d = self.config, self.data
    include_val = c.baseline.include_val
    x = np.concatenate([d.ds.x_train, d.ds.x_val]) if include_val else d.ds.x_train
    y = np.concatenate([d.y_noisy, d.ds.y_val]) if include_val else d.y_noisy
    self.plain_phase(run_, "baseline", self.base_model, x, y, c.baseline.epochs)

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

  def on_bilevel_start(self):
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
      a = self.problem.scores()
      out = {"mean_importance": float(a.mean()), "frac_above_0.1": float(np.mean(a > 0.1))}
      if epoch % c.eval_every_epochs == 0 or epoch == c.epochs:
        out["test_accuracy"] = d.test_accuracy(self.clf_model)
      det = metriclib.detection(a, d.corrupted, self.problem.detection_threshold)
      out.update({f"detect_{k}": det[k] for k in ("precision", "recall", "roc_auc")})
      return out

    run_.run_phase("bilevel", bilevel.combined_step(self.problem, self.method), batch_fn,
                   _num_steps(c, train_b.steps_per_epoch), train_b.steps_per_epoch,
                   on_start=self.on_bilevel_start, on_epoch_end=epoch_end)

  def finish(self, run_, results):
    """After the bilevel phase (the penalty paper's retraining)."""


class ImportanceVariables(_Protocol):
  """The penalty paper's protocol: an importance per training point, learned as the outer
  variable of a bilevel method (penalty, ApproxGrad, GD, RMD) after pretraining on the
  validation set; then retraining on the confident points."""

  def make_problem(self, model):
    c = self.config
    return ImportanceProblem(model, self.data.n_train, c.batch_size, c.dropout_in_training,
                             c.per_example_state)

  def on_bilevel_start(self):
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
    self.log(f"[bilevel] importances initialised: {int(agree.sum())} of {d.n_train} points "
             "agree with the pretrained classifier.")

  def end_bilevel_epoch(self):
    self.problem.renormalise()

  def finish(self, run_, results):
    # Small-scale protocol: retrain on the confident points plus the validation set.
    c, d = self.config, self.data
    if not c.retrain.enabled:
      return
    keep = self.problem.scores() > c.retrain.threshold
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
    return ExampleReweighting(model, c.batch_size, c.weight_decay, c.dropout_in_training,
                              num_train=self.data.n_train)

  def make_baseline(self, model):
    c = self.config
    uniform_cfg = bilevel.UniformWeights.default_config()
    uniform_cfg.update({k: self.method_cfg[k] for k in uniform_cfg
                        if k in self.method_cfg and k != "rule"})
    return bilevel.UniformWeights(ExampleReweighting(model, c.batch_size, c.weight_decay,
                                                     c.dropout_in_training), uniform_cfg)

  def baseline_phase(self, run_):
    c, d = self.config, self.data
    self.plain_phase(run_, "baseline", self.base_model, d.ds.x_train, d.y_noisy, c.epochs,
                     _num_steps(c, len(d.ds.x_train) // c.batch_size), augment=d.augment)

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


def run(config, workdir, log=print):
  """Run the whole protocol (resuming from ``workdir``) and return the results dict."""
  validate(config)
  t_start = time.time()
  # First, before TensorFlow starts: a CPU split into logical devices must happen now.
  setup = runnerlib.Setup(config.runner)
  for key in ("batch_size", "val_batch_size"):
    setup.check_batch_size(key, config[key])
  if setup.num_replicas > 1:
    log(f"Data-parallel over {setup.num_replicas} replicas "
        f"({type(setup.strategy).__name__}); precision {setup.precision}.")
  keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()

  data = _Data(config, log)
  method_class = bilevel.get_method(config.method)
  reweighting = method_class.learns_example_weights
  if reweighting and method_class.uses_clean_batches and len(data.ds.x_val) == 0:
    raise ConfigError(f"method {config.method!r} needs clean validation batches, but split "
                      f"{data.ds.info['split']!r} holds no validation images; choose another "
                      "split.")
  protocol = (PerStepReweighting if reweighting else ImportanceVariables)(config, data, log)
  state = protocol.build(setup)
  run_ = runnerlib.Runner(workdir, config.runner, state, PHASES, run_config=config, log=log,
                          setup=setup)

  # 1. Baseline: the same classifier trained on the noisy data.
  if config.baseline.enabled:
    protocol.baseline_phase(run_)
  # 2. Pretrain the bilevel classifier on the clean validation set.
  protocol.pretrain_phase(run_)
  # 3. Bilevel importance learning, or per-step reweighting.
  protocol.bilevel_phase(run_)

  problem, corrupted = protocol.problem, data.corrupted
  a = problem.scores()
  results = {
      "dataset": config.dataset, "method": config.method, "noise": config.noise,
      "model": config.model, "data": data.ds.info,
      "num_corrupted": int(corrupted.sum()),
      "bilevel_model_test_accuracy": data.test_accuracy(protocol.clf_model),
      "detection": metriclib.detection(a, corrupted, problem.detection_threshold),
      "detection_threshold": problem.detection_threshold,
      "mean_importance_clean": float(a[~corrupted].mean()) if (~corrupted).any() else None,
      "mean_importance_corrupted": float(a[corrupted].mean()) if corrupted.any() else None,
  }
  # 4. The penalty paper's small-scale protocol retrains on the confident points; the
  # reweighting methods' own protocols end with their model.
  protocol.finish(run_, results)

  if config.baseline.enabled:
    results["baseline_test_accuracy"] = data.test_accuracy(protocol.base_model)
  results["method_test_accuracy"] = results.get("retrained_test_accuracy",
                                                results["bilevel_model_test_accuracy"])
  results["wall_seconds_this_invocation"] = time.time() - t_start
  # Learned importances, or for per-step reweighting the last weight x batch size per point.
  records.save_npy(run_.workdir / "importances.npy", a)
  plots.importance_figure(
      run_.workdir / "importances.png", a, corrupted,
      plots.epoch_curves(run_.metrics_path),
      title=f"{config.dataset}, {config.noise:.0%} noise, {config.method}")
  run_.write_results(results)
  return results


def summary(results):
  """The short table printed at the end of a run."""
  det = results["detection"]
  rows = []
  if "baseline_test_accuracy" in results:
    rows.append({"what": "baseline (train on noisy data)",
                 "acc": results["baseline_test_accuracy"]})
  rows.append({"what": f"{results['method']} (bilevel classifier)",
               "acc": results["bilevel_model_test_accuracy"]})
  if "retrained_test_accuracy" in results:
    rows.append({"what": f"{results['method']} (retrained on a > threshold)",
                 "acc": results["retrained_test_accuracy"]})
  table = records.summary_table(rows, [("what", "model"), ("acc", "test accuracy")])
  flag = f"weight <= {results['detection_threshold']:g}"
  return (f"{table}\n\nnoisy-point detection ({flag} flags a point): precision "
          f"{det['precision']:.4f}, recall {det['recall']:.4f}, ROC AUC {det['roc_auc']:.4f} "
          f"({det['corrupted']} corrupted, {det['flagged']} flagged)")
