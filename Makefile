# Two commands: `make run` (the main job, offline) and `make test`. Both build .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/importance_learning/default
ARGS ?=
# Test worker processes (pytest-xdist): the command-line tests wait on their runs, so two
# workers keep two cores busy. TEST_WORKERS=0 runs in this process (debugging).
TEST_WORKERS ?= 2

.PHONY: install run test clean

install: $(VENV)/.installed

# The pinned stack (requirements.txt, with the test and cleverhans pins), then the project itself
# as an editable install: the families import from anywhere, and the console commands
# (bilevel-importance, bilevel-few-shot, ...) are on the venv's PATH.
$(VENV)/.installed: requirements.txt pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

run: install
	$(PY) importance_learning/run.py --workdir=$(WORKDIR) $(ARGS)

test: install
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache build *.egg-info
