"""Clean-label poisoning of dog/fish through InceptionV3 features (penalty.md §8.3).

    python poisoning/run.py --config=poisoning/configs/dogfish_clean_label.py \\
        --config.data_dir=/data/dogfish        # holds dataset_dog-fish_train-900_test-300.npz

Features: keras.applications InceptionV3 (no top, global average pooling, 2048-d) with the
ImageNet weights from the Keras cache (~/.keras/models); without network, put the file there
or pass --config.extractor_weights=/path/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5,
or your own extractor as --config.extractor=package.module:function. Every test image is a
target in turn (num_targets=0), as in the original; penalty lr_u 1e-2, lr_v 1e-3,
rho0 = lamb0 = eps0 = 1, nu0 0, T = 10, 201 outer iterations per target, beta 0.01.
"""

from poisoning.configs import clean_label_base


def get_config(arg=None):
  c = clean_label_base.base()
  c.dataset = "dogfish"
  c.extractor = "inception_v3"
  c.extractor_weights = "imagenet"
  c.num_targets = 0
  if clean_label_base.parse(arg):
    clean_label_base.make_tiny(c)
  return c
