"""Clean-label poisoning, offline demonstration on two CIFAR-10 classes (penalty.md §8.3).

    python poisoning/run.py --config=poisoning/configs/cifar10_clean_label.py \\
        --config.data_dir=../shared/data/cifar10

The paper attacks dog/fish images through ImageNet InceptionV3 features
(``dogfish_clean_label.py``). Offline, this config plays the same protocol on two CIFAR-10
classes (dog vs frog by default) with a small CNN extractor that the run first trains on the
eight other classes, so the attacked classes' features come from a network that never saw
them, as ImageNet features never saw the dog/fish split. The attack settings are the
original's: penalty lr_u 1e-2, lr_v 1e-3, rho0 = lamb0 = eps0 = 1, nu0 0, T = 10, 201 outer
iterations per target, beta 0.01; classifier pre/retraining 2001 full-batch RMSProp(1e-3) steps.
"""

from poisoning.configs import clean_label_base


def get_config(arg=None):
  c = clean_label_base.base()
  c.dataset = "cifar10"
  c.classes = ("dog", "frog")
  c.extractor = "poisoning.features:cifar_feature_net"
  c.extractor_weights = "imagenet"     # ignored by a user/trained extractor
  c.train_extractor = True
  c.extractor_steps = 1500
  c.extractor_lr = 1e-3
  c.extractor_batch = 128
  c.num_targets = 10
  if clean_label_base.parse(arg):
    clean_label_base.make_tiny(c)
  return c
