"""The importance-learning protocol of the penalty paper, phase by phase.

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

  ds = datalib.load(config.dataset, source=config.source, data_dir=config.data_dir,
                    split=config.split, tfds_download=config.tfds_download,
                    svhn_rescale=config.svhn_rescale)
  if ds.info.get("scaled"):
    log(f"NOTE: {ds.info['note']}")
  y_noisy, corrupted = noiselib.apply_noise(config.noise_type, ds.y_train, config.noise,
                                            ds.num_classes, config.seed,
                                            as_coded=config.noise_as_coded)
  n_train = len(ds.x_train)
  log(f"{config.dataset} ({ds.info['source']}): train {n_train} ({int(corrupted.sum())} "
      f"labels corrupted, {config.noise_type} noise), val {len(ds.x_val)}, "
      f"test {len(ds.x_test)}.")

  augment = augmentlib.AUGMENTATIONS[config.augmentation]
  transform = augmentlib.EVAL_TRANSFORMS[config.augmentation]
  shape = augmentlib.output_shape(config.augmentation, ds.x_train.shape[1:])
  build = lambda: models.build(config.model, shape, ds.num_classes)
  method_class = bilevel.get_method(config.method)
  method_cfg = config[config.method]
  reweighting = method_class.learns_example_weights
  if reweighting and method_class.uses_clean_batches and len(ds.x_val) == 0:
    raise ConfigError(f"method {config.method!r} needs clean validation batches, but split "
                      f"{ds.info['split']!r} holds no validation images; choose another split.")

  x_test_eval = evaluable(ds.x_test, transform)

  # Everything stateful is created before the runner restores the checkpoint, inside the
  # setup's scope (mirrored variables, the dtype policy).
  with setup.scope():
    base_model, clf_model, retrain_model = build(), build(), build()
    if reweighting:
      # Weights come from each step's batches: no pretraining, no importance variables.
      imp = ExampleReweighting(clf_model, config.batch_size, config.weight_decay,
                               config.dropout_in_training, num_train=n_train)
    else:
      imp = ImportanceProblem(clf_model, n_train, config.batch_size, config.dropout_in_training,
                              config.per_example_state)
    method = bilevel.build_method(config.method, imp, method_cfg)
    include_val = config.baseline.include_val and not reweighting
    baseline_x = np.concatenate([ds.x_train, ds.x_val]) if include_val else ds.x_train
    baseline_y = np.concatenate([y_noisy, ds.y_val]) if include_val else y_noisy
    plain = {}
    for name, model, lr in (("baseline", base_model, config.baseline.lr),
                            ("pretrain", clf_model, config.pretrain.lr),
                            ("retrain", retrain_model, config.retrain.lr)):
      plain[name] = bilevel.Plain(Classification(model, training=config.dropout_in_training),
                                  _plain_config(lr))
    if reweighting:
      # The reweighting method's own training with uniform weights.
      uniform_cfg = bilevel.UniformWeights.default_config()
      uniform_cfg.update({k: method_cfg[k] for k in uniform_cfg if k in method_cfg and k != "rule"})
      plain["baseline"] = bilevel.UniformWeights(
          ExampleReweighting(base_model, config.batch_size, config.weight_decay,
                             config.dropout_in_training), uniform_cfg)
  setup.check(imp, method, *plain.values(), *(p.problem for p in plain.values()))
  state = dict(base_model=base_model, clf_model=clf_model, retrain_model=retrain_model,
               importance=imp, method=method, **{f"{k}_opt": v for k, v in plain.items()})
  run_ = runnerlib.Runner(workdir, config.runner, state, PHASES, run_config=config, log=log,
                          setup=setup)

  def test_acc(model):
    return metriclib.accuracy(model, x_test_eval, ds.y_test, config.eval_batch_size,
                              config.batch_size if config.legacy_eval_divisor else None)

  def plain_phase(name, model, x, y, epochs, num_steps=None):
    if not (num_steps or epochs):
      run_.run_phase(name, None, None, 0)      # logs that the phase is not part of this run
      return
    reweighted_baseline = reweighting and name == "baseline"
    batcher = Batcher(x, y, config.batch_size, config.seed, name,
                       augment if reweighted_baseline else None, transform)
    step = bilevel.combined_step(plain[name].problem, plain[name])

    def epoch_end(e):
      plain[name].end_epoch(e)     # the reweighting baseline's schedule; Plain has none
      if e % config.eval_every_epochs == 0 or e == epochs:
        return {"test_accuracy": test_acc(model)}
      return None

    run_.run_phase(name, step, lambda s: {"train": batcher.epoch_batch(s)},
                   num_steps or epochs * batcher.steps_per_epoch, batcher.steps_per_epoch,
                   on_epoch_end=epoch_end)

  # 1. Baseline: the same classifier trained on the noisy data.
  if config.baseline.enabled:
    plain_phase("baseline", base_model, baseline_x, baseline_y,
                config.epochs if reweighting else config.baseline.epochs,
                _num_steps(config, len(baseline_x) // config.batch_size) if reweighting else None)

  # 2. Pretrain the bilevel classifier on the clean validation set.
  plain_phase("pretrain", clf_model, ds.x_val, ds.y_val,
              0 if reweighting else config.pretrain.epochs)

  # 3. Bilevel importance learning.
  train_b = Batcher(ds.x_train, y_noisy, config.batch_size, config.seed, "bilevel_train",
                     augment, transform)
  if method_class.uses_clean_batches:
    val_b = Batcher(ds.x_val, ds.y_val, config.val_batch_size, config.seed, "bilevel_val",
                     augment, transform)
    batch_fn = lambda s: {"train": train_b.epoch_batch(s), "val": val_b.random_batch(s)}
  else:
    # Proximal reweighting: splits with identical label multisets, split 0 validates.
    sampler = ClassMatchedSampler(y_noisy, method_cfg.splits, method.split_size, config.seed)
    batch_fn = lambda s: {"train": train_b.indexed_batch(sampler.batch_indices(s), s)}

  def init_importances():
    if reweighting:
      return
    pred = metriclib.predict(clf_model, evaluable(ds.x_train, transform), config.eval_batch_size)
    if config.importance_init.legacy_scalar_argmax:
      # The original before May 2020 compared predictions with np.argmax(Y_onehot) without an
      # axis: a scalar, the label of training point 0.
      agree = pred == y_noisy[0]
    else:
      agree = pred == y_noisy
    imp.set_importances(np.where(agree, config.importance_init.a_hi,
                                 config.importance_init.a_lo))
    log(f"[bilevel] importances initialised: {int(agree.sum())} of {n_train} points agree "
        "with the pretrained classifier.")

  def bilevel_epoch_end(epoch):
    method.end_epoch(epoch)       # the method's epoch schedule (ApproxGrad: x0.5 every 20)
    if not reweighting:
      imp.renormalise()
    a = imp.scores()
    out = {"mean_importance": float(a.mean()), "frac_above_0.1": float(np.mean(a > 0.1))}
    if epoch % config.eval_every_epochs == 0 or epoch == config.epochs:
      out["test_accuracy"] = test_acc(clf_model)
    det = metriclib.detection(a, corrupted, imp.detection_threshold)
    out.update({f"detect_{k}": det[k] for k in ("precision", "recall", "roc_auc")})
    return out

  run_.run_phase("bilevel", bilevel.combined_step(imp, method), batch_fn,
                 _num_steps(config, train_b.steps_per_epoch), train_b.steps_per_epoch,
                 on_start=init_importances, on_epoch_end=bilevel_epoch_end)

  a = imp.scores()
  results = {
      "dataset": config.dataset, "method": config.method, "noise": config.noise,
      "model": config.model, "data": ds.info,
      "num_corrupted": int(corrupted.sum()),
      "bilevel_model_test_accuracy": test_acc(clf_model),
      "detection": metriclib.detection(a, corrupted, imp.detection_threshold),
      "detection_threshold": imp.detection_threshold,
      "mean_importance_clean": float(a[~corrupted].mean()) if (~corrupted).any() else None,
      "mean_importance_corrupted": float(a[corrupted].mean()) if corrupted.any() else None,
  }

  # 4. Small-scale protocol: retrain on the confident points plus the validation set (the
  # penalty paper's protocol; the reweighting methods' own protocols end with their model).
  if config.retrain.enabled and not reweighting:
    keep = a > config.retrain.threshold
    results["retrain_selected"] = int(keep.sum())
    results["retrain_selected_corrupted"] = int((keep & corrupted).sum())
    x = np.concatenate([ds.x_train[keep], ds.x_val])
    y = np.concatenate([y_noisy[keep], ds.y_val])
    plain_phase("retrain", retrain_model, x, y, config.retrain.epochs)
    results["retrained_test_accuracy"] = test_acc(retrain_model)

  if config.baseline.enabled:
    results["baseline_test_accuracy"] = test_acc(base_model)
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
