"""Paper rows: Omniglot, 5-way and 20-way, 1-shot and 5-shot (penalty.md §7.1-7.2).

Conv4 encoder (111,424 parameters), scaled-cosine heads, 15 queries per class, the original's
meta-train / meta-test split (the first 1200 characters x 4 rotations = 4800 classes, the
other 423 x 4 = 1692). 5-way: 5000 meta-iterations (ApproxGrad 5001) of 30 tasks; 20-way:
10000 (10001) of 15 tasks. 600 test tasks, heads trained 100 Adam steps. Penalty: lr_u = lr_v
= 1e-2, rho0 = lambda0 = eps0 = 1e-2, nu0 = 1e-4, x1.1 / x0.9 / x0.9 and learning rates x0.99
on a passed test, T = 20, test-time Adam 1e-3. ApproxGrad: all rates 1e-2, sigma 1e-3, 20
v-steps and 20 p-steps, test-time Adam 1e-2. The original's committed default is 20-way 5-shot.

  python few_shot/run.py --config=few_shot/configs/omniglot.py:5way,1shot \
      --config.data_dir=/data/omniglot --workdir=runs/fs_omniglot_5w1s

``data_dir`` holds images_background.zip and images_evaluation.zip (or those folders) of the
official release with ``--config.source=files``, or the compact images_background.npz /
images_evaluation.npz with ``--config.source=npz`` (the default); ``--config.source=tfds``
reads TFDS's omniglot.
"""

from few_shot.configs import base as base_lib


def get_config(arg=None):
  args = base_lib.parse_args(arg)
  c = base_lib.base()
  c.dataset = "omniglot"
  c.encoder = "conv4"
  c.ways = args.get("ways", 20)
  c.shots = args.get("shots", 5)
  c.method = args.get("method", "penalty")
  base_lib.set_penalty(c, 1e-2)
  base_lib.set_approxgrad(c, 1e-2)
  extra = 1 if c.method == "approxgrad" else 0      # the ApproxGrad scripts run one more
  if c.ways == 5:
    c.meta_iterations, c.meta_batch = 5000 + extra, 30
  else:
    c.meta_iterations, c.meta_batch = 10000 + extra, 15
  c.eval_lr = 1e-3 if c.method == "penalty" else c.approxgrad.lr_v
  if args.get("tiny"):
    base_lib.make_tiny(c)
  return c
