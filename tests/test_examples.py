"""The examples/ scripts (a user's first contact with the Python API) run and find the flipped
labels on their synthetic data."""

import importlib.util
import pathlib

import pytest
from sklearn import metrics as skm

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _example(name):
  spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("name, kwargs, low_is_suspect", [
    ("l2rw_own_pipeline", {"steps": 200}, True),
    ("penalty_importances", {"epochs": 10}, True),
    ("data_parameters_loop", {"epochs": 20}, False),   # a high temperature is suspect
])
def test_example_runs_and_ranks_the_flipped_labels(name, kwargs, low_is_suspect):
  scores, flipped = _example(name).main(**kwargs)
  assert scores.shape == flipped.shape and 0 < flipped.sum() < len(flipped)
  auc = skm.roc_auc_score(flipped, -scores if low_is_suspect else scores)
  assert auc > 0.75, auc


def test_examples_stay_short():
  for path in (ROOT / "examples").glob("*.py"):
    code = [l for l in path.read_text().splitlines() if l.strip() and not l.startswith(("#",))]
    body = code[code.index('"""', 1) + 1:] if '"""' in code[1:] else code
    assert len(body) <= 45, (path.name, len(body))


def test_the_api_page_covers_every_registered_method_and_problem():
  from common import bilevel  # pylint: disable=import-outside-toplevel
  page = (ROOT / "docs" / "API.md").read_text()
  for name, cls in bilevel.METHODS.items():
    assert f"`{name}`" in page and cls.__name__ in page, name
  for problem in ("Classification", "ExampleReweighting", "ImportanceProblem",
                  "TemperatureScaledClassification"):
    assert problem in page
  for script in (ROOT / "examples").glob("*.py"):
    assert f"examples/{script.name}" in page, script.name
