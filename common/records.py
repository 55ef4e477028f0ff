"""What a run leaves on disk, written one way: atomically.

Every file a run writes (config.json, results.json, tables, arrays, caches, figures) goes
through ``atomic_path``: the content is written to a temporary file beside the target and
renamed onto it, so a kill or a full disk leaves either the old file or the whole new one, never
half of one. ``Sweep`` caches keyed sub-runs the same way. The text helpers (``fmt``, ``summary_table``, ``markdown_table``) are how every
family prints its results.
"""

import contextlib
import json
import os
import pathlib
import subprocess
import time
import zipfile

import numpy as np

from common import lock
from common.errors import ConfigMismatchError, DataError


@contextlib.contextmanager
def atomic_path(path):
  """Yield a temporary path to write; on success it replaces ``path``, on failure it goes.

  The temporary name keeps ``path``'s suffix (numpy's savers append one otherwise) and the
  process id (two processes never share one); parent folders are created.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if tmp.exists():
      tmp.unlink()


def write_text(path, text):
  with atomic_path(path) as tmp:
    tmp.write_text(text)


def finite_or_null(obj):
  """``obj`` with every NaN or infinite float (also numpy's) replaced by None: strict JSON,
  where ``null`` says "not defined" (a precision with nothing flagged, an AUC with one
  class)."""
  if isinstance(obj, dict):
    return {k: finite_or_null(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [finite_or_null(v) for v in obj]
  if isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
    return None
  return obj


def write_json(path, obj):
  write_text(path, json.dumps(finite_or_null(obj), indent=2, sort_keys=True,
                              default=json_default) + "\n")


def save_npy(path, array):
  with atomic_path(path) as tmp:
    np.save(tmp, array)


def save_npz(path, compressed=False, **arrays):
  with atomic_path(path) as tmp:
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)


def save_figure(fig, path, **kwargs):
  with atomic_path(path) as tmp:
    fig.savefig(tmp, **kwargs)


def json_default(x):
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, (np.floating,)):
    return float(x)
  if isinstance(x, np.ndarray):
    return x.tolist()
  raise TypeError(f"not JSON serialisable: {type(x)}")


def git_commit():
  """The library's commit, ``-dirty`` with uncommitted changes, ``unknown`` outside git."""
  here = pathlib.Path(__file__).resolve().parent
  try:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                         timeout=10, check=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True,
                           text=True, timeout=10).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")
  except (OSError, subprocess.SubprocessError):
    return "unknown"


# Runner fields that only say how a run is watched and sliced: they may differ between the
# invocations of one run, and are not compared.
FREE_FIELDS = ("runner.progress_bar", "runner.log_every", "runner.checkpoint_every",
               "runner.max_steps_per_invocation", "runner.allow_config_change")
# Runner fields that choose how the same steps execute (eagerly or compiled, with XLA, several
# steps per compiled call): at most float rounding differs, never the data or the method.
# ``runner.allow_config_change=True`` lets them change on resume; nothing else may.
EXECUTION_FIELDS = ("runner.jit_compile", "runner.eager", "runner.steps_per_call")


def flat_fields(tree, prefix=""):
  """{dotted key: value} of every field of a (nested) dict or ConfigDict; an empty block is a
  field of its own."""
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if hasattr(value, "items") and len(value):
      out.update(flat_fields(value, name + "."))
    else:
      out[name] = value
  return out


def check_or_write_config(workdir, run_config, ignore=(), allow_change=False):
  """Save ``run_config`` as workdir/config.json, or check it against the one saved there.

  A resume never mixes two configurations. ``FREE_FIELDS`` (and the top-level fields in
  ``ignore``) may change between invocations; ``EXECUTION_FIELDS`` may change with
  ``allow_change`` (the saved config is then appended to config_history.jsonl, with the time
  and the fields that differ, the new one replaces it, and those fields are returned). Any
  other difference changes the data, the labels or the results: a ``ConfigMismatchError``,
  before anything is written, that says to start a new workdir. The workdir's lock is taken
  first (``common.lock``): a second live run there is refused.
  """
  lock.claim(workdir)
  path = pathlib.Path(workdir) / "config.json"
  current = json.loads(run_config.to_json_best_effort())
  if not path.exists():
    write_json(path, current)
    return []
  try:
    saved = json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as e:
    raise ConfigMismatchError(
        f"{path} is damaged ({e}): it is the record of the config this workdir's run was made "
        "with, so the run cannot be checked; use another --workdir, or delete this one to start "
        "over.") from None
  free = lambda k: k in FREE_FIELDS or k.split(".")[0] in ignore
  old, new = flat_fields(saved), flat_fields(current)
  diff = sorted(k for k in set(old) | set(new) if not free(k) and old.get(k) != new.get(k))
  if not diff:
    return []
  defining = [k for k in diff if k not in EXECUTION_FIELDS]
  if defining:
    raise ConfigMismatchError(
        f"{workdir} holds a run made with a different config: {defining} would change the "
        "data, the labels or the results, so this run cannot continue with them. Start a new "
        "--workdir (or delete this one to start over).")
  if not allow_change:
    raise ConfigMismatchError(
        f"{workdir} holds a run made with other execution settings ({diff}): they change how "
        "the steps run (float rounding at most), not the data or the method. Add "
        "--config.runner.allow_config_change=True to continue this run with them, or use "
        "another --workdir.")
  history = pathlib.Path(workdir) / "config_history.jsonl"
  previous = history.read_text() if history.exists() else ""
  entry = {"replaced_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "changed": diff, "config": saved}
  write_text(history, previous + json.dumps(entry, default=json_default) + "\n")
  write_json(path, current)
  return diff


def check_or_write_sweep_config(workdir, config, block, growing):
  """``check_or_write_config`` for a sweep that may widen between invocations: the fields
  ``growing`` of ``config[block]`` (the lists of cells) are left out of the comparison."""
  defining = config.copy_and_resolve_references()
  with defining.unlocked():
    for key in growing:
      del defining[block][key]
  return check_or_write_config(
      workdir, defining,
      allow_change=bool(config.get("runner", {}).get("allow_config_change", False)))


# -- text --------------------------------------------------------------------------------------

class Sweep:
  """Keyed sub-runs whose results are cached on disk: a re-run loads every finished key and
  computes only the others, so a sweep (the imbalance grid, the synthetic grid, the
  clean-label targets) resumes where it stopped and can grow between invocations.

  ``path_of(key)`` names the file of a key's result; ``.json`` files hold a dict, ``.npz``
  files a dict of arrays (``compressed`` for large ones). A result is written atomically once
  complete, so a killed sub-run leaves no file and is computed again (from its own checkpoint
  when it keeps one). ``written_by_run``: the sub-run writes that file itself (a run's
  ``results.json``, written once at its end), so the sweep only reads it.
  """

  def __init__(self, path_of, compressed=False, written_by_run=False):
    self.path_of = path_of
    self.compressed = compressed
    self.written_by_run = written_by_run

  def load(self, key):
    """The cached result of ``key``, or None."""
    path = pathlib.Path(self.path_of(key))
    if not path.exists():
      return None
    try:
      if path.suffix == ".json":
        return json.loads(path.read_text())
      with np.load(path, allow_pickle=False) as z:
        return dict(z)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
      # Written atomically, so only damage from outside (a copy cut short, a disk error).
      reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
      raise DataError(f"{path} is damaged ({reason}): it holds a cached result of this run; "
                      "delete it and re-run the same command to compute it again.") from None

  def store(self, key, result):
    path = pathlib.Path(self.path_of(key))
    if path.suffix == ".json":
      write_json(path, result)
    else:
      save_npz(path, compressed=self.compressed, **result)

  def run(self, key, compute):
    """(result, cached): the stored result of ``key``, or ``compute()``'s, stored."""
    result = self.load(key)
    if result is not None:
      return result, True
    result = compute()
    if self.written_by_run:
      if not pathlib.Path(self.path_of(key)).exists():
        raise RuntimeError(f"the sub-run of {key} did not write {self.path_of(key)}")
    else:
      self.store(key, result)
    return result, False


def fmt(v):
  """A table cell: '-' for None, four decimals for accuracies and the like, significant digits
  for tiny or huge values."""
  if v is None:
    return "-"
  if not isinstance(v, float):
    return str(v)
  return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:.4g}"


def summary_table(rows, columns):
  """A fixed-width text table: ``rows`` is a list of dicts, ``columns`` (key, header) pairs."""
  cells = [[h for _, h in columns]] + [[fmt(r.get(k, "")) for k, _ in columns] for r in rows]
  widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
  lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
  lines.insert(1, "  ".join("-" * w for w in widths))
  return "\n".join(lines)


def markdown_table(rows, columns):
  """The same table in Markdown."""
  lines = ["| " + " | ".join(h for _, h in columns) + " |",
           "|" + "|".join("---" for _ in columns) + "|"]
  lines += ["| " + " | ".join(fmt(r.get(k, "")) for k, _ in columns) + " |" for r in rows]
  return "\n".join(lines)
