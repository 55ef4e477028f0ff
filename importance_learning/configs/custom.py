"""Your own labelled data: which of its labels to trust (any importance method).

  python importance_learning/run.py --config=importance_learning/configs/custom.py \\
      --config.custom.train=/data/photos/train --config.custom.trusted_ids=trusted.txt \\
      --config.custom.test=/data/photos/test --workdir=runs/photos

Sources (``custom.*``, common/data/custom.py): an image folder (one sub-folder per class), an
.npz with ``x`` and ``y``, or a CSV with feature columns and ``custom.label_column``. The
trusted subset: a second folder / file (``custom.trusted``) or a list of ids of the training
data (``custom.trusted_ids``). Without ``custom.test``, ``custom.test_fraction`` of the training
pool is held out for testing.

Beside the usual outputs the run writes ``label_issues.csv`` (every training point, most
suspicious first, with the label the final classifier suggests) and, for images,
``label_issues.png`` (the most suspicious images). Batches larger than the data they are drawn from (a trusted subset of 60 points) are lowered to
its size, with a note (``batches_follow_data``); the per-step reweighting methods (l2rw,
proximal) train for at least ``per_step_min_steps`` steps (more epochs on small data, with a
note). ``noise`` > 0 corrupts that fraction of the
training labels first (to measure how well a method finds known corruptions); the default 0
uses your labels as they are.

Defaults: the penalty method with the small-step values of the detection study (lr_u 0.03)
and T = 5 inner steps (the paper rows use 20), the ``auto`` model (a small CNN for images, an MLP for features), batches of 100 and short
phases (pretraining, bilevel epochs, retraining and the baselines) sized for a CPU and a few
thousand examples: set ``epochs`` and the phases' ``epochs`` for more. Any method:
``--config.method=l2rw`` (example weights from trusted batches), ``proximal`` (no trusted data
needed) or ``data_parameters`` (a learned temperature per point; no trusted data needed).
Config arguments: ``tiny`` (a few steps).
"""

from common import defaults
from common.data import custom
from importance_learning.configs import base as base_lib


def get_config(arg=None):
  c = base_lib.base()
  c.dataset = "custom"
  c.source = "files"
  c.split = "custom"
  c.custom = custom.default_config()
  c.model = "auto"
  c.noise = 0.0
  c.noise_type = "first_fraction"   # on the pool's fixed shuffled order: random points
  c.batch_size = 100
  c.val_batch_size = 100
  c.batches_follow_data = True  # a batch larger than its data (a small trusted set) shrinks
  # The per-step reweighting methods (l2rw, proximal) train for at least this many
  # steps: 15 epochs of 1,287 points are 180 steps, after which the 8x8 digits' CNN is at 0.30
  # test accuracy; at 1,800 steps at 0.97 (measured, 30% flips).
  c.per_step_min_steps = 2000
  c.epochs = 15
  # The order of label_issues.csv: "auto" (measured by configs/ranking_study.py: the rank
  # average of the method's score and confident learning with trusted folds), or one column.
  c.label_issues_ranking = "auto"
  c.penalty.lr_u = 0.03
  c.penalty.inner_steps = 5     # the paper rows use T = 20: four times the cost per step
  c.pretrain.epochs = 200       # the trusted subset is small: many epochs, few steps each
  c.pretrain.lr = 1e-3
  c.importance_init.a_lo, c.importance_init.a_hi = 0.4, 0.6
  c.retrain.threshold = 0.5
  c.retrain.epochs = 30
  c.retrain.lr = 1e-3
  c.baseline.epochs = 30
  c.baseline.lr = 1e-3
  c.l2rw.lr = 1e-2
  c.proximal.lr = 1e-2
  # Data parameters (--config.method=data_parameters): the CIFAR-100 recipe's instance
  # temperatures (init 1, lr 0.2, no decay) with the model at the per-step methods' rate; no
  # learning-rate milestones (own runs are short).
  dp = defaults.data_parameter_descent()
  dp.update({"lr": 1e-2, "momentum": 0.9, "weight_decay": 0.0, "lr_milestones_epochs": ()})
  dp.data_params = defaults.data_parameters()
  dp.data_params.update({"learn_inst_parameters": True, "init_inst_param": 1.0,
                         "lr_inst_param": 0.2, "wd_inst_param": 0.0, "momentum": 0.9})
  c.data_parameters = dp
  c.eval_every_epochs = 1
  c.eval_batch_size = 500
  return base_lib.apply_args(c, arg, default_noise=0.0,
                             on_tiny=lambda c: setattr(c, "per_step_min_steps", 0))
