"""The import rules of DESIGN.md, read from the source (ast), not hoped for.

  * methods (common/bilevel) know no runner, command line, data or family;
  * data (common/data) knows no method and no runner;
  * the runner knows no data and no method;
  * errors is a leaf: it imports nothing of the project;
  * the library (common) knows no family and no benchmark;
  * a family knows only the library and itself; benchmarks know only the library.
"""

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAMILIES = ("importance_learning", "curriculum", "few_shot", "poisoning", "synthetic")
PACKAGES = ("common",) + FAMILIES + ("benchmarks",)


def _imports(path):
  """Project modules imported by ``path`` (dotted names), at any depth of the file."""
  tree = ast.parse(path.read_text(), filename=str(path))
  names = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names += [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
  return sorted({n for n in names if n.split(".")[0] in PACKAGES})


def _files(folder):
  return sorted((ROOT / folder).rglob("*.py"))


def _module(path):
  return ".".join(path.relative_to(ROOT).with_suffix("").parts)


# (files, forbidden import prefixes, why)
RULES = [
    ("common/bilevel", ("common.runner", "common.cli", "common.data", "common.records",
                        *FAMILIES, "benchmarks"), "methods know no runner, data or family"),
    ("common/data", ("common.bilevel", "common.runner", "common.cli", *FAMILIES, "benchmarks"),
     "data knows no method and no runner"),
    ("common/runner.py", ("common.data", "common.bilevel", "common.cli", *FAMILIES,
                          "benchmarks"), "the runner knows no data and no method"),
    ("common/errors.py", PACKAGES, "errors is a leaf"),
    ("common", (*FAMILIES, "benchmarks"), "the library knows no family or benchmark"),
    ("benchmarks", FAMILIES, "benchmarks know only the library"),
] + [(family, tuple(f for f in FAMILIES if f != family) + ("benchmarks",),
      "a family knows only the library and itself") for family in FAMILIES]


def _violations(folder, forbidden):
  paths = [ROOT / folder] if folder.endswith(".py") else _files(folder)
  found = []
  for path in paths:
    for name in _imports(path):
      if any(name == f or name.startswith(f + ".") for f in forbidden):
        found.append(f"{_module(path)} imports {name}")
  return found


@pytest.mark.parametrize("folder,forbidden,why", RULES, ids=[r[0] for r in RULES])
def test_import_rule(folder, forbidden, why):
  assert not _violations(folder, forbidden), why


def test_the_checker_sees_imports_at_any_depth(tmp_path, monkeypatch):
  # A rule that can never fail proves nothing: an import inside a function is found, and a
  # forbidden one is reported.
  bad = tmp_path / "common" / "bilevel"
  bad.mkdir(parents=True)
  (bad / "m.py").write_text("import os\n\ndef f():\n  from common.runner import Runner\n"
                            "  from importance_learning import experiment\n")
  monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
  found = _violations("common/bilevel", ("common.runner", "importance_learning"))
  assert found == ["common.bilevel.m imports common.runner",
                   "common.bilevel.m imports common.runner.Runner",
                   "common.bilevel.m imports importance_learning",
                   "common.bilevel.m imports importance_learning.experiment"]
