"""What is timed: one training step of every registered method, on one model and batch.

Every case is built the way its family builds it (the importance-learning problem for the
penalty method, ApproxGrad, GD and RMD; per-step example reweighting for L2RW and proximal
reweighting; the data-parameters step of the curriculum family; plain Adam training), on a
fresh copy of the model, with random inputs of the model's shape. All forward passes are in
inference mode (no dropout), the penalty originals' setting, so every case does the same
arithmetic per forward pass as the SGD baseline it is divided by.

Each case is a ``Case``: ``fn`` runs one step and returns a dict of scalar tensors (``fn`` is
plain Python: the harness compiles it, or not, per mode), ``what`` says what one step is.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from common import models, problems
from common.bilevel import METHODS, base, build_method
from common.bilevel.optim import MomentumSGD
from common.problems import ImportanceProblem

# The references' models and the batch size of the penalty paper's denoising experiments
# (the importance mini-batch and the validation mini-batch are 200 each on both datasets).
MODELS = {
    "mnist_cnn": {"input_shape": (28, 28, 1), "builder": "mnist_cnn", "batch_size": 200},
    "cifar10_cnn": {"input_shape": (32, 32, 3), "builder": "cifar10_cnn", "batch_size": 200},
    # The MNIST small-scale experiment's logistic regression: a step is a few small kernels,
    # so this is where per-op overhead (eager vs compiled) shows.
    "mnist_logreg": {"input_shape": (28, 28, 1), "builder": "mnist_logreg", "batch_size": 200},
}

# Case names: the SGD baseline, every registered method (data parameters among them), the
# penalty method's inner step (one v-update, the unit its cost target is stated in), and the
# part of that inner step no implementation can avoid: grad_v g and one Hessian-vector product
# of g (reverse over reverse), without f and without the update.
BASELINE = "sgd"
# ... and L2RW in training mode (dropout on) with independent masks per pass (the official
# behaviour, the default) and with the fused single pass ("shared" masks).
EXTRA_CASES = ("penalty_inner", "penalty_hvp", "l2rw_dropout_independent",
               "l2rw_dropout_shared")


def case_names():
  return [BASELINE] + sorted(METHODS) + list(EXTRA_CASES)


# Methods whose step runs an inner loop: their loop length in a benchmark.
LOOPED = {name: m.loop_keys for name, m in METHODS.items() if m.loop_keys}


@dataclasses.dataclass
class Case:
  name: str
  fn: object          # () -> dict of scalar tensors
  what: str           # one line: what a step does
  model_params: int


def scaled_mnist_cnn(width):
  """The MNIST CNN with every layer's width multiplied by ``width`` (model-size scaling)."""

  def build(input_shape=(28, 28, 1), num_classes=10):
    w = lambda n: max(1, int(round(n * width)))
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(w(64), 5, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Conv2D(w(128), 5, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(w(512), activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(w(256), activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes),
    ], name=f"mnist_cnn_x{width:g}")

  return build


def _batch(rng, n, input_shape, num_classes, offset=0):
  return {"x": tf.constant(rng.random((n, *input_shape), dtype=np.float32)),
          "y": tf.constant(rng.integers(0, num_classes, n), tf.int32),
          "index": tf.constant(np.arange(offset, offset + n), tf.int32)}


def _method_config(name, loop_steps, num_classes=10):
  cfg = METHODS[name].default_config()
  for key in LOOPED.get(name, ()):
    cfg[key] = int(loop_steps)
  if name == "proximal":
    cfg.lr = 1e-3
  if name == "class_ratio":
    cfg.class_weights = (1.0 / num_classes,) * num_classes
  return cfg


def build_case(name, model_spec, batch_size, input_shape, num_classes=10, loop_steps=20,
               seed=0):
  """Case ``name`` on a fresh model built by ``model_spec`` (a name or a builder function)."""
  keras.utils.set_random_seed(seed)
  builder = model_spec if callable(model_spec) else models.resolve(model_spec)
  model = builder(tuple(input_shape), num_classes)
  model.build((None, *input_shape))
  rng = np.random.default_rng(seed)
  num_train = 4 * batch_size
  batch = {"train": _batch(rng, batch_size, input_shape, num_classes),
           "val": _batch(rng, batch_size, input_shape, num_classes)}
  params = models.count_params(model)

  if name == BASELINE:
    problem = problems.Classification(model)
    variables = problem.inner_variables
    opt = MomentumSGD(variables, 1e-3, 0.9, name="sgd")

    def sgd_step():
      v = base.values(variables)
      with tf.GradientTape() as tape:
        tape.watch(v)
        loss = problem.inner_cost([], v, batch)
      opt.apply(tape.gradient(loss, v), variables)
      return {"loss": loss}

    return Case(name, sgd_step, "momentum SGD on the mean cross-entropy", params)

  if name == "data_parameters":
    cfg = METHODS[name].default_config()
    cfg.lr = 1e-3
    cfg.data_params = problems.DataParameters.default_config()
    cfg.data_params.learn_class_parameters = True
    cfg.data_params.learn_inst_parameters = True
    data_params = problems.DataParameters.from_config(cfg.data_params, num_classes, num_train)
    method = build_method(name, problems.TemperatureScaledClassification(
        model, data_params, training=False), cfg)
    return Case(name, lambda: method.step(batch),
                "momentum SGD with class + instance temperatures (sparse momentum, clamp)",
                params)

  if name == "plain":
    method = build_method("plain", problems.Classification(model), METHODS["plain"]
                          .default_config())
    return Case(name, lambda: method.step(batch), "Adam on the mean cross-entropy", params)

  if name.startswith("l2rw_dropout_"):
    problem = problems.ExampleReweighting(model, batch_size, training=True,
                                          num_train=num_train)
    cfg = _method_config("l2rw", loop_steps, num_classes)
    cfg.dropout_masks = name[len("l2rw_dropout_"):]
    method = build_method("l2rw", problem, cfg)
    step = base.combined_step(problem, method)
    passes = ("a clean, a weight and an update pass, each with its own dropout masks"
              if method.separate_passes() else "one fused training pass")
    return Case(name, lambda: step(batch), f"L2RW in training mode: {passes}", params)

  if name in METHODS and METHODS[name].learns_example_weights:
    problem = problems.ExampleReweighting(model, batch_size, training=False,
                                          num_train=num_train)
    method = build_method(name, problem, _method_config(name, loop_steps, num_classes))
    step = base.combined_step(problem, method)
    what = {"l2rw": "weights from one clean batch, then momentum SGD on the weighted loss",
            "proximal": f"{method.config.get('splits')} split gradients, proximal weights, "
                        "momentum SGD"}.get(name, f"{name} weights, momentum SGD on the weighted "
                                                  "loss")
    return Case(name, lambda: step(batch), what, params)

  # The importance-learning problem: u = one logit per batch point, v = the model.
  problem = ImportanceProblem(model, num_train, batch_size)
  if name == "penalty_inner":
    cfg = _method_config("penalty", 1)
    method = build_method("penalty", problem, cfg)
    v_vars = list(problem.inner_variables)

    def inner_step():
      method.opt_v.apply(method.grad_v_lower(batch), v_vars)
      return {"rho": tf.identity(method.rho)}

    return Case(name, inner_step, "one v-update of the penalty method (Adam on grad_v h_low)",
                params)

  if name == "penalty_hvp":
    v_vars = list(problem.inner_variables)
    u = base.values(problem.outer_variables)

    def grad_and_hvp():
      v = base.values(v_vars)
      with tf.GradientTape() as outer:
        outer.watch(v)
        with tf.GradientTape() as inner:
          inner.watch(v)
          g = problem.inner_cost(u, v, batch)
        grad_g = inner.gradient(g, v)
        half_sq = 0.5 * base.sum_of_squares(grad_g)
      hvp = outer.gradient(half_sq, v)          # H grad_g
      return {"hvp_norm_sq": base.sum_of_squares(hvp)}

    return Case(name, grad_and_hvp, "grad_v g and one Hessian-vector product of g, no update",
                params)

  method = build_method(name, problem, _method_config(name, loop_steps))
  step = base.combined_step(problem, method)
  loops = ", ".join(f"{k}={loop_steps}" for k in LOOPED.get(name, ()))
  return Case(name, lambda: step(batch), f"one outer iteration ({loops})", params)


# -- before / after: the step with and without the passes it no longer takes -------------------

# (method, where): the steps whose passes changed. On the importance-learning problem
# (``fix_outer`` is the identity) ApproxGrad's: its residual metric no longer takes a pass of
# its own ("before" rebuilds the old step; the penalty method's step did not change and is its
# own "before", a control for the noise of the comparison). The few-shot meta-iteration with
# and without ``base.FixedOuter.pull_back`` is timed in its family: few_shot/speed.py.
BEFORE_AFTER = (("approxgrad", "mnist_cnn"), ("penalty", "mnist_cnn"))


def _approxgrad_separate_passes(method, problem, batch):
  """ApproxGrad's step as it was taken before the residual metric shared the hypergradient's
  pass: the same updates, R(p) at the final p from a pass of its own."""
  cfg = method.config
  u_vars, v_vars = list(problem.outer_variables), list(problem.inner_variables)

  def step():
    for _ in base.loop(int(cfg.inner_steps)):
      _, grad = method._grad_v(problem.inner_cost, base.values(u_vars), base.values(v_vars),
                               batch)
      method.opt_v.apply(grad, v_vars)
      base.assign_projected(v_vars, problem.project_inner)
    u, v = base.values(u_vars), base.values(v_vars)
    f, grad_v_f = method._grad_v(problem.outer_cost, u, v, batch)
    for _ in base.loop(int(cfg.p_steps)):
      _, grad_p = method.residual_and_grad(batch, grad_v_f)
      method.opt_p.apply(grad_p, method.p)
    residual, _ = method.residual_and_grad(batch, grad_v_f)
    method.opt_u.apply(method.hypergradient(batch), u_vars)
    base.assign_projected(u_vars, problem.project_outer)
    g = problem.inner_cost(base.values(u_vars), base.values(v_vars), batch)
    return {"f": f, "g": g, "residual": residual}

  return step


def build_before_after(method_name, where, loop_steps=20, seed=0):
  """(before Case, after Case) of ``method_name``'s step on model ``where`` (``BEFORE_AFTER``)."""
  spec = MODELS[where]
  after = build_case(method_name, spec["builder"], spec["batch_size"], spec["input_shape"],
                     loop_steps=loop_steps, seed=seed)
  if method_name != "approxgrad":
    before = build_case(method_name, spec["builder"], spec["batch_size"], spec["input_shape"],
                        loop_steps=loop_steps, seed=seed)
    return dataclasses.replace(before, name=f"{method_name}_before"), after
  keras.utils.set_random_seed(seed)
  model = models.resolve(spec["builder"])(tuple(spec["input_shape"]), 10)
  model.build((None, *spec["input_shape"]))
  rng = np.random.default_rng(seed)
  batch = {"train": _batch(rng, spec["batch_size"], spec["input_shape"], 10),
           "val": _batch(rng, spec["batch_size"], spec["input_shape"], 10)}
  problem = ImportanceProblem(model, 4 * spec["batch_size"], spec["batch_size"])
  method = build_method("approxgrad", problem, _method_config("approxgrad", loop_steps))
  inner = _approxgrad_separate_passes(method, problem, batch)

  def separate():
    problem.begin_step(batch, method)
    metrics = inner()
    problem.end_step(batch, method)
    return metrics

  before = Case("approxgrad_before", separate, "residual metric from a pass of its own",
                after.model_params)
  return before, after
