# Every target bootstraps .venv itself: a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-long bench eval lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chipwatch demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-long: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

bench: $(STAMP)
	$(BIN)/python -m tests.bench

eval: $(STAMP)
	$(BIN)/python -m tests.eval_extract

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet 'ruff>=0.5,<1'
	$(BIN)/ruff check pipeline tests

clean:
	rm -rf $(VENV) out
