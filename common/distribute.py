"""Data-parallel training with ``tf.distribute``: strategies from the config, and the few
cross-replica operations a bilevel step needs to compute exactly what one device computes.

How a replicated step works (``replicated`` below): every replica receives the whole global
batch and keeps its own contiguous block of rows (replica r: rows [r n, (r+1) n), n = global
batch / replicas). Costs are written as *global* quantities from those blocks: ``mean`` and
``sum_across`` all-reduce the per-replica parts, so every replica holds the same value of f and
g, the value one device computes on the whole batch. Differentiation then follows one rule,
which makes first- and second-order gradients exact:

  * every replica differentiates the same global cost seeded with 1 / replicas (its share);
  * an all-reduce passes its incoming gradient through another all-reduce (TensorFlow's own
    gradient of ``ReplicaContext.all_reduce``), so shares from all replicas meet again;
  * gradients with respect to replicated tensors (model weights, u, anything every replica
    holds in full) are summed over replicas at the end: ``gradients`` does both ends.

With this rule the penalty method's |grad_v g|^2 term, whose gradient is a Hessian-vector
product through an all-reduce, and L2RW's per-example weights come out as on one device.
Per-example outer variables (importance-learning's batch slot z) are kept whole on every
replica; a replica reads its rows with ``local_rows`` and the summed gradient has every row.
Per-example state written after a step (z_all, weights) is written by every replica with
the gathered global ``index`` (``gather``), so the mirrored copies stay identical.

Variables are updated in replica context: TensorFlow lets each replica assign its own copy of
a variable created with aggregation NONE (the Keras default), and since every replica applies
the same summed gradient the copies never diverge, without a merge step.

What is not the same as one device: dropout masks (each replica draws its own) and batch
normalisation (statistics per replica, as in Keras' own distributed training). Methods and
problems declare ``supports_replication``; the others stop with a clear error, which gives the
part's ``replication_refusal`` (a one-line reason and what to do instead) when it has one.
"""

import contextlib

import tensorflow as tf

from common import defaults
from common import precision

STRATEGIES = ("none", "mirrored", "multi_worker_mirrored", "tpu")

# The runner's distribute block (common/defaults.py).
default_config = defaults.distribute


# -- strategies ------------------------------------------------------------------------------

def split_cpu(n):
  """Split the physical CPU into ``n`` logical devices; returns their names."""
  cpus = tf.config.list_physical_devices("CPU")
  existing = tf.config.get_logical_device_configuration(cpus[0])
  if existing is None or len(existing) != n:
    try:
      tf.config.set_logical_device_configuration(
          cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as e:
      raise RuntimeError(
          f"Cannot split the CPU into {n} logical devices: TensorFlow has already started "
          f"({e}). Set runner.distribute.cpu_devices before anything else runs.") from e
  return [d.name for d in tf.config.list_logical_devices("CPU")][:n]


def make_strategy(config):
  """The strategy ``config`` (a ``default_config()`` block) asks for; None for 'none'."""
  name = config.strategy
  if name not in STRATEGIES:
    raise ValueError(f"Unknown runner.distribute.strategy {name!r}; choose from "
                     f"{list(STRATEGIES)}.")
  if name == "none":
    if config.cpu_devices or config.devices:
      raise ValueError("runner.distribute.devices / cpu_devices are set but strategy is "
                       "'none'; set --config.runner.distribute.strategy=mirrored.")
    return None
  if name == "mirrored":
    devices = list(config.devices) or None
    if config.cpu_devices:
      if devices:
        raise ValueError("Give runner.distribute.devices or cpu_devices, not both.")
      devices = split_cpu(int(config.cpu_devices))
    cpus_only = devices is not None and all("cpu" in d.lower() for d in devices)
    # On CPU devices, reduce on one device: the collective all-reduce keeps per-device key
    # counters that go out of step when a process builds more than one strategy.
    return tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice() if cpus_only else None)
  if name == "multi_worker_mirrored":
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.tpu or None)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def scope(strategy):
  """Context in which models, problems and methods are built (their variables mirrored)."""
  return strategy.scope() if strategy is not None else contextlib.nullcontext()


def replicated_methods():
  """Names of the registered methods that declare ``supports_replication`` (read from the
  classes of ``common.bilevel.METHODS``)."""
  # Imported here: common.bilevel imports this module.
  from common.bilevel import METHODS  # pylint: disable=import-outside-toplevel
  return sorted(n for n, m in METHODS.items() if getattr(m, "supports_replication", False) is True)


def check_supported(strategy, *parts):
  """Raise unless every method/problem in ``parts`` declares ``supports_replication``; the
  error names each part that does not, with its ``replication_refusal`` reason if it has one,
  and the methods that replicate."""
  if strategy is None or strategy.num_replicas_in_sync == 1:
    return
  unsupported = [p for p in parts if not getattr(p, "supports_replication", False)]
  if unsupported:
    why = "; ".join(
        f"{type(p).__name__} cannot run replicated: " + (
            getattr(p, "replication_refusal", None)
            or "it does not declare supports_replication (its costs are not written as global "
               "quantities with common.distribute)") for p in unsupported)
    raise ValueError(
        f"{why} (runner.distribute.strategy={type(strategy).__name__}, "
        f"{strategy.num_replicas_in_sync} replicas). Methods that replicate: "
        f"{', '.join(replicated_methods())}, on problems that declare supports_replication. "
        "Otherwise run with runner.distribute.strategy=none.")


# -- inside a replica ------------------------------------------------------------------------

def _context():
  """The replica context of a strategy with several replicas, else None (one device)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return None
  return ctx


def num_replicas():
  ctx = _context()
  return 1 if ctx is None else ctx.num_replicas_in_sync


def sum_across(x):
  """Sum of the tensor ``x`` over replicas; differentiable (see above).

  One tensor per call: the gradient of a packed list all-reduce sends differently packed
  collectives from different replicas when one element's incoming gradient is missing.
  """
  ctx = _context()
  return x if ctx is None else ctx.all_reduce(tf.distribute.ReduceOp.SUM, x)


def mean(per_example):
  """The mean over the global batch of ``per_example`` values given for this replica's rows."""
  ctx = _context()
  if ctx is None:
    return tf.reduce_mean(per_example)
  total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(per_example))
  count = tf.cast(tf.size(per_example) * ctx.num_replicas_in_sync, total.dtype)
  return total / count


def gather(x):
  """The global batch's ``x`` from each replica's rows (replica order = row order).

  Written as an all-reduce of zero-padded blocks: it needs nothing but all-reduce from the
  strategy's cross-device ops (``ReductionToOneDevice`` has no all-gather).
  """
  ctx = _context()
  if ctx is None:
    return x
  r, n = ctx.num_replicas_in_sync, x.shape[0]
  placed = tf.scatter_nd(tf.reshape(ctx.replica_id_in_sync_group, [1, 1]), tf.expand_dims(x, 0),
                         [r, *x.shape])
  return tf.reshape(ctx.all_reduce(tf.distribute.ReduceOp.SUM, placed), [r * n, *x.shape[1:]])


def local_rows(x):
  """This replica's block of rows of a tensor every replica holds whole (batch-sized)."""
  ctx = _context()
  if ctx is None:
    return x
  r = ctx.num_replicas_in_sync
  blocks = tf.reshape(x, [r, x.shape[0] // r, *x.shape[1:]])
  return tf.gather(blocks, ctx.replica_id_in_sync_group)


def local_size(global_size):
  return int(global_size) // num_replicas()


def _seeded_gradient(tape, target, sources, share, unconnected_gradients):
  """tape.gradient with the seed ``share`` x the loss scale, the scale divided out again."""
  scale = precision.current_loss_scale()
  if share == 1.0 and scale == 1.0:
    return tape.gradient(target, sources, unconnected_gradients=unconnected_gradients)
  seed = tf.fill(tf.shape(target), tf.cast(share * scale, target.dtype))
  grads = tape.gradient(target, sources, output_gradients=seed,
                        unconnected_gradients=unconnected_gradients)
  if scale == 1.0:
    return grads
  return [_unscaled(g, scale) for g in grads]


def _unscaled(g, scale):
  """``g`` divided by the loss scale; a sparse gradient (``tf.IndexedSlices``, e.g. of rows
  gathered from a table) stays sparse."""
  if g is None:
    return None
  if isinstance(g, tf.IndexedSlices):
    return tf.IndexedSlices(g.values / tf.cast(scale, g.values.dtype), g.indices,
                            g.dense_shape)
  return g / tf.cast(scale, g.dtype)


def gradients(tape, target, sources, unconnected_gradients=tf.UnconnectedGradients.NONE):
  """d target / d sources for a global ``target`` and replicated ``sources``.

  One device: ``tape.gradient`` (with the float16 loss scale when one is set). Replicated:
  each replica's share (seed 1 / replicas), summed over replicas; differentiable, so it can
  sit inside another tape (second order).
  """
  ctx = _context()
  if ctx is None:
    return _seeded_gradient(tape, target, sources, 1.0, unconnected_gradients)
  grads = _seeded_gradient(tape, target, sources, 1.0 / ctx.num_replicas_in_sync,
                           unconnected_gradients)
  present = [i for i, g in enumerate(grads) if g is not None]
  if not present:          # nothing connected (the same on every replica): nothing to reduce
    return list(grads)
  summed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
  out = list(grads)
  for i, g in zip(present, summed):
    out[i] = g
  return out


def local_gradients(tape, target, sources, unconnected_gradients=tf.UnconnectedGradients.NONE):
  """d target / d sources for a global ``target`` and sources that live on this replica only
  (its rows of a per-example quantity): the share-seeded gradient, not summed."""
  ctx = _context()
  share = 1.0 if ctx is None else 1.0 / ctx.num_replicas_in_sync
  return _seeded_gradient(tape, target, sources, share, unconnected_gradients)


def loop(*args):
  """Iterations of a method's inner loop (``range``'s arguments): ``tf.range`` on one device;
  a Python range when replicated, because MirroredStrategy's all-reduce on CPU (a merge_call)
  cannot sit inside a graph while-loop. The replicated graph is then unrolled."""
  return tf.range(*args) if _context() is None else range(*[int(a) for a in args])


# -- the replicated step ---------------------------------------------------------------------

def split_batch(batch, replica_id, replicas):
  """This replica's block of rows of every array in ``batch`` (leading dims must divide)."""

  def block(x):
    x = tf.convert_to_tensor(x)
    n = x.shape[0]
    if n is None or n % replicas:
      raise ValueError(f"A batch array of leading size {n} cannot be split evenly over "
                       f"{replicas} replicas; use a global batch size divisible by {replicas}.")
    return tf.gather(tf.reshape(x, [replicas, n // replicas, *x.shape[1:]]), replica_id)

  return tf.nest.map_structure(block, batch)


def replicated(strategy, step_fn):
  """``step_fn(batch)`` run on every replica with its block of rows; returns the metrics
  (global values, identical on all replicas) from the first replica."""

  def step(batch):
    def on_replica(batch):
      ctx = tf.distribute.get_replica_context()
      return step_fn(split_batch(batch, ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync))

    per_replica = strategy.run(on_replica, args=(batch,))
    return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0],
                                 per_replica)

  return step
