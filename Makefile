# The README's commands. `make install` is implied by the others.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
STAMP := $(VENV)/.installed

.PHONY: install up test test-unit lint format lock clean

install: $(STAMP)

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

$(STAMP): requirements/app.txt requirements/dev.txt pyproject.toml | $(UV)
	# The browser tests drive Debian's Chromium, with a CJK font so Chinese pages render
	# (never `playwright install`, which downloads a browser of its own).
	command -v chromium >/dev/null && test -d /usr/share/fonts/opentype/noto \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }
	test -d $(VENV) || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip sync --quiet --compile-bytecode requirements/app.txt requirements/dev.txt
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps --no-build-isolation -e .
	# Bytecode made once here: where PYTHONDONTWRITEBYTECODE is set, every process of
	# `commonroom up` would otherwise compile all it imports from source at each start.
	$(BIN)/python -m compileall -q shared services
	touch $(STAMP)

up: install
	$(BIN)/commonroom up

test: install
	$(BIN)/pytest -q

test-unit: install
	$(BIN)/pytest -q tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: | $(UV)
	$(UV) pip compile pyproject.toml --generate-hashes --python-version 3.11 --quiet -o requirements/app.txt
	$(UV) pip compile requirements/dev.in --generate-hashes --python-version 3.11 --quiet -o requirements/dev.txt

clean:
	rm -rf $(VENV) .tools var .pytest_cache .mypy_cache .ruff_cache
