"""Paper row: Learning to Reweight, UNIFORMFLIP on CIFAR-10 (or CIFAR-100) with WRN-28-10.

The official run (cifar/cifar_train.py with cifar-wide-resnet-28-10.prototxt): 1,000 clean
images, 40% uniform flip as the official generator codes it (``noise_as_coded``; False gives the
paper's guaranteed flip), batches of 100 noisy + 100 clean images both augmented (pad 2, crop
32, flip, x -> 2x - 1), momentum 0.9, lr 0.1 -> 0.01 at step 40k -> 0.001 at 50k, 60k steps
(its scheduler switches before the step it counts from 1: the 40,000th step, index 39,999,
already runs at 0.01; ``l2rw.lr_boundaries_one_based``, False: from index 40,000),
weight decay 2e-4 on kernels (also in the clean gradient of the weights), dropout 0.3. The
baseline is the same training with uniform weights (the official ``--baseline``). The other
rows of the official scripts: the clean set alone for 2,000 steps (``clean_only``, its
"clean only"), the L2RW model fine-tuned 5,000 steps on the clean set (``finetune``, its
``--finetune --restore``), and the word ``random`` runs its ``--random_weight`` (random
weights instead of L2RW's, the same optimiser and schedule). The paper's Table 2 numbers are
not in our reference.

  python importance_learning/run.py --config=importance_learning/configs/l2rw_cifar_uniform.py \
      --config.data_dir=/path/to/cifar-10-batches-py/.. --workdir=runs/l2rw_uniform_c10
  ...l2rw_cifar_uniform.py:cifar100 ...   (CIFAR-100: the same, 100 classes)

Arguments (comma-separated): a noise level, ``cifar100``, ``resnet32``, ``random``, ``tiny``.
"""

from common import defaults
from importance_learning.configs import base as base_lib

# The fixed-rule rows a word switches to (their config blocks: common/defaults.py).
RULE_ROWS = ("random", "batch_ratio")


def row(dataset="cifar10", model="wrn28_10", steps=60000, boundaries=(40000, 50000)):
  c = base_lib.base()
  c.dataset = dataset
  c.batch_ratio = defaults.rule_weights("batch_ratio")
  c.batch_ratio.num_classes = 10
  c.split = "l2rw_uniform"
  c.model = model
  c.method = "l2rw"
  c.noise_type = "uniform"
  c.noise_as_coded = True
  c.augmentation = "l2rw_cifar"
  c.train_mode_layers = True         # train-mode passes: dropout and batch statistics
  c.weight_decay = 2e-4
  c.batch_size = 100
  c.val_batch_size = 100
  c.steps = steps
  c.epochs = -(-steps // 440)        # 44,000 / 100 steps per epoch; ``steps`` decides
  c.eval_every_epochs = 10
  # cifar_train.py calls FixedLearnRateScheduler.step(niter) before the step niter (from 0);
  # it assigns the new rate when niter + 1 == boundary: boundaries count steps from 1.
  c.l2rw.update(dict(lr=0.1, momentum=0.9, decay_in_clean_gradient=True,
                     lr_boundaries_steps=boundaries, lr_boundaries_factor=0.1,
                     lr_boundaries_one_based=True))
  # The fixed-rule rows train with L2RW's optimiser and schedule.
  for name in RULE_ROWS:
    c[name] = defaults.rule_weights(name)
    c[name].update({k: c.l2rw[k] for k in ("lr", "momentum", "lr_boundaries_steps",
                                           "lr_boundaries_factor", "lr_boundaries_one_based")})
  c.baselines.run = ("clean_only", "oracle", "confident_learning", "finetune")
  c.baselines.clean_only_steps = 2000
  c.baselines.finetune_steps = 5000
  c.retrain.enabled = False
  c.eval_batch_size = 500
  c.runner.checkpoint_every = 1000
  c.runner.log_every = 50
  return c


def apply_row_args(c, arg, default_noise, words=("cifar100", "resnet32", "random")):
  """The words ``cifar100``, ``resnet32`` and the fixed-rule rows (``random``,
  ``batch_ratio``); noise and ``tiny`` by the shared rule."""
  def rule(name):
    def switch(c):
      c.method = name
    return switch

  def cifar100(c):
    c.dataset = "cifar100"
    c.batch_ratio.num_classes = 100

  switches = {"cifar100": cifar100, "resnet32": lambda c: setattr(c, "model", "resnet32"),
              **{name: rule(name) for name in RULE_ROWS}}
  return base_lib.apply_args(c, arg, default_noise, {w: switches[w] for w in words})


def get_config(arg=None):
  return apply_row_args(row(), arg, default_noise=0.4)
