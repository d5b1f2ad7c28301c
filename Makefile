# Two commands: `make run` and `make test`. Both set up everything they need.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench setup clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt device_agent/requirements.txt scripts/system-deps
	bash scripts/system-deps
	test -x $(PY) || "$$(bash scripts/find-python)" -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

# The server and a development device agent together (scripts/run-dev); Ctrl-C stops both.
run: setup
	PY=$(PY) bash scripts/run-dev

test: setup lint
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
