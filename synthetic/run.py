"""Convergence of GD, RMD, ApproxGrad and the penalty method on SMD20-SMD24.

  python synthetic/run.py                                        # 3 trials, ~6 min on 2 cores
  python synthetic/run.py --config=synthetic/configs/paper.py --workdir=runs/synthetic/paper
  python synthetic/run.py --config.methods='("penalty",)' --config.problems='("smd20",)'

Re-running the same command skips the (problem, method, T) runs already in --workdir.
"""

import pathlib
import sys

# The library's root on the path (until the project is installed as a package).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from common import cli  # noqa: E402

if __name__ == "__main__":
  cli.main("synthetic", "default.py", {"default": "synthetic.experiment"},
           footer="\nCurves, table and figures in {workdir}")
