"""tf.distribute: a step mirrored over two logical CPU devices equals the one-device step.

Each case builds the same model, problem and method twice (float64, so the comparison is
tight), once on one device and once under MirroredStrategy over /cpu:0 and /cpu:1 (conftest
splits the CPU), runs a few steps on the same global batches, and compares every variable,
every metric and the per-example state. Every registered method has its case here, or is
covered elsewhere (``COVERED_ELSEWHERE``), or is refused with a reason
(``test_every_registered_method_replicates_or_is_refused_with_a_reason``).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import distribute
from tests import replication
from common.bilevel import (L2RW, METHODS, RMD, GD, ApproxGrad, Penalty, Plain, base,
                            build_method)
from common.problems import Classification, ExampleReweighting
from common.problems import ImportanceProblem

N, D, K, NUM_TRAIN = 8, 5, 3, 24
DEVICES = ["/cpu:0", "/cpu:1"]

# One case per registered method (l2rw twice: the fused path and the look-ahead one).
REPLICATION_CASES = ["approxgrad", "batch_ratio", "class_ratio", "gd", "l2rw", "l2rw_look_ahead",
                     "penalty", "plain", "proximal", "random", "rmd", "uniform"]
# Registered methods whose replication test lives in another file.
COVERED_ELSEWHERE = {"data_parameters": "tests/curriculum/test_distribute.py"}


def _model():
  keras.utils.set_random_seed(0)
  return keras.Sequential([
      keras.Input((D,), dtype="float64"),
      keras.layers.Dense(6, activation="tanh", dtype="float64"),
      keras.layers.Dense(K, dtype="float64"),
  ])


def _batches(steps=3):
  rng = np.random.default_rng(0)
  out = []
  for s in range(steps):
    index = rng.permutation(NUM_TRAIN)[:N].astype(np.int32)
    out.append({"train": {"x": rng.normal(size=(N, D)), "y": rng.integers(0, K, N),
                          "index": index},
                "val": {"x": rng.normal(size=(N, D)), "y": rng.integers(0, K, N),
                        "index": np.arange(N, dtype=np.int32)}})
  return out


def _build(kind):
  model = _model()
  if kind == "plain":
    problem = Classification(model)
    method = Plain(problem, Plain.default_config())
  elif kind == "penalty":
    problem = ImportanceProblem(model, NUM_TRAIN, N, per_example_state=True)
    problem.z_all.assign(np.linspace(-1, 1, NUM_TRAIN))
    cfg = Penalty.default_config()
    cfg.update(inner_steps=3, lr_u=0.5, lr_v=0.05, eps0=10.0)  # eps0 large: the test passes
    method = Penalty(problem, cfg)
  elif kind in ("approxgrad", "gd", "rmd"):
    problem = ImportanceProblem(model, NUM_TRAIN, N, per_example_state=kind != "rmd")
    problem.z_all.assign(np.linspace(-1, 1, NUM_TRAIN))
    method_class = {"approxgrad": ApproxGrad, "gd": GD, "rmd": RMD}[kind]
    cfg = method_class.default_config()
    cfg.update(inner_steps=3, lr_u=0.5, lr_v=0.05)
    if kind == "approxgrad":
      cfg.p_steps = 2
    method = method_class(problem, cfg)
  elif kind.startswith("l2rw"):
    problem = ExampleReweighting(model, N, weight_decay=0.01, num_train=NUM_TRAIN)
    cfg = L2RW.default_config()
    cfg.update(lr=0.1, look_ahead=kind == "l2rw_look_ahead")
    method = L2RW(problem, cfg)
  elif kind in ("proximal", "uniform", "random", "batch_ratio", "class_ratio"):
    problem = ExampleReweighting(model, N, weight_decay=0.01, num_train=NUM_TRAIN)
    cfg = METHODS[kind].default_config()
    cfg.lr = 0.1
    if kind == "proximal":
      cfg.splits = 4              # two splits per replica; split 0 (validation) on replica 0
    if kind == "class_ratio":
      cfg.class_weights = (0.5, 0.3, 0.2)
    method = build_method(kind, problem, cfg)
  else:
    raise ValueError(f"No replication case for {kind!r}: add one to _build.")
  return model, problem, method


def _state(model, problem, method):
  tensors = {f"w{i}": v for i, v in enumerate(model.weights)}
  for name in ("z_all", "weights_all", "weight_sums", "weight_counts"):
    if getattr(problem, name, None) is not None:
      tensors[name] = getattr(problem, name)
  slot = getattr(problem, "slot", None)
  for i, m in enumerate(slot.state_rows if slot is not None else []):
    tensors[f"moment{i}"] = m
  for name in ("rho", "lamb", "eps", "weights", "draws"):
    if hasattr(method, name):
      tensors[name] = getattr(method, name)
  for name in ("nu", "p"):      # the penalty's multipliers, ApproxGrad's linear-system solution
    for i, x in enumerate(getattr(method, name, [])):
      tensors[f"{name}{i}"] = x
  return {k: np.asarray(tf.convert_to_tensor(v)) for k, v in tensors.items()}


def _run(kind, strategy):
  with distribute.scope(strategy):
    model, problem, method = _build(kind)
  distribute.check_supported(strategy, problem, method)
  step = base.combined_step(problem, method)
  if strategy is not None:
    step = distribute.replicated(strategy, step)
  step = tf.function(step)
  metrics = [{k: float(v) for k, v in step(b).items()} for b in _batches()]
  if strategy is not None:
    # The comparison reads the first replica's copies: every other copy must equal them.
    for v in {id(v): v for v in [*model.weights, *problem.variables, *method.variables]}.values():
      copies = [np.asarray(x) for x in strategy.experimental_local_results(v)]
      for other in copies[1:]:
        np.testing.assert_array_equal(other, copies[0], err_msg=f"{kind}: {v.name}")
  return metrics, _state(model, problem, method)


@pytest.mark.parametrize("kind", REPLICATION_CASES)
def test_two_replicas_equal_one_device(kind):
  one_metrics, one_state = _run(kind, None)
  strategy = replication.mirrored()
  assert strategy.num_replicas_in_sync == 2
  two_metrics, two_state = _run(kind, strategy)
  for a, b in zip(one_metrics, two_metrics):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_allclose(b[k], a[k], rtol=1e-9, atol=1e-12, err_msg=f"{kind}: {k}")
  for k in one_state:
    np.testing.assert_allclose(two_state[k], one_state[k], rtol=1e-9, atol=1e-12,
                               err_msg=f"{kind}: {k}")
  # The step did something: the model moved.
  fresh = _state(*_build(kind))
  assert not np.allclose(fresh["w0"], one_state["w0"])
  if kind == "penalty":
    assert one_metrics[-1]["passed"] == 1.0          # the multiplier update ran too
  # The importances moved too (not under GD: f does not depend on u directly here, and GD's
  # u-step follows the partial gradient grad_u f alone, which is zero).
  if "z_all" in fresh and kind != "gd":
    assert not np.allclose(fresh["z_all"], one_state["z_all"])
  # Reweighting: the last batch's weights were written, and are not all the same (uniform's
  # are), so a wrong row or draw would show.
  if "weights" in fresh:
    w = one_state["weights"]
    assert np.abs(w).sum() > 0
    assert (kind == "uniform") == np.allclose(w, w[-1]), w


class _Refused(base.Method):
  replication_refusal = "its weights need the whole batch on one device; use strategy=none."


class _Undeclared:
  pass


def _uncovered(methods, strategy):
  """Names in ``methods`` with no replication case here, none elsewhere (COVERED_ELSEWHERE)
  and no one-line refusal reason that ``check_supported`` gives; each with what is wrong."""
  cased = {k.removesuffix("_look_ahead") for k in REPLICATION_CASES}
  wrong = []
  for name, cls in methods.items():
    if name in COVERED_ELSEWHERE:
      continue
    declared = getattr(cls, "supports_replication", False) is True
    if declared or name in cased:
      if not (declared and name in cased):
        wrong.append(f"{name}: supports_replication={declared} but case here={name in cased}")
      continue
    reason = getattr(cls, "replication_refusal", None)
    if not (isinstance(reason, str) and reason and "\n" not in reason):
      wrong.append(f"{name}: neither replicates nor says why (replication_refusal)")
      continue
    try:
      distribute.check_supported(strategy, object.__new__(cls))
      wrong.append(f"{name}: not refused")
    except ValueError as e:
      if f"{cls.__name__} cannot run replicated: {reason}" not in str(e):
        wrong.append(f"{name}: the refusal does not give its reason: {e}")
  return wrong


def test_every_registered_method_replicates_or_is_refused_with_a_reason():
  """A method added to the registry must get a replication case here (or in the file named in
  COVERED_ELSEWHERE), or be refused with a one-line reason (``replication_refusal``)."""
  strategy = replication.mirrored()
  assert not _uncovered(METHODS, strategy)
  assert all(path.startswith("tests/") for path in COVERED_ELSEWHERE.values())

  class _Declared(base.Method):
    supports_replication = True

  # The check can fail: a new method that replicates without a case, one that is unsupported
  # without a reason; a refused one with its reason passes.
  wrong = _uncovered({"new_declared": _Declared, "new_silent": _Undeclared,
                      "refused": _Refused}, strategy)
  assert len(wrong) == 2 and wrong[0].startswith("new_declared") and \
      wrong[1].startswith("new_silent"), wrong


def test_penalty_hypergradient_through_the_all_reduce_equals_one_device():
  """Second order across replicas: grad_u of f + <nu, grad_v g> + rho/2 |grad_v g|^2."""
  batch = _batches(1)[0]
  _, problem, method = _build("penalty")
  problem.begin_step(batch, method)
  expected = [g.numpy() for g in method.hypergradient(batch)]
  strategy = replication.mirrored()
  with strategy.scope():
    _, problem2, method2 = _build("penalty")

  def hyper(b):
    problem2.begin_step(b, method2)
    return method2.hypergradient(b)

  got = tf.function(distribute.replicated(strategy, hyper))(batch)
  for a, b in zip(expected, got):
    np.testing.assert_allclose(np.asarray(b), a, rtol=1e-9, atol=1e-13)
  assert np.abs(expected[0]).max() > 1e-6


def test_unsupported_parts_and_uneven_batches_are_clear_errors():
  strategy = replication.mirrored()
  with strategy.scope():
    problem = ExampleReweighting(_model(), N)
  distribute.check_supported(strategy, problem, build_method("random", problem, _config(
      "random")))
  # A refused part: its reason, on one line, and the methods that do replicate (read from the
  # classes, so proximal and the rule weights are among them).
  with pytest.raises(ValueError, match="_Refused cannot run replicated: its weights need the "
                     "whole batch on one device") as err:
    distribute.check_supported(strategy, problem, _Refused())
  message = str(err.value)
  assert "\n" not in message
  assert "Methods that replicate: approxgrad, batch_ratio, class_ratio, " in message
  for name in ("proximal", "random", "l2rw", "uniform"):
    assert name in message.split("Methods that replicate: ")[1]
  with pytest.raises(ValueError, match="_Undeclared cannot run replicated: it does not declare "
                     "supports_replication"):
    distribute.check_supported(strategy, _Undeclared(), problem)
  # Proximal needs whole splits on each replica: 3 splits over 2 replicas is refused when built.
  with strategy.scope():
    odd = ExampleReweighting(_model(), 6)
    cfg = _config("proximal")
    cfg.splits = 3
    with pytest.raises(ValueError, match="proximal.splits = 3 must be a multiple of the 2 "
                       "replicas: each split is one forward pass"):
      build_method("proximal", odd, cfg)
  with pytest.raises(ValueError, match="cannot be split evenly over 2 replicas"):
    distribute.split_batch({"x": np.zeros((5, 2))}, 0, 2)


def _config(name):
  return METHODS[name].default_config()


def test_strategy_config_errors():
  cfg = distribute.default_config()
  assert distribute.make_strategy(cfg) is None
  cfg.strategy = "horovod"
  with pytest.raises(ValueError, match="Unknown runner.distribute.strategy 'horovod'"):
    distribute.make_strategy(cfg)
  cfg = distribute.default_config()
  cfg.cpu_devices = 2
  with pytest.raises(ValueError, match="strategy is 'none'"):
    distribute.make_strategy(cfg)
  cfg.strategy = "mirrored"
  strategy = distribute.make_strategy(cfg)       # the session already has two CPU devices
  assert strategy.num_replicas_in_sync == 2
