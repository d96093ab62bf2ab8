# `make demo` and `make test` work on a fresh machine with only Python 3 installed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch; any other version pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0
PYTEST_ARGS ?= -n 2

.PHONY: venv demo test lint doc bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,doc]"
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[benchmark]"
	touch $@

demo: venv
	$(BIN)/python -m skbilevel demo

test: venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) tests

lint: venv
	$(BIN)/python -m ruff check skbilevel tests benchmarks examples

doc: venv
	$(BIN)/python -m sphinx -W --keep-going -b html doc doc/_build/html

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_ridge.py
	$(BIN)/python benchmarks/bench_hdm.py
	$(BIN)/python benchmarks/bench_hdm_grid.py
	$(BIN)/python benchmarks/bench_sparse.py
	$(BIN)/python benchmarks/bench_lasso_wide.py
	$(BIN)/python benchmarks/bench_sparse_ridge.py
	$(BIN)/python benchmarks/bench_logistic_cv.py
	$(BIN)/python benchmarks/bench_cleaning.py
	$(BIN)/python benchmarks/bench_search.py
	$(BIN)/python benchmarks/bench_dask.py

clean:
	rm -rf $(VENV) doc/_build doc/auto_examples doc/generated build *.egg-info
