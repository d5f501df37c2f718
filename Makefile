# Developer entry points: make demo | make test | make lint | make bench
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: demo test lint bench reliability clean venv dev

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed
dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(PY) examples/demo.py

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy

bench: $(VENV)/.installed-dev
	$(PY) -m bench all
	$(PY) -m bench.past_ram --rows 1000000 --dim 384 --limit-mib 512
	$(PY) bench/ray_bench.py

# The long crash loops, concurrency runs and the kill -9 soak (docs/reliability.md).
reliability: $(VENV)/.installed-dev
	$(PY) -m pytest -q -p no:cacheprovider -m slow tests/reliability
	$(PY) bench/soak.py --trials 200

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache bench/results bench/.venvs
