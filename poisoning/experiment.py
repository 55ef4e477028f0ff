"""The poisoning attacks of the penalty paper (§8), phase by phase, through the shared runner.

Augmentation attacks (``attack="untargeted"`` or ``"targeted"``, MNIST):

  pretrain          the classifier on the clean training set (full batch, Adam): the clean
                    baseline, and the attacked model the bilevel attacks start from
  attack_<method>   one phase per bilevel attacker (penalty, approxgrad, ...): ``steps`` outer
                    iterations on the poison pixels, full batch, projected onto the pixel box
  retrain_<poisons> for the poisons of every attacker and every baseline (random labels,
                    cleverhans FGSM / PGD), a fresh classifier trained on train + poisons;
                    its test accuracy (untargeted) or the fraction of test 8s it calls 3
                    (targeted) is the reported number

The clean-label attack (``attack="clean_label"``) lives in ``clean_label.py``. The
augmentation attacks run data-parallel (``runner.distribute``: every full batch's training,
validation and poison rows split among the replicas, the step one device's) and in mixed
precision (``runner.precision``). Re-running the same command resumes; ``results.json``,
``poisons_<name>.npy`` and ``poison_grid.png`` (the poisons next to the images they started
from) are written at the end.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from common import bilevel
from common import config_checks
from common import evaluators as evaluatorslib
from common import metrics as metriclib
from common import models
from common import runner as runnerlib
from common import records
from common.errors import ConfigError, DataError, DataNotFoundError
from common.problems import cross_entropy
from poisoning import baselines as baselinelib
from poisoning import data as datalib
from poisoning import plots
from poisoning.problem import AugmentationPoisoning, PoisonedTraining

ATTACKS = ("untargeted", "targeted", "clean_label")
TEST_SETS = ("train_pool", "official")


def names(spec):
  """'penalty,approxgrad' -> ['penalty', 'approxgrad'] (also accepts a list or tuple)."""
  if isinstance(spec, str):
    return [s.strip() for s in spec.split(",") if s.strip()]
  return [str(s) for s in spec]


def validate(config):
  """Fail fast, before any data is read or any file written, on a bad config."""
  config_checks.validated(_validate, config)


def _validate(config):
  if config.attack not in ATTACKS:
    raise ValueError(f"Unknown attack {config.attack!r}; choose one of {list(ATTACKS)}.")
  if config.attack == "clean_label":
    from poisoning import clean_label  # pylint: disable=import-outside-toplevel
    clean_label.check(config)
    return
  if config.source not in ("embedded", "files", "tfds"):
    raise ValueError(f"Unknown MNIST source {config.source!r}; choose 'embedded', 'files' or "
                     "'tfds'.")
  if config.test_set not in TEST_SETS:
    raise ValueError(f"Unknown test_set {config.test_set!r}; choose one of {list(TEST_SETS)}.")
  if config.attack == "targeted":
    pair = (config.source_class, config.target_class)
    if not all(0 <= int(c) <= 9 for c in pair) or pair[0] == pair[1]:
      raise ValueError(f"source_class and target_class must be two different digits 0-9, got "
                       f"{pair[0]} and {pair[1]}.")
  evaluatorslib.check(config.evaluators, ("val_loss", "accuracy"), "the poisoning attacks")
  low, high = config.box
  if not low < high:
    raise ValueError(f"box must be (low, high) with low < high, got {tuple(config.box)}.")
  attackers, base = names(config.attackers), names(config.baselines)
  if not attackers and not base:
    raise ValueError("Nothing to compare: set attackers (e.g. 'penalty,approxgrad') and/or "
                     f"baselines (from {list(baselinelib.BASELINES)}).")
  for name in attackers:
    method = bilevel.get_method(name)
    if not method.needs_outer_variables:
      raise ValueError(f"attacker {name!r} learns no outer variables; a poisoning attacker "
                       f"must optimise the poisons (penalty, approxgrad, gd, rmd).")
    if name not in config:
      raise ValueError(f"the config has no block '{name}' for attacker {name!r}.")
    if int(config.attack_steps.get(name, 0)) < 1:
      raise ValueError(f"attack_steps.{name} must be >= 1 (outer iterations of that attacker).")
  for name in base:
    if name not in baselinelib.BASELINES:
      raise ValueError(f"Unknown baseline {name!r}; choose from {list(baselinelib.BASELINES)}.")
  baselinelib.check_available(base)
  if len(set(attackers + base)) != len(attackers + base):
    raise ValueError("attackers and baselines must not repeat a name.")
  for key in ("train_size", "val_size", "test_size", "num_poisons", "pretrain_steps",
              "retrain_steps", "eval_every"):
    if int(config[key]) < 1:
      raise ValueError(f"{key} must be >= 1, got {config[key]}.")
  for key in ("fgsm", "pgd"):
    if not 0.0 < config[key].eps <= high - low:
      raise ValueError(f"{key}.eps must lie in (0, {high - low}] (the pixel box), got "
                       f"{config[key].eps}.")
  models.resolve(config.model)


def _plain_config(lr):
  cfg = bilevel.Plain.default_config()
  cfg.lr = lr
  return cfg


def _const(x, dtype):
  return tf.constant(np.asarray(x), dtype)


def _logits(model, x, batch_size=2000):
  # Eager calls: evaluation happens a few times per run, and predict_on_batch would retrace
  # for every model and input size.
  return tf.concat([model(tf.constant(x[i:i + batch_size]), training=False)
                    for i in range(0, len(x), batch_size)], 0)


def _mean_ce(model, x, y):
  return float(tf.reduce_mean(cross_entropy(_logits(model, x), y)))


def _accuracy(model, x, y):
  return metriclib.TestSet(x, y, 2000, eager_calls=True).accuracy(model)


def run(config, workdir, log=print):
  """Run the attack (resuming from ``workdir``) and return the results dict."""
  validate(config)
  if config.attack == "clean_label":
    from poisoning import clean_label  # pylint: disable=import-outside-toplevel
    return clean_label.run(config, workdir, log)
  t_start = time.time()
  # First, before TensorFlow starts: a CPU split into logical devices must happen now.
  setup = runnerlib.Setup(config.runner)
  keras.utils.set_random_seed(config.seed)
  split = datalib.untargeted if config.attack == "untargeted" else datalib.targeted
  try:       # the sizes the config asks for against the images the source holds
    data = split(config, log)
  except (ConfigError, DataNotFoundError, DataError):
    raise
  except ValueError as e:
    raise ConfigError(str(e)) from None
  log(f"{config.attack} attack on MNIST ({data.info['origin']}): train {len(data.y_train)}, "
      f"val {len(data.y_val)}, test {len(data.y_test)}"
      + (f" (the {config.source_class}s of a {data.info['eval']}-image balanced test sample)"
         if config.attack == "targeted" else "") + f"; {len(data.y_poison)} poisons.")
  # Every step is full batch: each set's rows are split among the replicas.
  for key, rows in (("train_size", data.y_train), ("val_size", data.y_val),
                    ("num_poisons", data.y_poison)):
    # (The targeted attack validates on the source-class images among val_size.)
    setup.check_batch_size(key if len(rows) == int(config[key]) else
                           f"the validation set's size (from {key})", len(rows))
  setup.log_replicas(log)
  shape = data.x_train.shape[1:]
  build = lambda: models.build(config.model, shape, datalib.NUM_CLASSES)  # noqa: E731
  attackers, base = names(config.attackers), names(config.baselines)
  sign = -1.0 if config.attack == "untargeted" else 1.0
  box = tuple(float(b) for b in config.box)

  # Everything stateful exists before the runner restores the checkpoint.
  with setup.scope():
    pre_model = build()
    pre_method = bilevel.Plain(PoisonedTraining(pre_model, config.weight_decay),
                               _plain_config(config.pretrain_lr))
    attack_models, problems, methods = {}, {}, {}
    for name in attackers:
      attack_models[name] = build()
      problems[name] = AugmentationPoisoning(attack_models[name], data.x_poison, box,
                                             config.weight_decay, sign)
      methods[name] = bilevel.build_method(name, problems[name], config[name])
    tracks = attackers + base
    retrain_models, retrain_methods = {}, {}
    for name in tracks:
      retrain_models[name] = build()
      retrain_methods[name] = bilevel.Plain(PoisonedTraining(retrain_models[name],
                                                             config.weight_decay),
                                            _plain_config(config.retrain_lr))
  setup.check(pre_method, pre_method.problem, *problems.values(), *methods.values(),
              *retrain_methods.values(), *(m.problem for m in retrain_methods.values()))
  # Every retraining starts from the same initial weights: differences come from the poisons.
  retrain_init = [np.array(v) for v in retrain_models[tracks[0]].trainable_variables]

  state = dict(pre_model=pre_model, pre_method=pre_method,
               **{f"attack_model_{n}": m for n, m in attack_models.items()},
               **{f"problem_{n}": p for n, p in problems.items()},
               **{f"method_{n}": m for n, m in methods.items()},
               **{f"retrain_model_{n}": m for n, m in retrain_models.items()},
               **{f"retrain_method_{n}": m for n, m in retrain_methods.items()})
  phases = (["pretrain"] + [f"attack_{n}" for n in attackers]
            + [f"retrain_{n}" for n in tracks])
  run_ = runnerlib.Runner(workdir, config.runner, state, phases, run_config=config, log=log,
                         setup=setup)

  train = {"x_train": _const(data.x_train, tf.float32), "y_train": _const(data.y_train, tf.int64)}
  poison_y = _const(data.y_poison, tf.int64)
  attack_batch = dict(train, x_val=_const(data.x_val, tf.float32),
                      y_val=_const(data.y_val, tf.int64), poison_y=poison_y)

  # -- pretrain ------------------------------------------------------------------------------
  run_.run_phase("pretrain", pre_method.step, lambda step: train, config.pretrain_steps)
  clean = _evaluate(pre_model, data)
  log(f"clean classifier: test {_metric_name(config)} {clean['test']:.4f}, validation loss "
      f"{clean['val_loss']:.4f}.")

  # -- bilevel attacks -----------------------------------------------------------------------
  test = metriclib.TestSet(data.x_test, data.y_test, 2000, eager_calls=True)
  for name in attackers:
    model, problem, method = attack_models[name], problems[name], methods[name]

    def start(model=model, problem=problem):
      for var, value in zip(model.trainable_variables, pre_model.trainable_variables):
        var.assign(value)
      problem.poisons.assign(data.x_poison)

    # Full batch: every outer iteration is an epoch (the methods' lr schedules count them).
    run_.run_phase(f"attack_{name}", bilevel.combined_step(problem, method),
                   lambda step: attack_batch, config.attack_steps[name], steps_per_epoch=1,
                   on_start=start, on_epoch_end=method.end_epoch,
                   evaluators=evaluatorslib.build(config.evaluators, evaluatorslib.Context(
                       model=model, test=test, accuracy_key=f"test_{_metric_key(config)}",
                       val=(data.x_val, data.y_val), loss=_mean_ce), every=config.eval_every))

  # -- the poisons of every track --------------------------------------------------------------
  poisons = {name: np.asarray(problems[name].poisons) for name in attackers}
  for name in base:
    if name == "random_label":
      poisons[name] = data.x_poison
    else:
      true = data.y_train[data.poison_source]
      poisons[name] = baselinelib.adversarial_poisons(name, pre_model, data.x_poison, true,
                                                      config[name], box)

  # -- retrain on train + poisons ----------------------------------------------------------
  rows = [dict(poisons="none (clean training set)", **clean)]
  for name in tracks:
    model, method = retrain_models[name], retrain_methods[name]
    batch = dict(train, poison_x=_const(poisons[name], tf.float32), poison_y=poison_y)

    def start(model=model):
      for var, value in zip(model.trainable_variables, retrain_init):
        var.assign(value)

    ran = run_.steps_done(f"retrain_{name}") < int(config.retrain_steps)
    run_.run_phase(f"retrain_{name}", method.step, lambda step, b=batch: b,
                   config.retrain_steps, on_start=start)
    row = _evaluate(model, data)
    change = (poisons[name] - data.x_poison).reshape(len(data.x_poison), -1)
    row.update(poisons=name, mean_l2_change=float(np.linalg.norm(change, axis=1).mean()),
               max_abs_change=float(np.abs(change).max()))
    if ran:
      run_.record(f"retrain_{name}", config.retrain_steps,
                  {k: v for k, v in row.items() if k != "poisons"}, kind="epoch")
    rows.append(row)
    records.save_npy(run_.workdir / f"poisons_{name}.npy", poisons[name])
  records.save_npy(run_.workdir / "poison_start.npy", data.x_poison)
  records.save_npy(run_.workdir / "poison_labels.npy", data.y_poison)

  plots.poison_grid(run_.workdir / "poison_grid.png", data.x_poison,
                    data.y_train[data.poison_source], data.y_poison,
                    {n: poisons[n] for n in tracks if n != "random_label"},
                    title=f"{config.attack} attack: poisons (rows) from their starting images "
                          f"(top row); labels true -> poison label")
  results = {"attack": config.attack, "data": data.info, "model": config.model,
             "num_poisons": int(len(data.y_poison)), "metric": _metric_name(config),
             "rows": rows, "attack_steps": {n: int(config.attack_steps[n]) for n in attackers},
             "wall_seconds_this_invocation": time.time() - t_start}
  run_.write_results(results, summary(results))
  return results


def _metric_key(config):
  return "accuracy" if config.attack == "untargeted" else "success"


def _metric_name(config):
  if config.attack == "untargeted":
    return "accuracy"
  return f"success ({config.source_class}s classified as {config.target_class})"


def _evaluate(model, data):
  """Test metric (accuracy on x_test / y_test), overall accuracy, validation loss."""
  return {"test": _accuracy(model, data.x_test, data.y_test),
          "overall_accuracy": _accuracy(model, data.x_eval, data.y_eval),
          "val_loss": _mean_ce(model, data.x_val, data.y_val)}


def summary(results):
  if results["attack"] == "clean_label":
    from poisoning import clean_label  # pylint: disable=import-outside-toplevel
    return clean_label.summary(results)
  untargeted = results["attack"] == "untargeted"
  columns = [("poisons", "poisons"),
             ("test", "test accuracy" if untargeted else "attack success"),
             ("val_loss", "val loss"), ("mean_l2_change", "mean L2 change")]
  if not untargeted:
    columns.insert(2, ("overall_accuracy", "overall test acc"))
  out = records.summary_table(results["rows"], columns)
  n = results["num_poisons"]
  if untargeted:
    out += (f"\n\n{n} poisons added to {results['data']['train']} training images; test "
            "accuracy after retraining from scratch on train + poisons (lower = stronger attack).")
  else:
    out += (f"\n\n{n} poisons added to {results['data']['train']} training images; attack "
            f"success = fraction of the {results['data']['test']} test "
            f"{results['data']['source_class']}s classified as "
            f"{results['data']['target_class']} after retraining (higher = stronger attack).")
  return out
