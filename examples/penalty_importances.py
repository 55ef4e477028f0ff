"""Penalty-method importances for your own arrays: which training labels to trust.

  python examples/penalty_importances.py      # synthetic arrays; pass your own to main()

Bilevel: the classifier minimises the importance-weighted training loss; the importances
minimise the loss on a clean validation set. A batch is {"train": {"x", "y", "index"},
"val": {"x", "y"}}. Low importance = suspect label.
"""
import keras
import numpy as np
import tensorflow as tf

from common import bilevel
from common.problems import ImportanceProblem


def importances(x, y, x_val, y_val, num_classes, epochs=20, batch=100, seed=0):
  keras.utils.set_random_seed(seed)
  model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Dense(num_classes)])
  # The paper's protocol: pretrain on the clean set, start agreeing points at 0.6, others 0.4.
  model.compile(keras.optimizers.Adam(1e-2),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  model.fit(x_val, y_val, epochs=50, verbose=0)
  problem = ImportanceProblem(model, len(x), batch)
  problem.set_importances(np.where(model.predict(x, verbose=0).argmax(1) == y, 0.6, 0.4))
  config = bilevel.Penalty.default_config()
  config.lr_u = 0.1    # smaller outer steps rank better (importance_learning/README.md)
  method = bilevel.build_method("penalty", problem, config)
  step = tf.function(bilevel.combined_step(problem, method))
  rng = np.random.default_rng(seed)
  for _ in range(epochs):
    for idx in rng.permutation(len(x))[:len(x) // batch * batch].reshape(-1, batch):
      v = rng.choice(len(x_val), batch)
      step({"train": {"x": x[idx], "y": y[idx], "index": idx},
            "val": {"x": x_val[v], "y": y_val[v]}})
    problem.renormalise()                   # the original's end-of-epoch rescaling
  return problem.importances()


def main(n=1000, epochs=20):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(n + 200, 5)).astype(np.float32)
  y = (x[:, :2].sum(1) > 0).astype(np.int64)
  noisy = np.where(rng.random(n) < 0.3, 1 - y[:n], y[:n])
  a = importances(x[:n], noisy, x[n:], y[n:], 2, epochs)
  flipped = noisy != y[:n]
  print(f"mean importance: flipped {a[flipped].mean():.3f}, clean {a[~flipped].mean():.3f}")
  return a, flipped


if __name__ == "__main__":
  main()
