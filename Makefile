# The two set-up commands: `make serve` and `make test`. Each creates what it needs on a fresh machine.
VENV      ?= .venv
PYTHON    ?= python3
DATA_DIR  ?= data
HOST      ?= 127.0.0.1
PORT      ?= 8080
PYTEST_ARGS ?=

.PHONY: serve test check deps test-deps bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

deps: $(VENV)/.installed

serve: deps
	$(VENV)/bin/mixhouse serve --data-dir $(DATA_DIR) --host $(HOST) --port $(PORT)

test-deps: deps
	bash scripts/install-test-deps

check: deps
	$(VENV)/bin/ruff check mixhouse tests bench
	$(VENV)/bin/ruff format --check mixhouse tests bench
	$(VENV)/bin/mypy

test: test-deps check
	$(VENV)/bin/python -m mixhouse.engine.kernels  # compile once, so that test servers load the cache
	$(VENV)/bin/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) tests/browser/node_modules
