"""THE training loop: every phase of every experiment runs through ``Runner.run_phase``.

What it gives each run, in ``workdir``:
  config.json         the resolved config (a different config in the same workdir is an error)
  checkpoints/        everything stateful, every ``checkpoint_every`` steps and at phase ends
  metrics.jsonl       one JSON record per logged step and per epoch end
  tensorboard/        the same scalars as TensorBoard events
  results.json        written once, atomically, at the end

Re-running the same command resumes: every phase records how many steps it has done in the
checkpoint, finished phases are skipped, the interrupted one continues from its last
checkpoint. Batches are a pure function of the step number (``batch_fn(step)``), so a resumed
run sees the same data as an uninterrupted one. A non-finite metric stops the run at once with
the step at which it appeared; the checkpoint on disk stays the last good one.
"""

import contextlib
import errno
import json
import math
import os
import pathlib
import shutil
import signal
import sys
import threading
import time

import numpy as np
import tensorflow as tf
import tqdm

from common import defaults
from common import distribute
from common import evaluators as evaluatorslib
from common import lock
from common import precision
from common import records
from common.errors import (CheckpointError, ConfigError, Interrupted, NonFiniteError,
                           Stopped)

# The runner block of every family's config, and its smoke-run version (common/defaults.py).
default_config = defaults.runner
shrink_for_tiny = defaults.shrink_runner_for_tiny


class Setup:
  """The strategy and precision a run's ``runner`` config asks for.

  A family that supports them builds its models, problems and methods inside ``scope()``,
  calls ``check(...)`` on its methods and problems, and passes the setup to ``Runner``. A
  family that does not never creates one, and ``Runner`` stops with a clear error when its
  config asks for either.
  """

  def __init__(self, config):
    try:
      self._build(config)
    except ValueError as e:        # unknown strategy or precision, bad devices: one line
      raise ConfigError(str(e)) from None

  def _build(self, config):
    self.precision = precision.check(config.get("precision", "float32"))
    self.loss_scale = float(config.get("loss_scale", 1.0)) \
        if self.precision == "mixed_float16" else 1.0
    if not self.loss_scale > 0:
      raise ConfigError(f"runner.loss_scale must be > 0, got {config.loss_scale}.")
    self.strategy = distribute.make_strategy(config.distribute) if "distribute" in config \
        else None

  @property
  def num_replicas(self):
    return 1 if self.strategy is None else self.strategy.num_replicas_in_sync

  @contextlib.contextmanager
  def scope(self):
    """Variables created here are mirrored; models built here get the dtype policy."""
    with distribute.scope(self.strategy), precision.policy(self.precision):
      yield

  def check(self, *parts):
    """Raise unless every method / problem in ``parts`` can run in this setup."""
    try:
      distribute.check_supported(self.strategy, *parts)
    except ValueError as e:
      raise ConfigError(str(e)) from None
    if self.precision == "mixed_float16":
      # Loss scaling lives in distribute.gradients, which the same parts use.
      unscaled = list(dict.fromkeys(type(p).__name__ for p in parts
                                    if not getattr(p, "supports_replication", False)))
      if unscaled:
        raise ConfigError(f"{', '.join(unscaled)} take gradients without the float16 loss "
                         "scale; use runner.precision=mixed_bfloat16 (no scaling needed).")

  def log_replicas(self, log, what=""):
    """Say, when there are several replicas, how the run is split (``what``: over which rows)."""
    if self.num_replicas > 1:
      log(f"Data-parallel over {self.num_replicas} replicas ({type(self.strategy).__name__})"
          f"{', ' + what if what else ''}; precision {self.precision}.")

  def check_batch_size(self, name, size):
    if int(size) % self.num_replicas:
      raise ConfigError(f"{name} = {size} cannot be split evenly over {self.num_replicas} "
                       "replicas; choose a multiple of the number of replicas.")

  def wrap(self, step_fn):
    """``step_fn`` run on every replica, under the loss scale (traced inside)."""
    fn = step_fn
    if self.loss_scale != 1.0:
      def fn(batch, _inner=step_fn):
        with precision.loss_scale(self.loss_scale):
          return _inner(batch)
    return distribute.replicated(self.strategy, fn) if self.strategy is not None else fn


def requested(config):
  """Which of distribute / precision the runner config asks for (for families without them)."""
  asked = []
  if "distribute" in config and config.distribute.strategy != "none":
    asked.append(f"runner.distribute.strategy={config.distribute.strategy!r}")
  if config.get("precision", "float32") != "float32":
    asked.append(f"runner.precision={config.precision!r}")
  return asked


class _NoRetracingNotes:
  """Drops TensorFlow's "triggered tf.function retracing" notes: every phase compiles its own
  step (and a call of several steps one trace per call length), every fresh model its own
  predict function; the runner checks its step functions for unexpected retracing itself."""

  installed = False

  @classmethod
  def install(cls):
    if not cls.installed:
      tf.get_logger().addFilter(
          lambda rec: "triggered tf.function retracing" not in rec.getMessage())
      cls.installed = True


class Runner:
  """Runs named phases with checkpoint/resume, logging and a NaN guard.

  Args:
    workdir: output folder (created).
    config: the ``runner`` config block (see ``default_config``).
    state: dict name -> trackable (models, methods, problems, tf.Variables) saved in the
      checkpoint. Create everything a run will touch before constructing the Runner, so a
      resumed run restores it all.
    phases: names of all phases the run may execute, in order.
    run_config: the full experiment config, saved as config.json and compared on resume.
  """

  def __init__(self, workdir, config, state, phases, run_config=None, log=None, setup=None):
    self.workdir = pathlib.Path(workdir)
    self.config = config
    if setup is None and requested(config):
      raise ConfigError(
          f"This experiment does not support {' and '.join(requested(config))} yet (the "
          "importance_learning, few_shot, curriculum, poisoning and synthetic families do). "
          "Leave them at their defaults.")
    self.setup = setup
    per_call = int(config.get("steps_per_call", 1))
    if per_call < 1:
      raise ConfigError(f"runner.steps_per_call must be >= 1, got {per_call}.")
    if per_call > 1 and setup is not None and setup.num_replicas > 1:
      raise ConfigError("runner.steps_per_call > 1 runs on one device only; set it to 1 for a "
                        "replicated run.")
    self.log = log or (lambda msg: print(msg, flush=True))
    _NoRetracingNotes.install()
    lock.claim(self.workdir)          # one run per workdir, before anything is written
    if run_config is not None:
      self._check_config(run_config)
    self.progress = {name: tf.Variable(0, dtype=tf.int64, trainable=False, name=f"{name}_steps")
                     for name in phases}
    self.checkpoint = tf.train.Checkpoint(progress=self.progress, **state)
    self.metrics_path = self.workdir / "metrics.jsonl"
    restored = self._restore()
    self.manager = tf.train.CheckpointManager(self.checkpoint, self.workdir / "checkpoints",
                                              max_to_keep=2)
    self.resumed = restored is not None
    done = {k: int(v.numpy()) for k, v in self.progress.items()}
    if self.resumed:
      self.log(f"Resuming from {restored} (steps done per phase: {done}).")
    # Records past the restored steps (all of them when nothing was restored: a run killed
    # before its first checkpoint) will be logged again: drop them.
    self._truncate_metrics(done)
    self.writer = tf.summary.create_file_writer(str(self.workdir / "tensorboard"))
    if run_config is not None and not self.resumed:
      self._write_hparams(run_config)
    self.phase_seconds = {}
    # Seconds per phase of the earlier invocations, up to the restored checkpoint (the work
    # after it is redone, and counted again, in this one).
    self._seconds_path = self.workdir / "phase_seconds.json"
    self.seconds_before = self._read_seconds() if self.resumed else {}
    self._clock = None          # (phase, start time) while a phase runs
    self.steps_this_invocation = 0
    self._call_lengths = set()

  # -- set-up helpers ----------------------------------------------------------------------

  def _check_config(self, run_config):
    changed = records.check_or_write_config(
        self.workdir, run_config, allow_change=bool(self.config.get("allow_config_change")))
    if changed:
      self.log(f"Config changed on resume ({', '.join(changed)}); the previous one is in "
               f"{self.workdir / 'config_history.jsonl'}.")

  def _restore(self):
    """Restore the newest intact checkpoint; its path, or None when there is none.

    Checkpoints are found from their files (``ckpt-N.index``), not from TF's index file, so a
    damaged index never restarts a run. A checkpoint that cannot be read is moved to
    ``checkpoints/damaged/`` (kept, out of the way) and the previous one is tried, with a
    notice; when checkpoints exist but none can be read, CheckpointError says what to delete.
    """
    folder = self.workdir / "checkpoints"
    numbers = sorted((int(p.name[5:-6]) for p in folder.glob("ckpt-*.index")
                      if p.name[5:-6].isdigit()), reverse=True) if folder.is_dir() else []
    failed = []
    for n in numbers:
      prefix = folder / f"ckpt-{n}"
      try:
        self.checkpoint.restore(str(prefix)).assert_existing_objects_matched()
      except (tf.errors.OpError, ValueError, AssertionError, IndexError, OSError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        failed.append(f"ckpt-{n}: {reason}")
        continue
      if failed:
        damaged = folder / "damaged"
        damaged.mkdir(exist_ok=True)
        for bad in numbers[:len(failed)]:
          for f in folder.glob(f"ckpt-{bad}.*"):
            os.replace(f, damaged / f.name)
        self.log(f"Checkpoint(s) unreadable ({'; '.join(failed)}): moved to {damaged}; resumed "
                 f"from ckpt-{n} instead.")
      # TF's index file names the restored checkpoint as the latest (it may be damaged).
      _write_checkpoint_index(folder, n, [m for m in numbers if m <= n])
      return prefix
    if failed:
      raise CheckpointError(
          f"no intact checkpoint in {folder} ({'; '.join(failed)}). Delete {folder} and "
          f"{self.metrics_path} to start this run over, or restore the folder from a backup.")
    return None

  def _truncate_metrics(self, done):
    """Drop records logged after the checkpoint we resume from (they will be logged again)."""
    if not self.metrics_path.exists():
      return
    kept, damaged = [], []
    lines = self.metrics_path.read_bytes().decode("utf-8", "replace").splitlines()
    for number, line in enumerate(lines, 1):
      try:
        rec = json.loads(line)
      except ValueError:
        rec = None
      if not isinstance(rec, dict):
        # A kill or a full disk mid-write leaves a partial line: dropped (a record past the
        # checkpoint, logged again), with a notice.
        damaged.append(number)
        continue
      if rec.get("step", 0) <= done.get(rec.get("phase"), 0):
        kept.append(line)
    if damaged:
      self.log(f"NOTE: {self.metrics_path} had {len(damaged)} unreadable line(s) (line "
               f"{', '.join(map(str, damaged[:5]))}{', ...' if len(damaged) > 5 else ''}: a "
               "write cut short by a kill or a full disk); dropped.")
    records.write_text(self.metrics_path, "".join(k + "\n" for k in kept))

  def steps_done(self, phase):
    return int(self.progress[phase].numpy())

  def compile(self, fn):
    if self.setup is not None:
      fn = self.setup.wrap(fn)
    if self.config.eager:
      return fn
    return tf.function(fn, jit_compile=bool(self.config.jit_compile), reduce_retracing=False)

  # -- logging -----------------------------------------------------------------------------

  def record(self, phase, step, metrics, kind="step"):
    """Append one record to metrics.jsonl and TensorBoard."""
    rec = {"phase": phase, "step": int(step), "kind": kind, "time": time.time()}
    rec.update({k: _to_python(v) for k, v in metrics.items()})
    with self.metrics_path.open("a") as fh:
      fh.write(json.dumps(rec, default=records.json_default) + "\n")
    with self.writer.as_default():
      for k, v in metrics.items():
        v = _to_python(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
          tf.summary.scalar(f"{phase}/{k}", v, step=int(step))

  def histograms(self, phase, values):
    """TensorBoard histograms ``{name: array}`` at the phase's current step."""
    step = self.steps_done(phase)
    with self.writer.as_default():
      for name, array in values.items():
        tf.summary.histogram(name, array, step=step)

  # -- the loop ----------------------------------------------------------------------------

  def run_phase(self, name, step_fn, batch_fn, num_steps, steps_per_epoch=None,
                on_start=None, on_epoch_end=None, steps_per_call=None, evaluators=()):
    """Run ``step_fn(batch_fn(step))`` for steps [done, num_steps) of phase ``name``.

    ``on_start()`` runs once, when the phase starts from step 0 (not on resume).
    At each epoch end (epochs counted from 1) ``on_epoch_end(epoch)`` runs (an epoch
    schedule, say; it may return a dict of metrics to record), then the ``evaluators``
    (``common.evaluators``) due at that epoch: their scalars are recorded and printed after
    the hook's, their arrays written as TensorBoard histograms.
    ``step_fn`` must return a dict of scalar tensors; it is compiled here.
    ``steps_per_call`` overrides ``runner.steps_per_call`` for this phase (one device only:
    replicated, it is 1).
    """
    num_steps = int(num_steps)
    done = self.steps_done(name)
    if num_steps == 0:
      self.log(f"[{name}] not part of this run (0 steps).")
      return
    if done >= num_steps:
      self.log(f"[{name}] already complete ({done} steps), skipped.")
      return
    per_call = int(steps_per_call or self.config.get("steps_per_call", 1))
    if self.setup is not None and self.setup.num_replicas > 1:
      per_call = 1
    if done == 0 and on_start is not None:
      on_start()
    self._call_lengths = set()
    compiled = self.compile(step_fn if per_call == 1 else _several_steps(step_fn))
    last_saved = done
    started = time.time()
    self._clock = (name, started)
    bar = tqdm.tqdm(total=num_steps, initial=done, desc=name, unit="step", dynamic_ncols=True,
                    disable=not self.config.progress_bar, file=sys.stderr, mininterval=1.0)
    pending = []     # (step, metrics) of the current call not yet gone through the loop below
    stop = _StopRequests(self.log)
    try:
      stop.install()
      for step in range(done, num_steps):
        if per_call == 1:
          metrics = compiled(batch_fn(step))
        else:
          if not pending:
            end = self._call_end(step, num_steps, per_call, steps_per_epoch)
            batches = [batch_fn(s) for s in range(step, end)]
            stacked = compiled(tf.nest.map_structure(lambda *xs: tf.stack(xs), *batches),
                               tf.constant(end - step))
            pending = [(s, {k: v[i] for k, v in stacked.items()})
                       for i, s in enumerate(range(step, end))]
          _, metrics = pending.pop(0)
        values = {k: _to_python(v) for k, v in metrics.items()}
        bad = sorted(k for k, v in values.items() if not math.isfinite(v))
        if bad:
          raise NonFiniteError(
              f"[{name}] non-finite {', '.join(f'{k}={values[k]}' for k in bad)} at step "
              f"{step + 1}; every metric was finite up to step {step}. Stopped; "
              + self._resume_advice(name, last_saved))
        self.progress[name].assign(step + 1)
        if (step + 1) % self.config.log_every == 0 or step + 1 == num_steps:
          self.record(name, step + 1, values)
          bar.set_postfix({k: f"{v:.4g}" for k, v in list(values.items())[:3]}, refresh=False)
        if steps_per_epoch and (step + 1) % steps_per_epoch == 0 and (
            on_epoch_end is not None or evaluators):
          epoch = (step + 1) // steps_per_epoch
          num_epochs = num_steps // steps_per_epoch
          epoch_metrics = dict(on_epoch_end(epoch) or {}) if on_epoch_end is not None else {}
          scalars, arrays = evaluatorslib.run(evaluators, epoch, num_epochs)
          epoch_metrics.update(scalars)
          if arrays:
            self.histograms(name, arrays)
          if epoch_metrics:
            self.record(name, step + 1, epoch_metrics, kind="epoch")
          # Print about ten epoch lines per phase; every epoch is in metrics.jsonl.
          if epoch_metrics and (epoch % max(1, num_epochs // 10) == 0 or epoch == num_epochs):
            line = f"[{name}] epoch {epoch}/{num_epochs}: " + ", ".join(
                f"{k}={records.fmt(v)}" for k, v in epoch_metrics.items())
            # Above the bar when it shows; through the run's log otherwise (silenceable).
            if self.config.progress_bar:
              bar.write(line)
            else:
              self.log(line)
        if (step + 1) % self.config.checkpoint_every == 0 or step + 1 == num_steps:
          self._save()
          last_saved = step + 1
        bar.update(1)
        self.steps_this_invocation += 1
        if stop.signal is not None and not pending:     # a step (and call) boundary
          if last_saved != step + 1:
            self._save()
            last_saved = step + 1
          raise Stopped(
              f"[{name}] stopped by {stop.signal.name} at step {step + 1} of {num_steps}; "
              f"checkpoint saved in {self.workdir / 'checkpoints'}. Re-run the same command to "
              "continue.", 128 + int(stop.signal))
        limit = self.config.max_steps_per_invocation
        if limit and self.steps_this_invocation >= limit and step + 1 < num_steps:
          if last_saved != step + 1:
            self._save()
          raise Interrupted(
              f"[{name}] stopped after {limit} steps in this invocation (max_steps_per_invocation)"
              f" at step {step + 1} of {num_steps}; checkpoint saved in "
              f"{self.workdir / 'checkpoints'}. Re-run the same command to continue.")
    finally:
      self._clock = None
      stop.uninstall()
      bar.close()
      self.writer.flush()
    self.phase_seconds[name] = self.phase_seconds.get(name, 0.0) + time.time() - started
    if not self.config.eager and hasattr(compiled, "experimental_get_tracing_count"):
      traces = compiled.experimental_get_tracing_count()
      # Several steps per call: one trace per call length (a full call, and the shorter ones
      # that end at an epoch, a checkpoint or the phase end).
      allowed = 1 if per_call == 1 else len(self._call_lengths)
      if traces > allowed:
        self.log(f"[{name}] warning: the step was traced {traces} times (shapes not static?).")

  def _call_end(self, step, num_steps, per_call, steps_per_epoch):
    """Where a call of up to ``per_call`` steps from ``step`` must stop: at the phase end, an
    epoch end, a checkpoint or the per-invocation limit (the host acts there)."""
    end = min(step + per_call, num_steps)
    bounds = [self.config.checkpoint_every] + ([steps_per_epoch] if steps_per_epoch else [])
    for every in bounds:
      end = min(end, (step // every + 1) * every)
    limit = self.config.max_steps_per_invocation
    if limit:
      end = min(end, step + limit - self.steps_this_invocation)
    self._call_lengths.add(end - step)
    return end

  def _resume_advice(self, phase, last_saved):
    if self.manager.latest_checkpoint is None:
      return ("no checkpoint was written before it. Lower the learning rates or check the "
              "data, and start again in a fresh --workdir.")
    return (f"the last good checkpoint ({self.manager.latest_checkpoint}, step {last_saved} of "
            f"phase {phase}) is kept, with the learning rates and optimiser state it holds. "
            "Re-running the same command resumes from it with those; to try lower learning "
            "rates or other data, start again in a fresh --workdir.")

  def _checkpoint_number(self):
    return int(sum(int(v.numpy()) for v in self.progress.values()))

  def _save(self):
    """Save a checkpoint. A full disk (or any write error) is an OSError naming the workdir,
    which the command line prints in one line; the previous checkpoints stay (the manager
    deletes old ones only after a save succeeded), and TF's temporary files of the failed one
    are removed."""
    folder = self.workdir / "checkpoints"
    try:
      self.manager.save(checkpoint_number=self._checkpoint_number())
    except (tf.errors.ResourceExhaustedError, tf.errors.UnknownError,
            tf.errors.PermissionDeniedError, tf.errors.FailedPreconditionError) as e:
      for temp in folder.glob("*_temp*"):
        if temp.is_dir():
          shutil.rmtree(temp, ignore_errors=True)
        else:
          temp.unlink(missing_ok=True)
      latest = self.manager.latest_checkpoint
      full = "space" in str(e.message).lower()
      raise OSError(errno.ENOSPC if full else errno.EIO,
                    f"{'No space left on device' if full else e.message.splitlines()[0]} while "
                    f"writing a checkpoint of the run in {self.workdir} (the last intact one, "
                    f"{pathlib.Path(latest).name if latest else 'none yet'}, is kept)",
                    str(folder)) from None
    records.write_json(self._seconds_path, self.seconds_total())

  def seconds_total(self):
    """Seconds per phase over every invocation of this run: the earlier ones up to the
    checkpoint this one resumed from, and this one's, the running phase's so far included."""
    total = dict(self.seconds_before)
    for name, seconds in self.phase_seconds.items():
      total[name] = total.get(name, 0.0) + seconds
    if self._clock is not None:
      name, started = self._clock
      total[name] = total.get(name, 0.0) + time.time() - started
    return total

  def _read_seconds(self):
    if not self._seconds_path.exists():
      return {}
    try:
      seconds = json.loads(self._seconds_path.read_text())
      return {str(k): float(v) for k, v in seconds.items()}
    except (ValueError, AttributeError, TypeError):
      self.log(f"[runner] {self._seconds_path} is damaged: the run's seconds count this "
               "invocation and later ones only.")
      return {}

  # -- the end -----------------------------------------------------------------------------

  def stamped(self, results):
    """``results`` with the git commit and this invocation's seconds per phase."""
    results = dict(results)
    results.setdefault("git_commit", records.git_commit())
    results.setdefault("phase_seconds_this_invocation", self.phase_seconds)
    results.setdefault("phase_seconds", self.seconds_total())
    return results

  def write_results(self, results, summary=None):
    """results.json, and in TensorBoard the results (``summary``: the family's table, else the
    JSON) as text and every figure of the workdir as an image, so runs compare side by side."""
    stamped = self.stamped(results)
    records.write_json(self.workdir / "results.json", stamped)
    step = self._checkpoint_number()
    with self.writer.as_default():
      text = summary if summary is not None else json.dumps(
          stamped, indent=1, default=records.json_default)
      tf.summary.text("results", "```\n" + text + "\n```", step=step)
      for png in sorted(self.workdir.glob("*.png")):
        image = tf.io.decode_png(tf.io.read_file(str(png)), channels=3)
        tf.summary.image(f"figures/{png.stem}", image[None], step=step)
    self.writer.flush()
    self.log(f"Results written to {self.workdir / 'results.json'}")

  def _write_hparams(self, run_config):
    """The run's config as TensorBoard hparams (flattened: ``penalty.lr_u``), once."""
    from tensorboard.plugins.hparams import api as hp  # pylint: disable=import-outside-toplevel
    flat = {}

    def walk(tree, prefix):
      for key, value in tree.items():
        if isinstance(value, dict):
          walk(value, f"{prefix}{key}.")
        elif isinstance(value, (bool, int, float, str)):
          flat[f"{prefix}{key}"] = value
        else:
          flat[f"{prefix}{key}"] = json.dumps(value, default=records.json_default)

    walk(json.loads(run_config.to_json_best_effort()) if hasattr(run_config, "to_json_best_effort")
         else dict(run_config), "")
    with self.writer.as_default():
      hp.hparams(flat, trial_id=self.workdir.name)



class _StopRequests:
  """SIGTERM and SIGINT (Ctrl-C) during a phase: the first is noted and acted on at the next
  step boundary (a checkpoint, then ``Stopped``), never inside a step or a checkpoint write; a
  second one stops at once (KeyboardInterrupt: the last checkpoint is kept). Only the main
  thread can take signals; elsewhere nothing is installed."""

  def __init__(self, log):
    self.log = log
    self.signal = None
    self.previous = {}

  def install(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self.previous[sig] = signal.signal(sig, self._handle)

  def uninstall(self):
    for sig, handler in self.previous.items():
      signal.signal(sig, handler)
    self.previous = {}

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    if self.signal is not None:
      raise KeyboardInterrupt
    self.signal = signal.Signals(signum)
    self.log(f"\n{self.signal.name}: stopping after this step, with a checkpoint (send it again "
             "to stop at once).")


def _write_checkpoint_index(folder, latest, numbers):
  """TF's ``checkpoint`` index file (a text proto), naming ``ckpt-<latest>`` and the intact
  ``numbers``, each with its file time. The times matter: CheckpointManager deletes only the
  recovered checkpoints younger than ``last_preserved_timestamp`` (0 here), so every one of
  them counts towards ``max_to_keep`` and a resumed run keeps as many checkpoints as an
  uninterrupted one. Written directly (TF's writer for it is deprecated and warns)."""
  folder = pathlib.Path(folder)
  kept = sorted(numbers)
  lines = [f'model_checkpoint_path: "ckpt-{latest}"']
  lines += [f'all_model_checkpoint_paths: "ckpt-{m}"' for m in kept]
  lines += [f"all_model_checkpoint_timestamps: {(folder / f'ckpt-{m}.index').stat().st_mtime!r}"
            for m in kept]
  lines.append("last_preserved_timestamp: 0.0")
  records.write_text(folder / "checkpoint", "\n".join(lines) + "\n")


def snapshot(*modules):
  """[(variable, value)] of every variable of ``modules`` (each once): taken before the runner
  restores a checkpoint, it resets them to their initial state with ``restore`` (a sub-run
  that starts afresh, e.g. a cross-validation fold)."""
  seen, out = set(), []
  for module in modules:
    for var in module.variables:
      if id(var) not in seen:
        seen.add(id(var))
        out.append((var, var.numpy()))
  return out


def restore(snap):
  for var, value in snap:
    var.assign(value)


def _several_steps(step_fn):
  """``step_fn`` over stacked batches [n, ...] (n >= 1, also given as a tensor: a batch may
  hold no tensors): n steps in one call, every step's metrics stacked [n]. The first step is
  traced inline (it fixes the metrics' structure), the rest run in a ``tf.range`` loop."""

  def run(batches, n):
    first = step_fn(tf.nest.map_structure(lambda t: t[0], batches))
    arrays = {k: tf.TensorArray(v.dtype, size=n, element_shape=v.shape).write(0, v)
              for k, v in first.items()}
    for i in tf.range(1, n):
      metrics = step_fn(tf.nest.map_structure(lambda t, i=i: t[i], batches))
      arrays = {k: arrays[k].write(i, metrics[k]) for k in arrays}
    return {k: a.stack() for k, a in arrays.items()}

  return run


class TimedLoop:
  """Convergence curves against the wall clock: steps, evaluated at given step counts.

  ``step_fn()`` does one update and returns a dict of scalar tensors; ``evaluate_fn()``
  returns a dict of scalar tensors at the current point (an error, the costs). Both are
  compiled into ONE function ``advance(n)`` (n steps, then the evaluation), so a record costs
  one call from Python, and the function is traced once for every run and every trial: reset
  the state between ``run`` calls instead of rebuilding it. Call ``warm_up`` first so that
  tracing and XLA compilation stay out of the timings.
  """

  def __init__(self, step_fn, evaluate_fn, jit_compile=False, eager=False):
    # The step metrics' structure, for the loop-carried value (a graph-only trace).
    spec = tf.function(step_fn).get_concrete_function().structured_outputs

    def advance(n):
      metrics = {k: tf.zeros(v.shape, v.dtype) for k, v in spec.items()}
      for _ in tf.range(n):
        metrics = step_fn()
      return evaluate_fn(), metrics

    self._advance = advance if eager else tf.function(advance, jit_compile=bool(jit_compile))

  def warm_up(self):
    """Trace and compile (runs one step: reset the state afterwards)."""
    self._advance(tf.constant(1))

  @property
  def tracing_count(self):
    return getattr(self._advance, "experimental_get_tracing_count", lambda: 0)()

  def run(self, record_steps, where=""):
    """Advance to each of ``record_steps`` (increasing step counts, 0 allowed) and record.

    Returns {"steps", "seconds" (wall clock since the start, evaluations included), and one
    array per evaluated value and per step metric ("metric_<name>", NaN at step 0)}.
    Raises ``NonFiniteError`` at the first record with a non-finite value.
    """
    record_steps = [int(s) for s in record_steps]
    if any(b < a for a, b in zip(record_steps, record_steps[1:])) or record_steps[0] < 0:
      raise ValueError("record_steps must be increasing and non-negative.")
    out = {"steps": np.asarray(record_steps, np.int64), "seconds": []}
    done = 0
    start = time.perf_counter()
    for s in record_steps:
      evaluation, metrics = self._advance(tf.constant(s - done))
      elapsed = time.perf_counter() - start
      values = {k: _to_python(v) for k, v in evaluation.items()}
      values.update({f"metric_{k}": (_to_python(v) if s > done else float("nan"))
                     for k, v in metrics.items()})
      bad = sorted(k for k, v in values.items()
                   if not math.isfinite(v) and not (k.startswith("metric_") and s == done))
      if bad:
        raise NonFiniteError(
            f"{where}non-finite {', '.join(f'{k}={values[k]}' for k in bad)} after step {s}; "
            f"every value was finite after step {done}. Lower the learning rates.")
      done = s
      out["seconds"].append(elapsed)
      for k, v in values.items():
        out.setdefault(k, []).append(v)
    return {k: np.asarray(v) for k, v in out.items()}


def _to_python(v):
  if isinstance(v, (tf.Tensor, tf.Variable, np.ndarray, np.generic)):
    v = np.asarray(v)
    return v.item() if v.size == 1 else v.tolist()
  return v
