"""Learning to Reweight's MNIST 4-vs-9 class imbalance, L2RW against its baselines.

Default: the embedded MNIST images (500 per digit, offline), scaled: n_train 400, 10 clean
validation images, 200 test images, proportion 0.98 of 9s (the largest the embedded data allows:
at 0.99, int(400 * 0.01) = 4 fours are fewer than the 5 that go to validation), 3 seeds:

  python importance_learning/run.py --config=importance_learning/configs/mnist_imbalance.py \
      --workdir=runs/imbalance

``:paper`` is the official sweep: MNIST IDX files, n_train 5000, n_val 10, n_test 500,
p in {0.9, 0.95, 0.98, 0.99, 0.995}, 10 seeds, L2RW 4,000 steps, baselines 8,000 steps, batch
100, momentum SGD lr 1e-3 (the original never wires its intended halving of the LR); the 4s and
9s drawn from the TensorFlow tutorial's 55,000-image train split (training images
5,000-59,999) as the original (``imbalance.tutorial_train_split``; False: all 60,000):

  python importance_learning/run.py \
      --config=importance_learning/configs/mnist_imbalance.py:paper \
      --config.data_dir=/path/to/mnist --workdir=runs/imbalance_paper

Other arguments (comma-separated): a proportion such as ``0.95``; ``tiny`` (smoke test).
"""

import ml_collections

from common import config_args
from common import runner
from common.bilevel import L2RW

PAPER_PROPORTIONS = (0.9, 0.95, 0.98, 0.99, 0.995)


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.experiment = "imbalance"
  c.dataset = "mnist"
  c.source = "embedded"       # embedded | files | tfds
  c.data_dir = ""
  c.tfds_download = False
  c.model = "l2rw_mnist_cnn"  # one logit, sigmoid cross-entropy
  c.l2rw = L2RW.default_config()   # lr 1e-3, momentum 0.9; also the baselines' optimiser
  c.imbalance = ml_collections.ConfigDict({
      "proportions": (0.98,),
      "methods": ("l2rw", "plain", "class_ratio", "random"),
      "n_train": 400,
      "n_val": 10,
      "n_test": 200,
      "batch_size": 100,
      "num_seeds": 3,
      "l2rw_steps": 4000,
      "baseline_steps": 8000,
      "eval_every_steps": 500,
      # The full MNIST training set (source files / tfds) is cut to the TensorFlow tutorial's
      # train split the original draws from: images 5,000-59,999 (its first 5,000 are the
      # tutorial's validation split). False: all 60,000. The embedded source is unaffected.
      "tutorial_train_split": True,
  })
  c.evaluators = ("accuracy",)   # every eval_every_steps (common/evaluators.py)
  c.runner = runner.default_config()
  c.runner.checkpoint_every = 1000
  args = config_args.parse(arg, takes=("number", "paper", "tiny"))
  if args.paper:
    c.source = "files"
    c.imbalance.update(dict(proportions=PAPER_PROPORTIONS, n_train=5000, n_test=500,
                            num_seeds=10))
  if args.number is not None:
    c.imbalance.proportions = (args.number,)
  if args.tiny:
    c.imbalance.update(dict(num_seeds=2, l2rw_steps=6, baseline_steps=6, eval_every_steps=3,
                            methods=("l2rw", "plain", "random")))
    runner.shrink_for_tiny(c.runner, checkpoint_every=None)
  return c
