"""Data parameters (a learned temperature per class and per example) in your own training loop.

  python examples/data_parameters_loop.py     # synthetic data; use your own batches

Each step takes {"train": {"x", "y", "index"}}; hard or mislabelled examples learn a higher
temperature sigma. Inference uses the model alone.
"""
import keras
import numpy as np
import tensorflow as tf

from common import bilevel
from common import problems


def main(epochs=30, n=1000, batch=100, seed=0):
  keras.utils.set_random_seed(seed)
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 2)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int64)
  noisy = np.where(rng.random(n) < 0.3, 1 - y, y)
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(32, activation="relu"),
                            keras.layers.Dense(2)])
  config = bilevel.DataParameterDescent.default_config()
  config.update({"lr": 0.05, "weight_decay": 0.0, "lr_milestones_epochs": ()})
  dp_config = problems.DataParameters.default_config()
  dp_config.update({"learn_class_parameters": True, "learn_inst_parameters": True,
                    "lr_inst_param": 1.0})
  config.data_params = dp_config
  data_params = problems.DataParameters.from_config(dp_config, 2, n)
  problem = problems.TemperatureScaledClassification(model, data_params)
  method = bilevel.build_method("data_parameters", problem, config)
  step = tf.function(method.step)
  for epoch in range(epochs):
    for idx in rng.permutation(n).reshape(-1, batch):
      step({"train": {"x": x[idx], "y": noisy[idx], "index": idx}})
    method.end_epoch(epoch + 1)
  sigma = np.exp(data_params.inst_parameters.numpy())
  flipped = noisy != y
  print(f"mean instance temperature: flipped {sigma[flipped].mean():.3f}, "
        f"clean {sigma[~flipped].mean():.3f}")
  return sigma, flipped


if __name__ == "__main__":
  main()
