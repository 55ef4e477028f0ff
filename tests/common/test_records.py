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


def test_a_changed_config_is_refused_unless_allowed_and_then_recorded(tmp_path):
  import ml_collections  # pylint: disable=import-outside-toplevel
  from common import errors  # pylint: disable=import-outside-toplevel
  first = ml_collections.ConfigDict({"epochs": 2, "lr": 0.1, "runner": {"log_every": 1}})
  assert records.check_or_write_config(tmp_path, first) == []
  runner_only = first.copy_and_resolve_references()
  runner_only.runner.log_every = 5                  # runner settings may always change
  assert records.check_or_write_config(tmp_path, runner_only) == []
  longer = first.copy_and_resolve_references()
  longer.epochs = 4
  with pytest.raises(errors.ConfigMismatchError, match=r"\['epochs'\].*allow_config_change"):
    records.check_or_write_config(tmp_path, longer)
  assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 2
  assert records.check_or_write_config(tmp_path, longer, allow_change=True) == ["epochs"]
  assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 4
  (entry,) = [json.loads(l) for l in (tmp_path / "config_history.jsonl").open()]
  assert entry["changed"] == ["epochs"] and entry["config"]["epochs"] == 2
  assert records.check_or_write_config(tmp_path, longer) == []      # now the saved config


def test_every_allowed_config_change_is_kept_in_the_history_in_order(tmp_path):
  import ml_collections  # pylint: disable=import-outside-toplevel
  configs = [ml_collections.ConfigDict({"epochs": 2, "lr": 0.1, "runner": {"log_every": 1}})]
  for key, value in (("epochs", 4), ("lr", 0.01)):     # two changes, one field each
    configs.append(configs[-1].copy_and_resolve_references())
    configs[-1][key] = value
  assert records.check_or_write_config(tmp_path, configs[0]) == []
  assert records.check_or_write_config(tmp_path, configs[1], allow_change=True) == ["epochs"]
  assert records.check_or_write_config(tmp_path, configs[2], allow_change=True) == ["lr"]
  history = [json.loads(l) for l in (tmp_path / "config_history.jsonl").read_text().splitlines()]
  # One entry per change, oldest first, each holding the config it replaced.
  assert [e["changed"] for e in history] == [["epochs"], ["lr"]]
  assert [(e["config"]["epochs"], e["config"]["lr"]) for e in history] == [(2, 0.1), (4, 0.1)]
  assert history[0]["replaced_at"] <= history[1]["replaced_at"]
  saved = json.loads((tmp_path / "config.json").read_text())
  assert (saved["epochs"], saved["lr"]) == (4, 0.01)
