"""A quadratic bilevel problem with closed-form optimum and hypergradient (float64).

    g(u, v) = 1/2 v'Av - v'Bu            v*(u) = A^-1 B u
    f(u, v) = 1/2 |v - c|^2 + 1/2 u'Du   F(u) = f(u, v*(u))
    dF/du   = Du + B' A^-1 (v*(u) - c)
"""

import numpy as np
import tensorflow as tf

from common.bilevel import BilevelProblem, ReweightingProblem, TemperatureProblem


class Quadratic(BilevelProblem):

  def __init__(self, n=4, m=3, seed=0, dtype=tf.float64):
    super().__init__()
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, n))
    self.A = q @ q.T / n + np.eye(n)
    self.B = rng.normal(size=(n, m))
    self.c = rng.normal(size=n)
    self.D = 0.1 * np.eye(m)
    self.u = tf.Variable(rng.normal(size=m), dtype=dtype, name="u")
    self.v = tf.Variable(rng.normal(size=n), dtype=dtype, name="v")
    self.outer_variables = [self.u]
    self.inner_variables = [self.v]
    self._A, self._B, self._c, self._D = (tf.constant(x, dtype) for x in
                                          (self.A, self.B, self.c, self.D))

  def inner_cost(self, u, v, batch):
    (u,), (v,) = u, v
    return 0.5 * tf.tensordot(v, tf.linalg.matvec(self._A, v), 1) - tf.tensordot(
        v, tf.linalg.matvec(self._B, u), 1)

  def outer_cost(self, u, v, batch):
    (u,), (v,) = u, v
    return 0.5 * tf.reduce_sum(tf.square(v - self._c)) + 0.5 * tf.tensordot(
        u, tf.linalg.matvec(self._D, u), 1)

  # closed forms (numpy)
  def v_star(self, u):
    return np.linalg.solve(self.A, self.B @ u)

  def hypergradient(self, u):
    return self.D @ u + self.B.T @ np.linalg.solve(self.A, self.v_star(u) - self.c)

  def u_star(self):
    M = np.linalg.solve(self.A, self.B)
    return np.linalg.solve(M.T @ M + self.D, M.T @ self.c)


class JointQuadratic(Quadratic, TemperatureProblem):
  """The quadratic's u and v descended together on one cost, as data parameters are:

      g(u, v) = 1/2 v'Av - v'Bu + 1/2 u'Eu - c'v,   E = B'A^-1 B + I (jointly convex)

  The method adds coupled decay wd/2 |v|^2, so its limit is the solution of
  (A + wd I) v - B u = c,  E u - B'v = 0: not the bilevel optimum u*.
  """

  outer_names = ("class",)     # the rate of u is the method's ``lr_class_param``

  def __init__(self, seed=0, dtype=tf.float64):
    super().__init__(seed=seed, dtype=dtype)
    self.E = self.B.T @ np.linalg.solve(self.A, self.B) + np.eye(len(self.D))
    self._E = tf.constant(self.E, dtype)

  def inner_cost(self, u, v, batch):
    (uu,), (vv,) = u, v
    return (super().inner_cost(u, v, batch) + 0.5 * tf.tensordot(uu, tf.linalg.matvec(
        self._E, uu), 1) - tf.tensordot(self._c, vv, 1))

  def joint_minimiser(self, weight_decay):
    n, m = self.B.shape
    H = np.block([[self.A + weight_decay * np.eye(n), -self.B], [-self.B.T, self.E]])
    x = np.linalg.solve(H, np.concatenate([self.c, np.zeros(m)]))
    return x[n:], x[:n]


class Regression(ReweightingProblem):
  """Least squares with outliers, for example-reweighting methods (float64).

  Training examples y_i = x_i' theta* (+ 4 for the last ``outliers`` of them), clean examples
  exactly y = x' theta*. Reweighting against the clean set should recover theta*; the plain
  mean fit is pulled towards the outliers.
  """

  def __init__(self, n=12, d=3, outliers=3, n_clean=6, seed=0, dtype=tf.float64):
    super().__init__()
    rng = np.random.default_rng(seed)
    self.theta_star = rng.normal(size=d)
    self.X = rng.normal(size=(n, d))
    self.y = self.X @ self.theta_star
    self.y[n - outliers:] += 4.0
    self.Xc = rng.normal(size=(n_clean, d))
    self.yc = self.Xc @ self.theta_star
    self.theta = tf.Variable(rng.normal(size=d), dtype=dtype, name="theta")
    self.outer_variables = []
    self.inner_variables = [self.theta]
    self.batch_size = n
    self.outliers = outliers
    self.train_key = "train"      # where fixed-rule weights read a batch's labels
    self._X, self._y, self._Xc, self._yc = (tf.constant(a, dtype) for a in
                                            (self.X, self.y, self.Xc, self.yc))

  def example_losses(self, v, batch, update_state=True, rows=None):
    (theta,) = v
    X, y = (self._X, self._y) if rows is None else (self._X[rows], self._y[rows])
    return 0.5 * tf.square(tf.linalg.matvec(X, theta) - y)

  def clean_cost(self, v, batch):
    (theta,) = v
    return tf.reduce_mean(0.5 * tf.square(tf.linalg.matvec(self._Xc, theta) - self._yc))

  def weight_decay(self, v):
    return tf.constant(0.0, v[0].dtype)

  def inner_cost(self, u, v, batch):
    return tf.reduce_mean(self.example_losses(v, batch))

  def outer_cost(self, u, v, batch):
    return self.clean_cost(v, batch)

  def least_squares(self):
    return np.linalg.lstsq(self.X, self.y, rcond=None)[0]

  def weighted_least_squares(self, w):
    """argmin sum_i w_i (x_i' theta - y_i)^2 / 2."""
    xw = self.X * w[:, None]
    return np.linalg.solve(self.X.T @ xw, xw.T @ self.y)
