"""Learning to Reweight on your own tf.data pipeline and Keras model.

  python examples/l2rw_own_pipeline.py        # synthetic data; swap in your own pipeline

A batch is {"train": {"x", "y", "index"}, "val": {"x", "y"}}: a noisy mini-batch with each
row's training-set index, and a clean one. The model must return logits.
"""
import keras
import numpy as np
import tensorflow as tf

from common import bilevel
from common.problems import ExampleReweighting


def main(steps=300, n=2000, batch=100, seed=0):
  keras.utils.set_random_seed(seed)
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 2)).astype(np.float32)
  y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
  noisy = np.where(rng.random(n) < 0.4, 1 - y, y)          # 40% of the labels flipped
  x_val, y_val = x[:100], y[:100]                            # a small trusted set
  train = (tf.data.Dataset.from_tensor_slices({"x": x, "y": noisy, "index": np.arange(n)})
           .shuffle(n, seed=seed).repeat().batch(batch, drop_remainder=True))
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, activation="relu"),
                            keras.layers.Dense(2)])
  problem = ExampleReweighting(model, batch, num_train=n)
  method = bilevel.build_method("l2rw", problem, bilevel.L2RW.default_config())
  step = tf.function(bilevel.combined_step(problem, method))
  val = {"x": tf.constant(x_val), "y": tf.constant(y_val)}
  for b in train.take(steps):
    step({"train": b, "val": val})
  weights = problem.scores()                                 # mean weight per point, 1 = uniform
  flipped = noisy != y
  print(f"mean weight: flipped labels {weights[flipped].mean():.3f}, "
        f"clean labels {weights[~flipped].mean():.3f}")
  return weights, flipped


if __name__ == "__main__":
  main()
