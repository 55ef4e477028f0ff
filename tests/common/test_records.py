"""One atomic write for every file a run leaves."""

import json
import os

import numpy as np
import pytest

from common import records


def test_atomic_path_replaces_on_success_and_leaves_the_old_file_on_failure(tmp_path):
  path = tmp_path / "sub" / "results.json"
  records.write_json(path, {"a": np.float32(0.5), "b": np.arange(2)})
  assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1]}
  with pytest.raises(RuntimeError):
    with records.atomic_path(path) as tmp:
      tmp.write_text("half a fil")
      raise RuntimeError("killed mid-write")
  assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1]}   # the old file, whole
  assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]   # no temp left


def test_numpy_savers_keep_the_exact_name(tmp_path):
  records.save_npy(tmp_path / "a.npy", np.arange(3))
  records.save_npz(tmp_path / "b.npz", compressed=True, x=np.ones(2))
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.npz"]
  np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.arange(3))
  np.testing.assert_array_equal(np.load(tmp_path / "b.npz")["x"], np.ones(2))


def test_tables():
  rows = [{"a": "x", "b": 0.5}, {"a": "y", "b": 7.7e-07}, {"a": "z", "b": None}]
  cols = [("a", "A"), ("b", "B")]
  assert records.summary_table(rows, cols).splitlines()[2:] == \
      ["x  0.5000 ", "y  7.7e-07", "z  -      "]
  assert records.markdown_table(rows[:1], cols) == "| A | B |\n|---|---|\n| x | 0.5000 |"


def test_sweep_computes_each_key_once_and_a_failed_key_leaves_nothing(tmp_path):
  calls = []

  def compute(key):
    def run():
      calls.append(key)
      if key == "bad":
        raise RuntimeError("killed")
      return {"key": key, "value": len(calls)}
    return run

  sweep = records.Sweep(lambda key: tmp_path / key / "results.json")
  assert sweep.run("a", compute("a")) == ({"key": "a", "value": 1}, False)
  assert sweep.run("a", compute("a")) == ({"key": "a", "value": 1}, True)   # cached, not rerun
  with pytest.raises(RuntimeError):
    sweep.run("bad", compute("bad"))
  assert sweep.load("bad") is None and not (tmp_path / "bad").exists()
  assert calls == ["a", "bad"]
  # A fresh Sweep over the same folder (a new invocation) sees the finished key only.
  again = records.Sweep(lambda key: tmp_path / key / "results.json")
  assert again.load("a") == {"key": "a", "value": 1}
  arrays = records.Sweep(lambda key: tmp_path / f"{key}.npz", compressed=True)
  arrays.store("c", {"x": np.arange(3.0), "label": np.array("text")})
  out = arrays.load("c")
  np.testing.assert_array_equal(out["x"], [0.0, 1.0, 2.0])
  assert str(out["label"]) == "text"
  assert not list(tmp_path.glob(".*tmp*"))
  # A sub-run that writes its own results file: the sweep reads it and writes nothing more.
  own = records.Sweep(lambda key: tmp_path / "own" / key / "results.json", written_by_run=True)

  def writes_itself():
    records.write_json(tmp_path / "own" / "d" / "results.json", {"v": 1})
    return {"v": 1}

  assert own.run("d", writes_itself) == ({"v": 1}, False)
  assert os.listdir(tmp_path / "own" / "d") == ["results.json"]
  assert own.run("d", lambda: 1 / 0) == ({"v": 1}, True)
  with pytest.raises(RuntimeError, match="did not write"):
    own.run("e", lambda: {"v": 2})


def test_a_resume_never_mixes_two_configurations(tmp_path):
  import ml_collections  # pylint: disable=import-outside-toplevel
  from common import errors  # pylint: disable=import-outside-toplevel
  first = ml_collections.ConfigDict({"epochs": 2, "noise": 0.5, "penalty": {"lr_u": 3.0},
                                     "runner": {"log_every": 1, "jit_compile": False,
                                                "precision": "float32"}})
  assert records.check_or_write_config(tmp_path, first) == []

  def changed(**fields):
    c = first.copy_and_resolve_references()
    for key, value in fields.items():
      *path, last = key.split("__")
      target = c
      for part in path:
        target = target[part]
      target[last] = value
    return c
  # Watching and slicing a run may always change, without a record.
  assert records.check_or_write_config(
      tmp_path, changed(runner__log_every=5, runner__max_steps_per_invocation=3)) == []
  # What the data, labels or results depend on is refused, even with allow_config_change,
  # each field named (nested ones by their path).
  for fields, name in (({"noise": 0.3}, "noise"), ({"epochs": 4}, "epochs"),
                       ({"penalty__lr_u": 1.0}, "penalty.lr_u"),
                       ({"runner__precision": "mixed_float16"}, "runner.precision")):
    for allow in (False, True):
      with pytest.raises(errors.ConfigMismatchError,
                         match=rf"\['{name}'\] would change the data.*Start a new --workdir"):
        records.check_or_write_config(tmp_path, changed(**fields), allow_change=allow)
  assert json.loads((tmp_path / "config.json").read_text()) == json.loads(first.to_json())
  assert not (tmp_path / "config_history.jsonl").exists()
  # How the steps execute may change with allow_config_change, and is recorded.
  compiled = changed(runner__jit_compile=True)
  with pytest.raises(errors.ConfigMismatchError,
                     match=r"\['runner.jit_compile'\].*allow_config_change=True"):
    records.check_or_write_config(tmp_path, compiled)
  assert records.check_or_write_config(tmp_path, compiled, allow_change=True) == \
      ["runner.jit_compile"]
  assert json.loads((tmp_path / "config.json").read_text())["runner"]["jit_compile"] is True
  (entry,) = [json.loads(l) for l in (tmp_path / "config_history.jsonl").open()]
  assert entry["changed"] == ["runner.jit_compile"]
  assert entry["config"]["runner"]["jit_compile"] is False
  assert records.check_or_write_config(tmp_path, compiled) == []      # now the saved config


def test_a_damaged_config_record_is_named_with_the_fix(tmp_path):
  import ml_collections  # pylint: disable=import-outside-toplevel
  from common import errors  # pylint: disable=import-outside-toplevel
  (tmp_path / "config.json").write_bytes(b"\x00\xffgarbage{")
  with pytest.raises(errors.ConfigMismatchError,
                     match=r"config.json is damaged .*use another --workdir, or delete"):
    records.check_or_write_config(tmp_path, ml_collections.ConfigDict({"epochs": 2}))
  assert (tmp_path / "config.json").read_bytes() == b"\x00\xffgarbage{"


def test_a_sweep_follows_the_same_rule_and_honours_the_switch(tmp_path):
  import ml_collections  # pylint: disable=import-outside-toplevel
  from common import errors  # pylint: disable=import-outside-toplevel
  first = ml_collections.ConfigDict({"compare": {"seeds": 2, "lr": 0.1},
                                     "runner": {"eager": False,
                                                "allow_config_change": False}})
  records.check_or_write_sweep_config(tmp_path, first, "compare", ("seeds",))
  wider = first.copy_and_resolve_references()
  wider.compare.seeds = 5                    # a growing field: more cells, same sweep
  assert records.check_or_write_sweep_config(tmp_path, wider, "compare", ("seeds",)) == []
  eager = first.copy_and_resolve_references()
  eager.runner.eager = True
  with pytest.raises(errors.ConfigMismatchError, match="allow_config_change=True"):
    records.check_or_write_sweep_config(tmp_path, eager, "compare", ("seeds",))
  eager.runner.allow_config_change = True
  assert records.check_or_write_sweep_config(tmp_path, eager, "compare", ("seeds",)) == \
      ["runner.eager"]
  other = eager.copy_and_resolve_references()
  other.compare.lr = 0.01
  with pytest.raises(errors.ConfigMismatchError, match=r"\['compare.lr'\] would change"):
    records.check_or_write_sweep_config(tmp_path, other, "compare", ("seeds",))


@pytest.mark.parametrize("name,content", [
    ("a.npz", b"PK\x03\x04 cut short"),            # a truncated zip
    ("b.npz", bytes(range(256)) * 4),              # random bytes
    ("c.json", b'{"accuracy": 0.9'),               # a partial JSON
])
def test_a_damaged_cache_file_is_named_with_the_fix(tmp_path, name, content):
  from common import errors  # pylint: disable=import-outside-toplevel
  (tmp_path / name).write_bytes(content)
  sweep = records.Sweep(lambda key: tmp_path / key)
  with pytest.raises(errors.DataError, match=rf"{name} is damaged .*delete it and re-run"):
    sweep.run(name, lambda: {"v": np.zeros(2)})
  assert (tmp_path / name).read_bytes() == content      # left for the user to look at
