"""The default synthetic job: the paper's protocol with 3 trials instead of 20.

Every problem, method and T, full-length trials (40,001 iterations), so the curves show where
each method really ends up; about 6 minutes on 2 CPU cores (synthetic/README.md).

  python synthetic/run.py                                     # this config
  python synthetic/run.py --config=synthetic/configs/default.py:tiny --workdir=/tmp/smd
"""

from synthetic.configs import base as base_lib


def get_config(arg=None):
  c = base_lib.base()
  c.trials = 3
  return base_lib.apply_args(c, arg)
