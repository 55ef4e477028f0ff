"""Fields shared by the few-shot configs, and their command-line arguments.

Config arguments (after the colon in ``--config=...py:ARG``), comma-separated:
``5way`` / ``20way`` (N), ``1shot`` / ``5shot`` (K), ``penalty`` / ``approxgrad`` (the method),
and ``tiny`` (a few meta-iterations on small tasks, for smoke tests).
"""

import ml_collections

from common import config_args
from common import defaults


def base():
  c = ml_collections.ConfigDict()
  c.dataset = "omniglot"
  c.source = "npz"
  c.data_dir = ""
  c.tfds_download = False
  c.cache_dir = ""            # Omniglot: keep the resized images here between runs
  c.image_size = 28
  c.resize_method = "nearest"
  c.encoder = "conv4"
  # A user's 4-D encoder whose layers act on each image alone (models.acts_per_image): True
  # encodes every set of a meta-batch in one call instead of set by set (the same features).
  # Off: on a 2-core CPU one call was 1.3 x slower (README, "Speed of a meta-iteration").
  c.encoder_one_call = False
  c.ways = 20
  c.shots = 5
  c.queries = 15
  c.meta_batch = 15
  c.meta_iterations = 10000
  c.eval_every = 1000         # the original evaluates when (it + 1) % 1000 == 0
  c.eval_tasks = 600
  c.evaluators = ("task_accuracy",)   # mean and 95% CI over the test tasks (common/evaluators.py)
  c.eval_steps = 100          # niter_simple: head-only Adam steps on each test support set
  c.eval_lr = 1e-3
  c.method = "penalty"
  c.penalty = defaults.penalty()
  c.approxgrad = defaults.approxgrad()
  c.approxgrad.lr_decay_every_epochs = 0    # the multi-group original never decays
  c.seed = 0
  c.deterministic = True          # tf op determinism: same seed, same metrics.jsonl (CPU)
  # True (the original's protocol): every evaluation draws new test tasks, keyed on
  # (eval_seed, the meta-iteration it happens at), so a resumed run sees the same ones; the
  # final evaluation at meta_iterations too. False: one fixed set of eval_tasks tasks at every
  # evaluation (lower variance between evaluations, not the original's).
  c.eval_fresh_tasks = True
  c.eval_seed = 12345         # the test tasks (and the test-time heads' initialisation)
  c.runner = defaults.runner()
  c.runner.log_every = 10
  c.runner.checkpoint_every = 100
  return c


def set_penalty(c, lr):
  """The multi-group penalty settings of the original (lr_u = lr_v = ``lr``)."""
  c.penalty.update(dict(lr_u=lr, lr_v=lr, rho0=1e-2, lamb0=1e-2, eps0=1e-2, nu0=1e-4, c_rho=1.1,
                        c_lamb=0.9, c_eps=0.9, lr_decay=0.99, inner_steps=20))


def set_approxgrad(c, lr):
  """The multi-group ApproxGrad settings of the original (lr_u = lr_v = lr_p = ``lr``)."""
  c.approxgrad.update(dict(lr_u=lr, lr_v=lr, lr_p=lr, sigma=1e-3, inner_steps=20, p_steps=20))


def parse_args(arg):
  """{"ways", "shots", "method", "tiny"} from the config argument (absent keys: not given),
  by the grammar of common/config_args.py."""
  args = config_args.parse(arg, takes=("ways", "shots", "tiny"), methods=("penalty", "approxgrad"))
  out = {k: getattr(args, k) for k in ("ways", "shots", "method") if getattr(args, k) is not None}
  if args.tiny:
    out["tiny"] = True
  return out


def make_tiny(c):
  """Two meta-iterations of 2 small tasks and a 4-task evaluation: seconds on a CPU."""
  c.meta_iterations = 2
  c.eval_every = 2
  c.meta_batch = 2
  c.queries = 3
  c.eval_tasks = 4
  c.eval_steps = 3
  defaults.shrink_methods_for_tiny(c)
  defaults.shrink_runner_for_tiny(c.runner)
  return c
