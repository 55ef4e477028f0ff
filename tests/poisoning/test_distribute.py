"""The poisoning attacks under tf.distribute: the augmentation attack's step (poisons, training
and validation rows split over two logical CPU devices; conftest splits the CPU) with the
penalty method and ApproxGrad, and the pre/retraining step on train + poisons, equal the
one-device steps in float64, every variable's copies included; the command line runs
mirrored, and as two worker processes with TF_CONFIG; the clean-label attack is refused in one
line."""

import json

import keras
import numpy as np
import pytest

from common import distribute
from tests import replication
from common.bilevel import Plain, base, build_method, get_method
from poisoning import clean_label
from poisoning import experiment as poisoning_experiment
from poisoning.configs import cifar10_clean_label
from poisoning.configs import mnist_untargeted as untargeted_config
from poisoning.problem import AugmentationPoisoning, PoisonedTraining
from tests import cli

P, N_TRAIN, N_VAL, D, K = 4, 8, 6, 5, 3
UNTARGETED = "--config=poisoning/configs/mnist_untargeted.py:tiny"


def _data():
  rng = np.random.default_rng(0)
  return {"x_train": rng.random((N_TRAIN, D)), "y_train": rng.integers(0, K, N_TRAIN),
          "x_val": rng.random((N_VAL, D)), "y_val": rng.integers(0, K, N_VAL),
          "poison_y": rng.integers(0, K, P), "x_poison": rng.random((P, D))}


def _build(kind):
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((D,), dtype="float64"),
                            keras.layers.Dense(6, activation="tanh", dtype="float64"),
                            keras.layers.Dense(K, dtype="float64")])
  data = _data()
  if kind == "plain":
    problem = PoisonedTraining(model, 0.005)
    cfg = Plain.default_config()
    cfg.lr = 0.05
    return model, problem, Plain(problem, cfg)
  problem = AugmentationPoisoning(model, data["x_poison"], (0.0, 1.0), 0.005, -1.0)
  cfg = get_method(kind).default_config()
  cfg.update(lr_u=0.1, lr_v=0.05, inner_steps=2)
  if kind == "penalty":
    cfg.eps0 = 1e3                # the test passes: the multiplier update runs too
  else:
    cfg.update(lr_p=0.05, p_steps=2)
  return model, problem, build_method(kind, problem, cfg)


def _batch(kind):
  data = _data()
  batch = {k: data[k] for k in ("x_train", "y_train", "x_val", "y_val", "poison_y")}
  if kind == "plain":         # retraining on train + the poisons
    batch = {"x_train": data["x_train"], "y_train": data["y_train"],
             "poison_x": data["x_poison"], "poison_y": data["poison_y"]}
  return batch


def _run(kind, strategy, steps=3):
  with distribute.scope(strategy):
    model, problem, method = _build(kind)
  distribute.check_supported(strategy, problem, method)
  step = base.combined_step(problem, method)
  if strategy is not None:
    step = distribute.replicated(strategy, step)
  # Eager: the same replicated maths, without tracing the unrolled second-order graphs (the
  # command-line runs below compile them).
  metrics = [{k: float(v) for k, v in step(_batch(kind)).items()} for _ in range(steps)]
  variables = (list(model.weights) + list(problem.outer_variables) + list(method.variables))
  return metrics, {f"{i}:{v.name}": replication.copies(v) for i, v in enumerate(variables)}


@pytest.mark.parametrize("kind", ["penalty", "approxgrad", "plain"])
def test_two_replicas_equal_one_device(kind):
  one_metrics, one_state = _run(kind, None)
  two_metrics, two_state = _run(kind, replication.mirrored())
  replication.assert_same_run(one_metrics, one_state, two_metrics, two_state, kind)
  if kind != "plain":          # the poisons moved
    assert not np.allclose(one_state[next(k for k in one_state if "poisons" in k)][0],
                           _data()["x_poison"])
  if kind == "penalty":
    assert one_metrics[-1]["passed"] == 1.0


def test_clean_label_attack_is_refused_replicated_or_in_mixed_precision():
  config = cifar10_clean_label.get_config("tiny")
  config.data_dir = "/somewhere"
  config.runner.distribute.strategy = "mirrored"
  with pytest.raises(ValueError, match=r"the clean-label attack runs on one device in float32 "
                                       r"\(runner.distribute.strategy='mirrored' given\)"):
    clean_label.check(config)


@pytest.mark.slow
def test_mirrored_and_multi_worker_runs_give_the_one_device_results(tmp_path):
  """The tiny untargeted attack (one attacker, no adversarial baselines) mirrored over two
  logical CPUs and as two worker processes with TF_CONFIG (MultiWorkerMirrored, as on two
  machines) through the command line, beside the same attack on one device in this process."""
  args = (UNTARGETED, "--config.attackers=penalty", "--config.baselines=random_label",
          "--config.pretrain_steps=10", "--config.retrain_steps=10")
  procs = {"two": cli.start("poisoning/run.py", *args, f"--workdir={tmp_path / 'two'}",
                            *cli.MIRRORED)}
  procs.update(cli.start_workers("poisoning/run.py", 2, *args,
                                 workdir=lambda i: tmp_path / f"worker{i}"))
  config = untargeted_config.get_config("tiny")
  config.update(attackers="penalty", baselines="random_label", pretrain_steps=10,
                retrain_steps=10)
  ref = poisoning_experiment.run(config, str(tmp_path / "one"), log=lambda *_: None)
  outs = {name: cli.finish(p) for name, p in procs.items()}
  assert "Data-parallel over 2 replicas (MirroredStrategy)" in outs["two"]
  assert "Data-parallel over 2 replicas (CollectiveAllReduceStrategy)" in outs["worker0"]
  for name in ("two", "worker0", "worker1"):
    res = json.loads((tmp_path / name / "results.json").read_text())
    assert [r["poisons"] for r in res["rows"]] == [r["poisons"] for r in ref["rows"]]
    for row, ref_row in zip(res["rows"], ref["rows"]):
      for key in ("test", "val_loss", "mean_l2_change"):
        if key in ref_row:
          assert np.isfinite(row[key]) and row[key] == pytest.approx(ref_row[key], rel=1e-4,
                                                                    abs=1e-6), (name, key)
    np.testing.assert_allclose(np.load(tmp_path / name / "poisons_penalty.npy"),
                               np.load(tmp_path / "one" / "poisons_penalty.npy"), atol=1e-5)
