# The two set-up commands: `make serve` and `make test`. Each creates what it needs on a fresh machine.
VENV      ?= .venv
PYTHON    ?= python3
DATA_DIR  ?= data
HOST      ?= 127.0.0.1
PORT      ?= 8080
PYTEST_ARGS ?=

.PHONY: serve test check deps test-deps bench clean

# Runtime dependencies only (what `serve` needs), then the query kernels compiled once into their
# cache, so that the first funnel does not wait ~10 s for numba.
$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e . -e './clients/python[cli,parquet,flags]'  # the client: its own distribution
	$(VENV)/bin/python -m mixhouse.engine.kernels
	touch $@

# The test tools (pytest, mypy, ruff, hypothesis, schemathesis, the real Mixpanel clients) on top.
$(VENV)/.installed-test: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

deps: $(VENV)/.installed

serve: deps
	$(VENV)/bin/mixhouse serve --data-dir $(DATA_DIR) --host $(HOST) --port $(PORT)

test-deps: $(VENV)/.installed-test
	bash scripts/install-test-deps

check: $(VENV)/.installed-test
	$(VENV)/bin/ruff check mixhouse tests bench clients
	$(VENV)/bin/ruff format --check mixhouse tests bench clients
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy -p mixhouse_client

# The whole suite, then the tests that read the clock again just after and just before midnight UTC
# (scripts/at-time moves the clock of every process under faketime): a suite that passes at any hour.
# Those runs are serial: under libfaketime, pytest-xdist's workers stalled for seconds at a time.
test: test-deps check
	$(VENV)/bin/python -m mixhouse.engine.kernels  # compile once, so that test servers load the cache
	$(VENV)/bin/pytest -n 2 $(PYTEST_ARGS)
	scripts/at-time 'tomorrow 00:05' $(VENV)/bin/pytest -n 0 -q -m clock $(PYTEST_ARGS)
	scripts/at-time 'today 23:55' $(VENV)/bin/pytest -n 0 -q -m clock $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) tests/browser/node_modules
