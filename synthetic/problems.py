"""The synthetic bilevel test problems SMD20-SMD24 of the penalty paper.

u = (u1 in R^p, u2 in R^r), v = (v1 in R^q, v2 in R^r), p = q = r = 10, every block clipped to
[-5 + 1e-10, 5 - 1e-10] after every step. A1, A2 are 5 x 10 standard normal matrices (so g is
not strongly convex in v for SMD22-24: it is flat along the 5-dimensional null space of each
A_i), and P_i = A_i' (A_i A_i')^-1 A_i projects onto the row space of A_i; errors of the
components that the problem does not pin down are measured in that row space only.

  id     f                                        g                          optimum
  SMD20  |v|^2 + |u|^2 - 1                        |1 - u - v|^2              u = v = 0.5
  SMD21  |v|^2 - |u - v|^2                        |u - v|^2                  u = v = 0
  SMD22  |A v|^2 - |A (u - v)|^2                  |A (u - v)|^2              null(A)
  SMD23  |v|^2 - |A (u - v)|^2                    |A (u - v)|^2              u = -q, v = 0, q in null(A)
  SMD24  |v|^2 + |u|^2                            |A (1 - u - v)|^2          row-space parts 0.5

(|A x|^2 is |A1 x1|^2 + |A2 x2|^2 over the two blocks.) Initial points are uniform on
[c + s(-5 - c), c + s(5 - c)] per coordinate, centre c = 0.5 (SMD20, SMD24) or 0 (SMD21-23)
and spread s = 1 as in the original, i.e. U[-5, 5] for every problem, then clipped.

There are no data rows: replicated (``common.distribute``), every replica computes the same
full costs, and ``distribute.gradients`` (each replica's gradient seeded with 1 / replicas,
then summed) gives one device's gradients. ``compute_dtype`` (mixed precision) evaluates f and
g in 16 bits from the float32 variables and returns them in the variables' type.
"""

import numpy as np
import tensorflow as tf

from common.bilevel import BilevelProblem

DIM = 10          # p = q = r
A_ROWS = 5        # A_i is 5 x 10: rank-deficient lower level
BOX = 5.0 - 1e-10
SPREAD = 1.0      # the original's `std`: initial points on [c + s(-5 - c), c + s(5 - c)]


class SMD(BilevelProblem):
  """One synthetic problem; ``reinitialise(seed)`` draws A and the initial point of a trial."""

  centre = 0.0
  uses_matrices = False
  supports_replication = True

  def __init__(self, dtype=tf.float32, compute_dtype=None):
    super().__init__(name=type(self).__name__.lower())
    self.dtype = dtype
    # The type f and g are evaluated in (bfloat16 / float16 under mixed precision).
    self.compute_dtype = tf.as_dtype(compute_dtype or dtype)
    zeros = lambda n: tf.Variable(tf.zeros([DIM], dtype), name=n)
    self.u1, self.u2, self.v1, self.v2 = (zeros(n) for n in ("u1", "u2", "v1", "v2"))
    self.outer_variables = [self.u1, self.u2]
    self.inner_variables = [self.v1, self.v2]
    mat = lambda n: tf.Variable(tf.zeros([A_ROWS, DIM], dtype), trainable=False, name=n)
    proj = lambda n: tf.Variable(tf.zeros([DIM, DIM], dtype), trainable=False, name=n)
    self.A = [mat("A1"), mat("A2")]
    self.P = [proj("P1"), proj("P2")]

  def reinitialise(self, seed):
    """Draw this trial's A1, A2 and initial (u, v) from ``seed``, deterministically."""
    rng = np.random.default_rng(seed)
    mats = [rng.standard_normal((A_ROWS, DIM)) for _ in range(2)]
    for a_var, p_var, a in zip(self.A, self.P, mats):
      a = a.astype(self.dtype.as_numpy_dtype).astype(np.float64)
      a_var.assign(a)
      p_var.assign(a.T @ np.linalg.solve(a @ a.T, a))
    c = self.centre
    for var in self.outer_variables + self.inner_variables:
      x = rng.uniform(c + SPREAD * (-5.0 - c), c + SPREAD * (5.0 - c), size=DIM)
      var.assign(np.clip(x, -BOX, BOX))

  # -- the costs ---------------------------------------------------------------------------

  def outer_cost(self, u, v, batch):
    return self._in_precision(self._f, u, v)

  def inner_cost(self, u, v, batch):
    return self._in_precision(self._g, u, v)

  def _f(self, u, v):
    raise NotImplementedError

  def _g(self, u, v):
    raise NotImplementedError

  def _in_precision(self, cost, u, v):
    """``cost(u, v)`` in ``compute_dtype``, returned in the variables' type."""
    if self.compute_dtype == self.dtype:
      return cost(u, v)
    cast = lambda xs: [tf.cast(x, self.compute_dtype) for x in xs]  # noqa: E731
    return tf.cast(cost(cast(u), cast(v)), self.dtype)

  # -- shared pieces -----------------------------------------------------------------------

  def project_outer(self, u):
    return [tf.clip_by_value(x, -BOX, BOX) for x in u]

  project_inner = project_outer

  def _Asq(self, xs):
    """|A1 x1|^2 + |A2 x2|^2."""
    return tf.add_n([tf.reduce_sum(tf.square(tf.linalg.matvec(tf.cast(a, x.dtype), x)))
                     for a, x in zip(self.A, xs)])

  def _Psq(self, xs):
    """|P1 x1|^2 + |P2 x2|^2: the squared norm of the row-space components of (x1, x2)."""
    x1, x2 = xs
    return tf.add_n([tf.reduce_sum(tf.square(tf.linalg.matvec(p, x)))
                     for p, x in zip(self.P, (x1, x2))])

  @staticmethod
  def _sq(xs):
    return tf.add_n([tf.reduce_sum(tf.square(x)) for x in xs])

  def error(self):
    """Distance of the current (u, v) to the solution set (the paper's error measure)."""
    u = [tf.convert_to_tensor(x) for x in self.outer_variables]
    v = [tf.convert_to_tensor(x) for x in self.inner_variables]
    return tf.sqrt(self.squared_error(u, v))

  def squared_error(self, u, v):
    raise NotImplementedError

  def optimum(self):
    """One optimal (u, v) as numpy arrays [u1, u2], [v1, v2] (for tests)."""
    raise NotImplementedError


def _diff(xs, ys):
  return [x - y for x, y in zip(xs, ys)]


def _one_minus(u, v):
  return [1.0 - a - b for a, b in zip(u, v)]


class SMD20(SMD):
  centre = 0.5

  def _f(self, u, v):
    return self._sq(v) + self._sq(u) - 1.0

  def _g(self, u, v):
    return self._sq(_one_minus(u, v))

  def squared_error(self, u, v):
    return self._sq([x - 0.5 for x in u + v])

  def optimum(self):
    half = np.full(DIM, 0.5)
    return [half, half], [half, half]


class SMD21(SMD):

  def _f(self, u, v):
    return self._sq(v) - self._sq(_diff(u, v))

  def _g(self, u, v):
    return self._sq(_diff(u, v))

  def squared_error(self, u, v):
    return self._sq(u + v)

  def optimum(self):
    zero = np.zeros(DIM)
    return [zero, zero], [zero, zero]


class SMD22(SMD):
  uses_matrices = True

  def _f(self, u, v):
    return self._Asq(v) - self._Asq(_diff(u, v))

  def _g(self, u, v):
    return self._Asq(_diff(u, v))

  def squared_error(self, u, v):
    return self._Psq(u) + self._Psq(v)

  def optimum(self):
    zero = np.zeros(DIM)
    return [zero, zero], [zero, zero]


class SMD23(SMD):
  uses_matrices = True

  def _f(self, u, v):
    return self._sq(v) - self._Asq(_diff(u, v))

  def _g(self, u, v):
    return self._Asq(_diff(u, v))

  def squared_error(self, u, v):
    return self._Psq(u) + self._sq(v)

  def optimum(self):
    zero = np.zeros(DIM)
    return [zero, zero], [zero, zero]


class SMD24(SMD):
  centre = 0.5
  uses_matrices = True

  def _f(self, u, v):
    return self._sq(v) + self._sq(u)

  def _g(self, u, v):
    return self._Asq(_one_minus(u, v))

  def squared_error(self, u, v):
    return self._Psq([x - 0.5 for x in u]) + self._Psq([x - 0.5 for x in v])

  def optimum(self):
    # Row-space parts 0.5 P 1, null-space parts 0 (the minimum-norm solution): u = v = 0.5 P 1.
    half = [0.5 * p.numpy() @ np.ones(DIM) for p in self.P]
    return half, half


PROBLEMS = {cls.__name__.lower(): cls for cls in (SMD20, SMD21, SMD22, SMD23, SMD24)}
