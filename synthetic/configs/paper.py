"""Paper scale: SMD20-24 x {GD, RMD, ApproxGrad, Penalty} x T in {1, 5, 10}, 20 trials of
40,001 iterations each, as the original test (which ran SMD20, 21, 23, 24; SMD22 is added).

  python synthetic/run.py --config=synthetic/configs/paper.py --workdir=runs/synthetic/paper

Measured on 2 CPU cores with XLA: see synthetic/README.md. Re-running resumes per finished
(problem, method, T).
"""

from synthetic.configs import base as base_lib


def get_config(arg=None):
  return base_lib.apply_args(base_lib.base(), arg)
