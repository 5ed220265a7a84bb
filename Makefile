# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU wheel of torch; a GPU user installs a CUDA build into .venv first and this is skipped.
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install install-test demo test test-fast clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first, so the project's unpinned `torch>=2.6` is already satisfied by the CPU wheel.
$(VENV)/.torch: | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	touch $@

$(VENV)/.installed: pyproject.toml | $(VENV)/.torch
	$(PIP) install -e ".[notebook]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/.torch
	$(PIP) install -e ".[test]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/workbench demo

test: install-test
	HF_HUB_OFFLINE=1 $(PY) -m pytest

test-fast: install-test
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow and not browser"

clean:
	rm -rf $(VENV) build dist *.egg-info
