"""TensorFlow Datasets as a source: a prepared TFDS directory, or a download when allowed."""

import numpy as np

from common.errors import DataNotFoundError


def read_tfds(tfds_name, data_dir, download):
  """uint8 NHWC images and int64 labels of the 'train' and 'test' splits.

  Returns (x_train, y_train, x_test, y_test, class_names, origin). Downloads only when
  `download` is True: offline machines get a clear error instead of a network retry loop.
  The order is TFDS's own (it shuffles examples when it prepares a dataset), so "the first
  5000 training images" here are not the same images as in the canonical files.
  """
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  builder = prepared_builder(tfds_name, data_dir, download)
  arrays = []
  for split in ("train", "test"):
    # Batched by hand rather than as_dataset(batch_size=-1): that pads to one batch of
    # `total_num_examples or sys.maxsize`, which aborts the process when the split sizes are
    # unknown (e.g. under tfds.testing.mock_data); a fixed batch is just as fast.
    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    xs, ys = [], []
    for x, y in tfds.as_numpy(dataset.batch(4096)):
      xs.append(x)
      ys.append(y)
    if not xs:
      raise DataNotFoundError(f"TFDS dataset {tfds_name!r} under {builder.data_dir} has an "
                              f"empty {split!r} split")
    arrays += [np.concatenate(xs).astype(np.uint8, copy=False),
               np.concatenate(ys).astype(np.int64)]
  class_names = tuple(builder.info.features["label"].names)
  return (*arrays, class_names, f"TFDS {builder.info.full_name} in {builder.data_dir}")


def prepared_builder(tfds_name, data_dir, download, hint=""):
  """The TFDS builder of ``tfds_name``, prepared (downloading only when ``download``), else a
  DataNotFoundError saying how to get it; ``hint`` is appended to that message."""
  # Imported here: tensorflow_datasets takes seconds to import and only this source needs it.
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  builder = tfds.builder(tfds_name, data_dir=str(data_dir) if data_dir else None)
  if not builder.is_prepared():
    if not download:
      raise DataNotFoundError(
          f"TFDS dataset {tfds_name!r} is not prepared under {builder.data_dir}. Pass "
          f"tfds_download=True when online (config field `tfds_download`) to download and "
          f"prepare it there, or point data_dir at a prepared TFDS directory (one holding "
          f"{tfds_name}/<version>/dataset_info.json).{' ' + hint if hint else ''}")
    builder.download_and_prepare()
  return builder
