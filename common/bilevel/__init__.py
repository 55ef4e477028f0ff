"""Bilevel methods behind one interface, picked by name from one explicit registry.

The contract (``base.Method``): a ``tf.Module`` owning all its state, with ``default_config()``,
``__init__(problem, config)``, ``step(batch) -> dict of scalars`` and ``shrink_for_tiny(config)``;
its capabilities declared on the class (``needs_outer_variables``, ``learns_example_weights``,
``uses_clean_batches``, ``supports_replication``) and the problem interface it works on
(``problem_interface``: ``BilevelProblem``; ``ReweightingProblem`` for per-step example
weights; ``TemperatureProblem`` for data parameters); every gradient through ``base.gradients``,
every inner loop through ``base.loop``. Methods know no runner, data or family
(``tests/test_imports.py``).

Adding a method: subclass ``base.Method``, add it to ``METHODS`` below, and give it its cases in
``tests/common/test_methods.py`` (the suite fails for a registered method it does not cover).
"""

import keras

from common import defaults
from common import models
from common.bilevel.approxgrad import ApproxGrad
from common.bilevel.base import (BilevelProblem, Method, ReweightingProblem, TemperatureProblem,
                                  combined_step)
from common.bilevel.data_parameters import DataParameterDescent
from common.bilevel.gd import GD
from common.bilevel.l2rw import L2RW
from common.bilevel.penalty import Penalty
from common.bilevel.plain import Plain
from common.bilevel.proximal import ProximalReweighting
from common.bilevel.rmd import RMD
from common.bilevel.rule_weights import (BatchRatioWeights, ClassRatioWeights, RandomWeights,
                                           RuleWeights, UniformWeights)
from common.errors import ConfigError

METHODS = {
    "approxgrad": ApproxGrad,
    "batch_ratio": BatchRatioWeights,
    "class_ratio": ClassRatioWeights,
    "data_parameters": DataParameterDescent,
    "gd": GD,
    "l2rw": L2RW,
    "penalty": Penalty,
    "plain": Plain,
    "proximal": ProximalReweighting,
    "random": RandomWeights,
    "rmd": RMD,
    "uniform": UniformWeights,
}


def get_method(name):
  """The method class registered as ``name``; a clear error listing the choices otherwise."""
  try:
    return METHODS[name]
  except KeyError:
    raise ValueError(f"Unknown method {name!r}; registered methods: {sorted(METHODS)}.") from None


def build_method(name, problem, config):
  """Instantiate method ``name`` on ``problem`` with its config block ``config``; an error
  naming both when the problem lacks the interface the method works on."""
  method = get_method(name)
  model = getattr(problem, "model", None)
  if isinstance(model, keras.Model):
    if not model.weights:
      raise ConfigError(f"The model of method {name!r} has no weights yet: a subclassed Keras "
                        "model creates them when first called; call it on a batch "
                        "(model(x[:1])) before building the problem.")
    models.check_ends_in_logits(model, f"The model of method {name!r}")
  if not isinstance(problem, method.problem_interface):
    raise ConfigError(f"method {name!r} works on a {method.problem_interface.__name__}; "
                      f"{type(problem).__name__} is not one.")
  try:
    return method(problem, config)
  except ConfigError:
    raise
  except ValueError as e:     # a method checks its config block when it is built
    raise ConfigError(str(e)) from None


__all__ = ["ApproxGrad", "BatchRatioWeights", "BilevelProblem", "ClassRatioWeights", "DataParameterDescent", "GD",
           "L2RW", "METHODS", "Method", "Penalty", "Plain", "ProximalReweighting", "RMD",
           "RandomWeights", "ReweightingProblem", "RuleWeights", "TemperatureProblem",
           "UniformWeights", "build_method", "combined_step", "get_method",
           "shrink_for_tiny"]


# Shrink every method block in a config for a smoke run (``tiny``; common/defaults.py).
shrink_for_tiny = defaults.shrink_methods_for_tiny
