"""Paper row: Learning to Reweight, BACKGROUNDFLIP on CIFAR-10 (or CIFAR-100) with ResNet-32.

The official run (cifar/cifar_train_background.py with cifar-resnet-32.prototxt): 10 clean
images per class (100 for CIFAR-10, 1,000 for CIFAR-100; drawn at random, not balanced, as the
original does), 40% of the training labels set to one background class as the official
generator codes it (``noise_as_coded``), batches of 100 + 100 augmented, momentum 0.9, lr 0.1
x0.1 at steps 40k and 60k, 80k steps, weight decay 2e-4. Baseline: uniform weights. Also the
official rows ``clean_only`` (2,000 steps), ``finetune`` (5,000 steps on the clean set), and the
words ``random`` (``--random_weight``) and ``batch_ratio`` (the background script's ``--ratio``:
the batch's most frequent label weighted 0.1 / (0.4 + 0.6 / K) of the others). The paper's
Table 1 numbers are not in our reference.

  python importance_learning/run.py \
      --config=importance_learning/configs/l2rw_cifar_background.py \
      --config.data_dir=/path/to/cifar10 --workdir=runs/l2rw_background_c10

Arguments (comma-separated): a noise level, ``cifar100``, ``random``, ``batch_ratio``, ``tiny``.
"""

from importance_learning.configs import l2rw_cifar_uniform


def get_config(arg=None):
  c = l2rw_cifar_uniform.row(model="resnet32", steps=80000, boundaries=(40000, 60000))
  c.split = "l2rw_background"
  c.noise_type = "background"
  c.epochs = -(-c.steps // 449)      # 44,900 / 100 steps per epoch; ``steps`` decides
  return l2rw_cifar_uniform.apply_row_args(c, arg, default_noise=0.4,
                                           words=("cifar100", "random", "batch_ratio"))
