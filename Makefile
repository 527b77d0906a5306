# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run demo test test-fast lint format bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) experiments/analyze.py
	$(PY) experiments/train.py experiment=anomaly

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -n 2 -q tests
	$(PY) -m pytest -q -p no:xdist --doctest-modules src

# The inner loop: everything but the tests marked slow (subprocesses, seconds of training).
test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not slow" tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) benchmarks/algebra.py
	$(PY) benchmarks/alda.py
	$(PY) benchmarks/train.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
