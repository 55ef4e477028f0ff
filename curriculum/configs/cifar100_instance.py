"""Paper row: CIFAR-100 with 20 / 40 / 80% corrupted labels, instance-level data parameters.

The original's README command (`main_cifar.py --rand_fraction 0.4 --init_inst_param 1.0
--lr_inst_param 0.2 --wd_inst_param 0.0 --learn_inst_parameters`) with WRN-28-10 (dropout 0),
batch 128, momentum SGD lr 0.1, coupled weight decay 5e-4, x0.1 at epochs 80 and 100, 120
epochs, seed 1; the reported accuracy is the epoch-84 model. Original's README: 75% / 71% / 35%
at 20 / 40 / 80% noise (baseline 50.0% at 40%).

  python curriculum/run.py --config=curriculum/configs/cifar100_instance.py:0.4 \
      --config.data_dir=/path/to/cifar-100-python/.. --workdir=runs/dp_cifar100_40
"""

from curriculum.configs import base as base_lib


def get_config(arg=None):
  return base_lib.apply_args(base_lib.base(), arg, default_noise=0.4)
