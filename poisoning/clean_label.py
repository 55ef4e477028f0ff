"""The clean-label attack of the penalty paper (§8.3), target by target, through the runner.

For every target (a test image the clean classifier gets right, taken in test-set order after
the previous target), as the original:

  t<k>_pretrain  re-initialise the classifier (logistic regression on frozen features), its
                 RMSProp and the attacker's state; train on the clean training features
  t<k>_attack    base = the training image of the other class nearest to the target in
                 feature space; the poison starts as the base image; the classifier is
                 re-randomised; ``attack_steps`` outer iterations of the bilevel method on the
                 poison's pixels, through the frozen extractor, projected onto the data's box
  t<k>_retrain   a fresh classifier on the training features + rep(poison) with the base's
                 (correct) label; success if the target is now misclassified

Data: the dog/fish npz with InceptionV3 features (``dataset="dogfish"``), or, offline, two
classes of CIFAR-10 with a small extractor the run first trains on the eight other classes
(``dataset="cifar10"``, phase ``extractor``). Outputs: results.json (per-target outcomes and
"found k out of n"), targets/t<k>.npz (target, base and poison images), clean_label_grid.png,
the cached features, metrics.jsonl, TensorBoard, checkpoints; a re-run resumes.
"""

import json
import time

import keras
import numpy as np
import tensorflow as tf

from common import bilevel
from common import data as datalib
from common import runner as runnerlib
from common import records
from common.data import dogfish as dogfishlib
from common.data.batching import Batcher
from common.problems import Classification
from poisoning import features as featurelib
from poisoning import plots
from poisoning.problem import CleanLabelPoisoning, FeatureTraining, logistic_regression

DATASETS = ("dogfish", "cifar10")


def check(config):
  """Config checks of the clean-label attack (raises ValueError)."""
  asked = runnerlib.requested(config.runner)
  if asked:
    raise ValueError(
        f"the clean-label attack runs on one device in float32 ({' and '.join(asked)} given): "
        "its step reads one target and one base image, which cannot be split over replicas, "
        "and its features are cached in float32. Leave runner.distribute and runner.precision "
        "at their defaults (the untargeted and targeted attacks support both).")
  datalib.check(config.dataset, allowed=DATASETS)
  if config.method not in bilevel.METHODS or not bilevel.get_method(
      config.method).needs_outer_variables:
    raise ValueError(f"method {config.method!r} cannot optimise a poison; use a bilevel method "
                     "with outer variables (penalty, approxgrad, gd, rmd).")
  if config.method not in config:
    raise ValueError(f"the config has no block '{config.method}' for method {config.method!r}.")
  if not config.data_dir:
    where = ("the folder holding " + dogfishlib.FILE_NAME if config.dataset == "dogfish"
             else "the CIFAR-10 folder (pickles, or train/<class>/ and test/<class>/ images)")
    raise ValueError(f"--config.data_dir is required: {where}.")
  for key in ("attack_steps", "train_steps"):
    if int(config[key]) < 1:
      raise ValueError(f"{key} must be >= 1, got {config[key]}.")
  if int(config.num_targets) < 0:
    raise ValueError(f"num_targets must be >= 0 (0: every test image), got "
                     f"{config.num_targets}.")
  if config.dataset == "cifar10":
    a, b = config.classes
    if a == b:
      raise ValueError(f"classes must be two different CIFAR-10 classes, got {a!r} twice.")
    if config.train_extractor and int(config.extractor_steps) < 1:
      raise ValueError("extractor_steps must be >= 1 when train_extractor is set.")
  if config.extractor != "inception_v3" and ":" not in config.extractor:
    raise ValueError(f"Unknown extractor {config.extractor!r}: use 'inception_v3' or your own "
                     "as 'package.module:function' (called as function(input_shape)).")


class _Data:
  """Images, labels (0/1) and, for CIFAR-10, the other classes to train the extractor on."""

  def __init__(self, config, log):
    self.other_x = self.other_y = None
    if config.dataset == "dogfish":
      with datalib.usable(f"dogfish ({config.data_dir})"):
        d = dogfishlib.load_dogfish(config.data_dir)
      self.x_train, self.y_train, self.x_test, self.y_test = (d.x_train, d.y_train, d.x_test,
                                                              d.y_test)
      self.class_names = ("dog", "fish")
      self.info = dict(d.info)
      return
    pools, names, origin = datalib.read_pools("cifar10", "files", config.data_dir)
    names = tuple(names)
    missing = [c for c in config.classes if c not in names]
    if missing:
      raise ValueError(f"classes {missing} are not CIFAR-10 classes; choose from {list(names)}.")
    ids = [names.index(c) for c in config.classes]
    if pools.x_test is None:
      raise datalib.DataNotFoundError(f"{config.data_dir} holds no CIFAR-10 test images.")
    scale = lambda x: np.asarray(x, np.float32) / np.float32(255.0)  # noqa: E731

    def two(x, y):
      keep = np.isin(y, ids)
      return scale(x[keep]), (y[keep] == ids[1]).astype(np.int64)

    self.x_train, self.y_train = two(pools.x_train, pools.y_train)
    self.x_test, self.y_test = two(pools.x_test, pools.y_test)
    rest = ~np.isin(pools.y_train, ids)
    others = sorted(set(range(len(names))) - set(ids))
    self.other_x = scale(pools.x_train[rest])
    self.other_y = np.searchsorted(others, pools.y_train[rest]).astype(np.int64)
    self.class_names = tuple(config.classes)
    self.info = {"origin": origin, "classes": list(config.classes),
                 "extractor_classes": [names[i] for i in others],
                 "num_train": len(self.y_train), "num_test": len(self.y_test),
                 "num_extractor_train": len(self.other_y)}
    log(f"CIFAR-10 ({origin}): {config.classes[0]} (0) vs {config.classes[1]} (1): "
        f"{len(self.y_train)} train, {len(self.y_test)} test; the extractor trains on "
        f"{len(self.other_y)} images of the {len(others)} other classes.")


def _plain(lr, optimizer):
  cfg = bilevel.Plain.default_config()
  cfg.lr = lr
  cfg.optimizer = optimizer
  return cfg


def run(config, workdir, log=print):
  t_start = time.time()
  keras.utils.set_random_seed(config.seed)
  data = _Data(config, log)
  image_shape = data.x_train.shape[1:]
  box = (float(data.x_train.min()), float(data.x_train.max()))
  extractor = featurelib.build_extractor(config.extractor, image_shape, config.extractor_weights)
  head = None
  if config.train_extractor:
    extractor.trainable = True
    head = keras.Sequential([keras.Input(image_shape), extractor,
                             keras.layers.Dense(int(data.other_y.max()) + 1)],
                            name="extractor_pretraining")
    head_method = bilevel.Plain(Classification(head, key="train"),
                                _plain(config.extractor_lr, "adam"))
    extractor.trainable = False
  dim = int(extractor.output_shape[-1])
  classifier = logistic_regression(dim, 2, config.classifier_stddev)
  train_method = bilevel.Plain(FeatureTraining(classifier), _plain(config.train_lr, "rmsprop"))
  problem = CleanLabelPoisoning(classifier, extractor, image_shape, box, config.beta)
  method = bilevel.build_method(config.method, problem, config[config.method])
  initial = runnerlib.snapshot(method, train_method)   # the per-target reset, before any restore

  num_slots = int(config.num_targets) or len(data.y_test)
  slots = tf.Variable(-tf.ones((num_slots, 2), tf.int64), trainable=False, name="slots")
  state = dict(classifier=classifier, train_method=train_method, problem=problem,
               method=method, slots=slots)
  phases = []
  if head is not None:
    state.update(extractor=extractor, head=head, head_method=head_method)
    phases.append("extractor")
  for k in range(num_slots):
    phases += [f"t{k}_pretrain", f"t{k}_attack", f"t{k}_retrain"]
  run_ = runnerlib.Runner(workdir, config.runner, state, phases, run_config=config, log=log)
  wd = run_.workdir

  if head is not None:
    batcher = Batcher(data.other_x, data.other_y, int(config.extractor_batch), config.seed,
                      "extractor")
    extractor.trainable = True
    run_.run_phase("extractor", head_method.step,
                   lambda step: {"train": batcher.epoch_batch(step)}, config.extractor_steps)
    extractor.trainable = False
  f_train = featurelib.cached_features(wd / "features_train.npz", extractor, data.x_train,
                                       desc="train features",
                                       progress=config.runner.progress_bar)
  f_test = featurelib.cached_features(wd / "features_test.npz", extractor, data.x_test,
                                      desc="test features",
                                      progress=config.runner.progress_bar)
  clean = {"features": tf.constant(f_train), "labels": tf.constant(data.y_train)}
  (wd / "targets").mkdir(exist_ok=True)

  def draw_classifier(k, stage):
    seed = tf.constant([int(config.seed), 3 * k + stage], tf.int64)
    kernel, bias = classifier.trainable_variables
    kernel.assign(tf.random.stateless_normal(kernel.shape, seed) * config.classifier_stddev)
    bias.assign(tf.zeros(bias.shape))

  def predict(x):
    return np.argmax(classifier(tf.constant(x), training=False).numpy(), -1)

  outcomes, triples = [], []
  # One cached result per target slot: a re-run skips the finished ones.
  targets = records.Sweep(lambda k: wd / "targets" / f"t{k}.npz", compressed=True)
  for k in range(num_slots):
    r = targets.load(k)
    if r is not None:
      outcomes.append(_outcome(r))
      if outcomes[-1]["success"] and len(triples) < int(config.save_images):
        triples.append((r["target"], r["base"], r["poison"], _caption(outcomes[-1])))
      continue

    def start_pretrain(k=k):
      runnerlib.restore(initial)
      draw_classifier(k, 0)

    run_.run_phase(f"t{k}_pretrain", train_method.step, lambda step: clean, config.train_steps,
                   on_start=start_pretrain)
    pretrained_accuracy = float(np.mean(predict(f_test) == data.y_test))

    def start_attack(k=k):
      previous = int(slots[k - 1, 0]) if k else -1
      correct = np.flatnonzero(predict(f_test[previous + 1:]) == data.y_test[previous + 1:])
      if not len(correct):
        return
      t = previous + 1 + int(correct[0])
      others = np.flatnonzero(data.y_train != data.y_test[t])
      b = int(others[np.argmin(np.linalg.norm(f_train[others] - f_test[t], axis=1))])
      slots[k].assign([t, b])
      problem.poison.assign(data.x_train[b:b + 1])
      draw_classifier(k, 1)        # the original's reset_lower_level() before the attack

    if run_.steps_done(f"t{k}_attack") == 0:
      start_attack()
    t, b = (int(i) for i in slots[k].numpy())
    if t < 0:
      log(f"No further test image is classified correctly after index "
          f"{int(slots[k - 1, 0]) if k else -1}: stopping after {k} targets.")
      break
    attack_batch = dict(clean, target=tf.constant(f_test[t:t + 1]),
                        target_wrong=tf.constant([1 - data.y_test[t]], tf.int64),
                        base=tf.constant(data.x_train[b:b + 1]),
                        base_label=tf.constant([data.y_train[b]], tf.int64))
    run_.run_phase(f"t{k}_attack", bilevel.combined_step(problem, method),
                   lambda step: attack_batch, config.attack_steps)

    poison = problem.poison.numpy()
    rep = extractor(tf.constant(poison), training=False)
    retrain = {"features": tf.concat([clean["features"], rep], 0),
               "labels": tf.concat([clean["labels"], attack_batch["base_label"]], 0)}

    def start_retrain(k=k):
      runnerlib.restore([(v, x) for v, x in initial
                         if any(v is w for w in train_method.variables)])
      draw_classifier(k, 2)

    run_.run_phase(f"t{k}_retrain", train_method.step, lambda step: retrain, config.train_steps,
                   on_start=start_retrain)
    predicted = int(predict(f_test[t:t + 1])[0])
    outcome = {"slot": k, "target_index": t, "base_index": b,
               "target_label": int(data.y_test[t]), "base_label": int(data.y_train[b]),
               "predicted_after": predicted,
               "success": predicted != int(data.y_test[t]),
               "feature_distance_base": float(np.linalg.norm(f_train[b] - f_test[t])),
               "feature_distance_poison": float(np.linalg.norm(rep.numpy()[0] - f_test[t])),
               "pixel_l2_change": float(np.linalg.norm(poison[0] - data.x_train[b])),
               "pretrained_test_accuracy": pretrained_accuracy}
    targets.store(k, dict(target=data.x_test[t], base=data.x_train[b], poison=poison[0],
                          outcome=json.dumps(outcome)))
    outcomes.append(outcome)
    found = sum(o["success"] for o in outcomes)
    log(f"target {k}: test image {t} ({data.class_names[data.y_test[t]]}), base {b}: "
        f"{'SUCCESS' if outcome['success'] else 'no success'}; found {found} out of "
        f"{len(outcomes)}.")
    if outcome["success"] and len(triples) < int(config.save_images):
      triples.append((data.x_test[t], data.x_train[b], poison[0], _caption(outcome)))

  plots.clean_label_grid(wd / "clean_label_grid.png", triples[:10], box[0], box[1],
                         title="clean-label poisons: target (top), base (middle), poison "
                               "(bottom) of successful attacks")
  found = sum(o["success"] for o in outcomes)
  results = {"attack": "clean_label", "dataset": config.dataset, "data": data.info,
             "extractor": config.extractor, "method": config.method,
             "targets": len(outcomes), "found": int(found),
             "success_rate": found / len(outcomes) if outcomes else float("nan"),
             "outcomes": outcomes, "wall_seconds_this_invocation": time.time() - t_start}
  run_.write_results(results, summary(results))
  return results


def _outcome(npz):
  return json.loads(str(npz["outcome"]))


def _caption(outcome):
  return f"test {outcome['target_index']}\n{outcome['target_label']}->{outcome['predicted_after']}"


def summary(results):
  rows = [{"what": f"{results['dataset']}, {results['method']}, extractor "
                   f"{results['extractor']}",
           "found": f"{results['found']} out of {results['targets']}",
           "rate": results["success_rate"]}]
  return records.summary_table(rows, [("what", "clean-label attack"),
                                        ("found", "targets misclassified"),
                                        ("rate", "success rate")])
