"""Bilevel methods behind one interface, picked by name from one explicit registry.

Adding a method: subclass ``base.Method`` (a ``tf.Module``) with ``default_config()``,
``__init__(problem, config)`` and ``step(batch) -> dict of scalars``, add it to ``METHODS``
below, and give it its cases in ``tests/common/test_methods.py`` (the suite fails for a
registered method it does not cover).
"""

from common.bilevel.approxgrad import ApproxGrad
from common.bilevel.base import BilevelProblem, Method, combined_step
from common.bilevel.gd import GD
from common.bilevel.l2rw import L2RW
from common.bilevel.penalty import Penalty
from common.bilevel.plain import Plain
from common.bilevel.proximal import ProximalReweighting
from common.bilevel.rmd import RMD
from common.bilevel.rule_weights import RuleWeights

METHODS = {
    "approxgrad": ApproxGrad,
    "gd": GD,
    "l2rw": L2RW,
    "penalty": Penalty,
    "plain": Plain,
    "proximal": ProximalReweighting,
    "rmd": RMD,
}


def get_method(name):
  """The method class registered as ``name``; a clear error listing the choices otherwise."""
  try:
    return METHODS[name]
  except KeyError:
    raise ValueError(f"Unknown method {name!r}; registered methods: {sorted(METHODS)}.") from None


def build_method(name, problem, config):
  """Instantiate method ``name`` on ``problem`` with its config block ``config``."""
  return get_method(name)(problem, config)


__all__ = ["ApproxGrad", "BilevelProblem", "GD", "L2RW", "METHODS", "Method", "Penalty", "Plain",
           "ProximalReweighting", "RMD", "RuleWeights", "build_method", "combined_step",
           "get_method"]
