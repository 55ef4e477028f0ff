"""The command line of every family: each ``run.py`` is a docstring and one call to ``main``.

``main`` defines the two flags every family takes (``--config`` with its default config file,
``--workdir``), runs the experiment the config names, prints its summary, and turns every
mistake of the user's into one line instead of a traceback (``BILEVEL_DEBUG=1`` shows it):
a config argument the config file rejects, a bad field, missing data, a NaN, a workdir that
holds another run. A run stopped by ``max_steps_per_invocation`` says how to continue and
exits 0.
"""

import importlib
import importlib.util
import os
import pathlib
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from common import config_checks
from common import errors
from common import records

DEBUG_ENV = "BILEVEL_DEBUG"


def _debug():
  return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _config_file_error(e):
  """One line for a config file that cannot be loaded: the innermost cause's message."""
  while e.__cause__ is not None:
    e = e.__cause__
  if isinstance(e, SyntaxError):
    return f"the config file {e.filename} has a syntax error at line {e.lineno}: {e.msg}."
  if isinstance(e, (KeyError, AttributeError)):
    # An override of a field the config does not have (ml_collections suggests the closest).
    raw = str(e.args[0] if e.args else e).replace("\\", "")
    field = re.search(r"'([^']+)'", raw)
    hint = re.search(r"Did you mean [^?]*\?", raw)
    return (f"the config has no field {field.group(1) if field else raw.strip()!r}"
            + (f"; {hint.group(0)}" if hint else "; --help lists the fields of this config."))
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  tried = [l for l in lines if l.startswith("/") or l.endswith(".py")]
  reason = lines[-1] if lines else type(e).__name__
  where = f" {tried[0]}" if tried else ""
  return f"cannot load the config file{where}: {reason}"


def _workdir_problem(workdir):
  """Why ``workdir`` cannot hold a run (None when it can), found without creating anything."""
  path = pathlib.Path(workdir).expanduser()
  if path.exists() and not path.is_dir():
    return f"--workdir={workdir} is a file, not a folder; give a folder (new or a run's own)."
  parent = path
  while not parent.exists():
    parent = parent.parent
  if not parent.is_dir():
    return f"--workdir={workdir} cannot be created: {parent} is a file, not a folder."
  if not os.access(parent, os.W_OK | os.X_OK):
    return f"--workdir={workdir} is not writable here ({parent} does not allow it); choose another."
  return None


def run_experiment(argv, experiment, config, workdir, footer=None):
  """``experiment.run(config, workdir)`` then print ``experiment.summary(results)``."""
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  try:
    results = experiment.run(config, workdir)
  except errors.Interrupted as stop:
    print(stop)
    return
  except errors.Stopped as stop:
    print(stop, flush=True)
    sys.exit(stop.exit_code)
  except KeyboardInterrupt:
    if _debug():
      raise
    print("\nstopped (Ctrl-C) outside a training step: the last checkpoint is kept; re-run "
          "the same command to continue.", file=sys.stderr, flush=True)
    sys.exit(130)
  except errors.USER_ERRORS as e:
    if _debug():
      raise
    sys.exit(f"error ({type(e).__name__}): {e}")
  except OSError as e:
    # The disk, the file system, permissions: not a bug of the run, one line (the files
    # written so far are whole: every write is atomic, the last checkpoint is kept).
    if _debug():
      raise
    where = f" ({e.filename})" if e.filename else ""
    sys.exit(f"error (OSError): {e.strerror or e}{where}. Free space or fix permissions, then "
             "re-run the same command to resume.")
  print("\n" + experiment.summary(results))
  if footer:
    print(footer.format(workdir=workdir))


def parse_flags(argv):
  """absl's flag parsing, with a bad flag or config argument reported in one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    if _debug():
      raise
    # config_flags wraps the config file's exception with its traceback: keep the last line,
    # which is the exception itself.
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    what = lines[0].rstrip(":")
    cause = lines[-1] if len(lines) > 1 else ""
    sys.exit(f"error (flags): {what}: {cause}" if cause else f"error (flags): {what}")
  except Exception as e:  # pylint: disable=broad-except
    # A config file that cannot even be compiled fails here, outside absl's flag errors.
    if _debug():
      raise
    sys.exit(f"error (config): {_config_file_error(e)}")


def import_tensorflow_quietly():
  """Import TensorFlow with file descriptor 2 pointed at /dev/null: its C++ start-up lines
  (oneDNN, CUDA probing) are written before any log level applies. ``BILEVEL_DEBUG=1`` keeps
  them. A failing import still raises, with stderr restored first."""
  if _debug() or "tensorflow" in sys.modules:
    return
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    import tensorflow as tf  # noqa: F401  pylint: disable=import-outside-toplevel
    tf.config.list_physical_devices()      # the device probing logs here, once
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def _config_path_arg(argv, root, configs):
  """``argv`` with a ``--config=FILE[:ARGS]`` whose FILE does not exist here read from the
  installed library instead: as given relative to the library's root (the repository's
  ``importance_learning/configs/custom.py``), or as a name in the family's configs folder
  (``custom.py``). So an installed console command takes the paths the README shows, from any
  directory."""
  out = []
  for arg in argv:
    if arg.startswith("--config="):
      path, sep, rest = arg[len("--config="):].partition(":")
      if path and not pathlib.Path(path).expanduser().exists():
        for base in (root, configs):
          if (base / path).is_file():
            arg = f"--config={base / path}{sep}{rest}"
            break
    out.append(arg)
  return out


def help_text(doc, config_path, config_arg=""):
  """--help: the family's usage, its two flags and every field of the config (the one given
  with --config, else the default) with its value."""
  lines = [doc.strip(), "", "Flags:",
           "  --config=FILE[:ARGS]   the experiment config (default: "
           f"{pathlib.Path(config_path).name}); ARGS comma-separated, e.g. :0.25,tiny",
           "  --workdir=DIR          output folder; the same folder resumes the run",
           "  --config.FIELD=VALUE   any field below, e.g. --config.noise=0.25", ""]
  try:
    spec = importlib.util.spec_from_file_location("help_config", str(config_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(*((config_arg,) if config_arg else ()))
  except Exception as e:  # pylint: disable=broad-except
    return "\n".join(lines + [f"(the config {config_path} could not be read: {e})"])
  name = pathlib.Path(config_path).name + (f":{config_arg}" if config_arg else "")
  lines.append(f"Fields of {name} (current values):")
  for key, value in records.flat_fields(config).items():
    text = repr(value)
    lines.append(f"  --config.{key}={text if len(text) <= 70 else text[:67] + '...'}")
  return "\n".join(lines)


def _help_requested(argv):
  return any(a in ("--help", "-h", "--helpshort") for a in argv[1:])


def main(family, default_config, experiments, footer=None, precheck=None):
  """Run ``family``'s command line.

  Args:
    family: the family's folder name (its configs are in ``<family>/configs/``; its default
      workdir is ``runs/<family>/default``).
    default_config: the file name of the default config in ``<family>/configs/``.
    experiments: module names of the family's protocols, keyed by the config's ``experiment``
      field ("default" when the config has none); each module has ``run(config, workdir)``
      and ``summary(results)``.
    footer: printed after the summary (``{workdir}`` is filled in).
    precheck: the family's checks of a config that need no TensorFlow (``f(config)``, raising
      a ConfigError), run with ``config_checks.precheck`` before TensorFlow is imported.

  TensorFlow is imported after the flags, the config, the workdir and the prechecks are read
  (the configs and these checks import none of it), so such a mistake costs about a second.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  configs = pathlib.Path(__file__).resolve().parents[1] / family / "configs"
  try:
    # Without --config, the default file is read here, with the --config.FIELD overrides.
    config_flag = config_flags.DEFINE_config_file(
        "config", str(configs / default_config),
        "Experiment config file, with arguments after a colon, comma-separated (e.g. "
        "FILE.py:0.25,tiny; the grammar: common/config_args.py).", lock_config=True)
  except Exception as e:  # pylint: disable=broad-except
    if _debug():
      raise
    sys.exit(f"error (config): {_config_file_error(e)}")
  workdir_flag = flags.DEFINE_string("workdir", f"runs/{family}/default",
                                     "Output folder; re-running with the same folder resumes.")

  def run(argv):
    try:
      config = config_flag.value
      name = config.get("experiment", "default")
    except Exception as e:  # pylint: disable=broad-except
      # ml_collections defers a missing or broken config file to the first access.
      if _debug():
        raise
      sys.exit(f"error (config): {_config_file_error(e)}")
    problem = _workdir_problem(workdir_flag.value)
    if problem:
      sys.exit(f"error (workdir): {problem}")
    if name not in experiments:
      sys.exit(f"error (ConfigError): unknown experiment {name!r}; choose one of "
               f"{sorted(experiments)}.")
    try:
      config_checks.validated(
          lambda c: (config_checks.precheck(c), precheck and precheck(c)), config)
    except errors.USER_ERRORS as e:
      if _debug():
        raise
      sys.exit(f"error ({type(e).__name__}): {e}")
    import_tensorflow_quietly()
    experiment = importlib.import_module(experiments[name])
    run_experiment(argv, experiment, config, workdir_flag.value, footer)

  sys.argv = _config_path_arg(sys.argv, configs.parents[1], configs)
  if _help_requested(sys.argv):
    given = [a[len("--config="):] for a in sys.argv if a.startswith("--config=")]
    path, _, arg = (given[-1] if given else str(configs / default_config)).partition(":")
    main_module = sys.modules.get("__main__")
    print(help_text(getattr(main_module, "__doc__", None) or family, path, arg))
    sys.exit(0)
  app.run(run, flags_parser=parse_flags)
