"""Convergence of GD, RMD, ApproxGrad and the penalty method on SMD20-SMD24.

  python synthetic/run.py                                        # 3 trials, ~6 min on 2 cores
  python synthetic/run.py --config=synthetic/configs/paper.py --workdir=runs/synthetic/paper
  python synthetic/run.py --config.methods='("penalty",)' --config.problems='("smd20",)'

Re-running the same command skips the (problem, method, T) runs already in --workdir.
"""

from common import cli


def main():
  """The console command (``pip install`` makes it ``bilevel-synthetic``)."""
  cli.main("synthetic", "default.py", {"default": "synthetic.experiment"},
           footer="\nCurves, table and figures in {workdir}")


if __name__ == "__main__":
  main()
