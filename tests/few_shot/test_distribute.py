"""Few-shot learning under tf.distribute: the meta-batch's tasks split over two logical CPU
devices (conftest splits the CPU) give the one-device meta-step, in float64, for the penalty
method (the family's default) and ApproxGrad (both encoder corrections); and the command
line runs mirrored."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import distribute
from tests import replication
from common.bilevel import base, build_method, get_method
from few_shot import experiment
from few_shot import models
from few_shot.configs import omniglot as omniglot_config
from few_shot.problem import FewShotProblem
from tests import cli
from tests.few_shot.test_run import OMNIGLOT, _omniglot_npz

M, N, K, Q, SIZE = 4, 2, 1, 2, 8       # 4 tasks: 2 per replica
# Eager steps: the same replicated maths, without minutes of tracing the unrolled second-order
# graphs (the command-line runs below compile them).
COMPILED = False


def _batches(steps=2):
  rng = np.random.default_rng(0)
  out = []
  for s in range(steps):
    templates = rng.random((M, N, SIZE, SIZE, 1))

    def part(count):
      y = np.tile(np.arange(N), count)[None].repeat(M, 0).astype(np.int32)
      noise = 0.3 * rng.normal(size=(M, N * count, SIZE, SIZE, 1))
      return templates[np.arange(M)[:, None], y] + noise, y

    (sx, sy), (qx, qy) = part(K), part(Q)
    out.append({"support_x": sx, "support_y": sy, "query_x": qx, "query_y": qy,
                "head_seed": np.tile(np.array([0, s], np.int64), (M, 1))})
  return out


def _encoder():
  """A small set-aware encoder as conv4 ([G, B, H, W, C] -> [G, B, d], batch norm per set), in
  float64."""
  f64 = dict(dtype="float64")
  inputs = keras.Input((None, SIZE, SIZE, 1), dtype="float64")
  x = models.Grouped(keras.layers.Conv2D(4, 3, padding="same", use_bias=False, **f64),
                     **f64)(inputs)
  x = keras.layers.ReLU(**f64)(models.SetBatchNorm(**f64)(x))
  x = models.Grouped(keras.layers.MaxPooling2D(4, **f64), **f64)(x)
  return keras.Model(inputs, keras.layers.Reshape((-1, 16), **f64)(x))


def _build(kind):
  """The encoder, the problem (its heads) and the method."""
  keras.utils.set_random_seed(0)
  encoder = _encoder()
  problem = FewShotProblem(encoder, True, M, N)
  name = kind.split(":")[0]
  cfg = get_method(name).default_config()
  cfg.update(lr_u=1e-2, lr_v=5e-2, inner_steps=2)
  if name == "penalty":
    cfg.eps0 = 1e6              # the test passes: the multiplier update runs too
  if name == "approxgrad":
    cfg.update(lr_p=1e-2, p_steps=2, correction=kind.split(":")[1])
  return encoder, problem, build_method(name, problem, cfg)


def _run(kind, strategy):
  with distribute.scope(strategy):
    encoder, problem, method = _build(kind)
  distribute.check_supported(strategy, problem, method)
  step_fn = base.combined_step(problem, method)

  def meta_step(batch):        # as few_shot/experiment.py's
    problem.init_heads(batch["head_seed"][0])
    return step_fn(batch)

  step = meta_step if strategy is None else distribute.replicated(strategy, meta_step)
  if COMPILED:
    step = tf.function(step)
  metrics = [{k: float(v) for k, v in step(b).items()} for b in _batches()]
  variables = (list(problem.outer_variables) + list(problem.inner_variables)
               + list(method.variables))
  state = {f"{i}:{v.name}": replication.copies(v)
           for i, v in enumerate(variables)}
  return metrics, state


@pytest.mark.parametrize("kind", ["penalty", "approxgrad:all_groups", "approxgrad:first_group"])
def test_tasks_split_over_two_replicas_equal_one_device(kind):
  one_metrics, one_state = _run(kind, None)
  strategy = replication.mirrored()
  two_metrics, two_state = _run(kind, strategy)
  replication.assert_same_run(one_metrics, one_state, two_metrics, two_state, kind)
  fresh = _build(kind)[0]          # the step moved the encoder (u)
  assert not np.allclose(fresh.trainable_variables[0].numpy(), one_state["0:kernel"][0])
  if kind == "penalty":
    assert one_metrics[-1]["passed"] == 1.0


@pytest.mark.slow
def test_tiny_run_mirrored_gives_the_one_device_results(tmp_path):
  """The tiny job (2 tasks per meta-batch: one per replica) mirrored over two logical CPUs
  through the command line, beside the same job on one device in this process (float32: the
  same up to summation order)."""
  data = _omniglot_npz(tmp_path / "omniglot")
  two = cli.start("few_shot/run.py", f"{OMNIGLOT}:5way,1shot,tiny", f"--config.data_dir={data}",
                  "--config.penalty.inner_steps=1", f"--workdir={tmp_path / 'two'}",
                  *cli.MIRRORED)
  config = omniglot_config.get_config("5way,1shot,tiny")
  config.data_dir, config.penalty.inner_steps = str(data), 1
  ref = experiment.run(config, str(tmp_path / "one"), log=lambda *_: None)
  assert "Data-parallel over 2 replicas (MirroredStrategy)" in cli.finish(two)

  def steps(name):
    recs = [json.loads(l) for l in (tmp_path / name / "metrics.jsonl").open()]
    return [r for r in recs if r["kind"] == "step"]

  one, two = steps("one"), steps("two")
  assert [r["step"] for r in two] == [1, 2]
  for a, b in zip(one, two):
    for k in ("f", "g"):
      assert np.isfinite(b[k]) and b[k] == pytest.approx(a[k], rel=1e-4), k
  res = json.loads((tmp_path / "two" / "results.json").read_text())
  assert res["test_accuracy"] == pytest.approx(ref["test_accuracy"], abs=0.05)
