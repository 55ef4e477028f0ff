"""Bilevel methods behind one interface, picked by name from one explicit registry.

Adding a method: write a ``tf.Module`` with ``default_config()``, ``__init__(problem, config)``
and ``step(batch) -> dict of scalars``, then add it to ``METHODS`` below.
"""

from common.bilevel.approxgrad import ApproxGrad
from common.bilevel.base import BilevelProblem, combined_step
from common.bilevel.penalty import Penalty
from common.bilevel.plain import Plain

METHODS = {
    "approxgrad": ApproxGrad,
    "penalty": Penalty,
    "plain": Plain,
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


__all__ = ["ApproxGrad", "BilevelProblem", "METHODS", "Penalty", "Plain", "build_method", "combined_step",
           "get_method"]
