"""Paper rows: Mini-ImageNet, 5-way 1-shot and 5-shot (penalty.md §7.1, §7.3).

Residual encoder (3,543,424 parameters, 384-d features), scaled-cosine heads, meta-batch 2, 15
queries per class, 600 test tasks (300 test batches of 2), heads trained 100 Adam steps at
test time. Penalty: lr_u = lr_v = 1e-3, rho0 = lambda0 = eps0 = 1e-2, nu0 = 1e-4, x1.1 / x0.9 /
x0.9 and learning rates x0.99 on a passed test, T = 20, 20001 meta-iterations. ApproxGrad: all
rates 1e-3, sigma 1e-3, 20 v-steps and 20 p-steps, 10001 meta-iterations at 5 shots and 20001
at 1 shot. The original's defaults are 5-way 5-shot (penalty) and 5-way 1-shot (ApproxGrad).

  python few_shot/run.py --config=few_shot/configs/miniimagenet.py:5way,5shot \
      --config.data_dir=/data/miniimagenet --workdir=runs/fs_mini_5w5s

``data_dir`` holds mini-imagenet-cache-{train,val,test}.pkl (or a dataset_miniimagenet/
sub-folder with them); val is not used, as in the original.
"""

from few_shot.configs import base as base_lib


def get_config(arg=None):
  args = base_lib.parse_args(arg)
  c = base_lib.base()
  c.dataset = "miniimagenet"
  c.source = "files"
  c.image_size = 84
  c.images_per_class = 600    # of the cache pickles (smaller only for test files)
  c.encoder = "resnet_mini"
  c.ways = args.get("ways", 5)
  c.method = args.get("method", "penalty")
  c.shots = args.get("shots", 5 if c.method == "penalty" else 1)
  base_lib.set_penalty(c, 1e-3)
  base_lib.set_approxgrad(c, 1e-3)
  c.meta_batch = 2
  if c.method == "penalty":
    c.meta_iterations = 20001
  else:
    c.meta_iterations = 10001 if c.shots == 5 else 20001
  c.eval_lr = 1e-3
  if args.get("tiny"):
    base_lib.make_tiny(c)
  return c
