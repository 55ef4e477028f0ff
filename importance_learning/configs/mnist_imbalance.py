"""Learning to Reweight's MNIST 4-vs-9 class imbalance, L2RW against its baselines.

Default: the paper's sweep at the scale of the 15,000-image offline MNIST pool
(source ``embedded_t10k``: the 5,000 embedded images joined with the 10,000 t10k IDX images in
data_dir, about 1,500 per digit). 250 4s and 250 9s are the test set, the same at every
proportion and seed; 5 + 5 clean validation images; every remaining 9 (1,254) and as many 4s as
p asks for (``n_train`` 0: 139 at 0.9 ... 6 at 0.995); p in {0.9, 0.95, 0.98, 0.99, 0.995};
5 seeds; the official CNN, optimiser and batch; steps cut from the official 4,000 / 8,000 (see
``STEPS_CUT`` and the README for where accuracy settles):

  python importance_learning/run.py --config=importance_learning/configs/mnist_imbalance.py \
      --config.data_dir=/path/to/mnist_t10k --workdir=runs/imbalance

``:small`` is the earlier 400-image scaling on the embedded images alone (no files needed):
n_train 400, 10 clean validation images, 200 test images, proportion 0.98 of 9s (the largest
that data allows: at 0.99, int(400 * 0.01) = 4 fours are fewer than the 5 that go to
validation), 3 seeds, the official step counts.

``:paper`` is the official sweep: MNIST IDX files, n_train 5000, n_val 10, n_test 500,
p in {0.9, 0.95, 0.98, 0.99, 0.995}, 10 seeds, L2RW 4,000 steps, baselines 8,000 steps, batch
100, momentum SGD lr 1e-3 (the original never wires its intended halving of the LR); the 4s and
9s drawn from the TensorFlow tutorial's 55,000-image train split (training images
5,000-59,999) as the original (``imbalance.tutorial_train_split``; False: all 60,000):

  python importance_learning/run.py \
      --config=importance_learning/configs/mnist_imbalance.py:paper \
      --config.data_dir=/path/to/mnist --workdir=runs/imbalance_paper

Other arguments (comma-separated): a proportion such as ``0.95``; ``tiny`` (smoke test: 6 steps,
two seeds, three methods; on the default, p 0.9 and 0.995 only).
"""

import ml_collections

from common import config_args
from common import defaults

PAPER_PROPORTIONS = (0.9, 0.95, 0.98, 0.99, 0.995)
OFFICIAL_STEPS = {"l2rw_steps": 4000, "baseline_steps": 8000}
# The default sweep's step counts: the official run's epochs, not its steps. Its 4,000 / 8,000
# steps of 100 are 80 / 160 epochs of its ~5,000 training images; here 1,000 / 2,000 steps are
# 80 / 160 epochs of the ~1,260 at p = 0.995 (72 / 143 of the ~1,400 at 0.9). At the official
# step counts (630 epochs of this pool) the plain baseline learns the few 4s (README).
STEPS_CUT = {"l2rw_steps": 1000, "baseline_steps": 2000}


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.experiment = "imbalance"
  c.dataset = "mnist"
  c.source = "embedded_t10k"  # embedded_t10k | embedded | files | tfds
  c.data_dir = ""
  c.tfds_download = False
  c.model = "l2rw_mnist_cnn"  # one logit, sigmoid cross-entropy
  c.l2rw = defaults.l2rw()   # lr 1e-3, momentum 0.9; also the baselines' optimiser
  c.imbalance = ml_collections.ConfigDict({
      "proportions": PAPER_PROPORTIONS,
      "methods": ("l2rw", "plain", "class_ratio", "random"),
      # > 0: the original's budget of n_train images (int(n_train * p) 9s); 0: every 9 the
      # pool has left after the test and validation images, and the 4s p asks for.
      "n_train": 0,
      "n_val": 10,
      "n_test": 500,
      "batch_size": 100,
      "num_seeds": 5,
      **STEPS_CUT,
      "eval_every_steps": 250,
      # The full MNIST training set (source files / tfds) is cut to the TensorFlow tutorial's
      # train split the original draws from: images 5,000-59,999 (its first 5,000 are the
      # tutorial's validation split). False: all 60,000. The embedded source is unaffected.
      "tutorial_train_split": True,
  })
  c.evaluators = ("accuracy",)   # every eval_every_steps (common/evaluators.py)
  c.runner = defaults.runner()
  c.runner.checkpoint_every = 1000
  c.runner.steps_per_call = 20   # 20 steps per compiled call: the same steps, ~10% less time
  args = config_args.parse(arg, takes=("number", "paper", "tiny"), words=("small",))
  small = "small" in args.words
  if args.paper and small:
    raise ValueError("mnist_imbalance takes ':paper' or ':small', not both.")
  if args.paper:
    c.source = "files"
    c.imbalance.update(dict(proportions=PAPER_PROPORTIONS, n_train=5000, n_test=500,
                            num_seeds=10, eval_every_steps=500, **OFFICIAL_STEPS))
    c.runner.steps_per_call = 1
  if small:
    c.source = "embedded"
    c.imbalance.update(dict(proportions=(0.98,), n_train=400, n_test=200, num_seeds=3,
                            eval_every_steps=500, **OFFICIAL_STEPS))
    c.runner.steps_per_call = 1
  if args.number is not None:
    c.imbalance.proportions = (args.number,)
  if args.tiny:
    c.imbalance.update(dict(num_seeds=2, l2rw_steps=6, baseline_steps=6, eval_every_steps=3,
                            methods=("l2rw", "plain", "random")))
    if c.imbalance.proportions == PAPER_PROPORTIONS and not args.paper:
      c.imbalance.proportions = (0.9, 0.995)     # the sweep's two ends
    defaults.shrink_runner_for_tiny(c.runner, checkpoint_every=None)
  return c
