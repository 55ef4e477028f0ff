"""The comparison of approaches (importance_learning/compare.py) on the default job's data.

  python importance_learning/run.py --config=importance_learning/configs/compare.py \
      --workdir=runs/compare
  # widen it in place: more methods or noise levels, same workdir
  python importance_learning/run.py --config=importance_learning/configs/compare.py \
      --config.compare.methods="('penalty','l2rw','approxgrad')" --workdir=runs/compare

Every other field is the default job's (embedded MNIST, the logistic-regression model, the
small protocol) and may be overridden as there, e.g. ``--config.source=files
--config.data_dir=DIR`` for the full MNIST files. Config arguments: ``tiny``.
"""

import ml_collections

from importance_learning.configs import default


def get_config(arg=None):
  c = default.get_config(arg)
  c.experiment = "compare"
  c.compare = ml_collections.ConfigDict({
      "methods": ("penalty", "l2rw"),
      "noise": (0.25, 0.4, 0.5),
  })
  return c
