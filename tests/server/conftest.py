"""pytest-jupyter fixtures (a real jupyter_server per test) for the workbench server extension tests.

The plugin's fixtures and hooks are imported here, not registered globally, so they apply to this
folder only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403

from runs_seed import seed_runs


@pytest.fixture(autouse=True)
def _runs_dir_environment():
    """The extension points its kernels' WORKBENCH_RUNS_DIR at its runs folder; restore it after each test."""
    before = os.environ.get("WORKBENCH_RUNS_DIR")
    yield
    if before is None:
        os.environ.pop("WORKBENCH_RUNS_DIR", None)
    else:
        os.environ["WORKBENCH_RUNS_DIR"] = before


@pytest.fixture
def runs_root(jp_root_dir: Path) -> Path:
    return jp_root_dir / "runs"


@pytest.fixture
def seeded(runs_root: Path):
    return seed_runs(runs_root)


@pytest.fixture
def templates_root(tmp_path: Path) -> Path:
    root = tmp_path / "templates"
    root.mkdir()
    nb = {
        "cells": [
            {"cell_type": "markdown", "id": "m1", "metadata": {},
             "source": "# Text classification\n\nFine-tune a classifier on your labelled texts.\n"},
            {"cell_type": "code", "id": "p1", "execution_count": None, "metadata": {"tags": ["parameters"]},
             "outputs": [], "source": "model = \"minilm\"  # bundled alias or hub id\nepochs: int = 1\n"},
            {"cell_type": "code", "id": "c1", "execution_count": 3, "metadata": {},
             "outputs": [{"output_type": "stream", "name": "stdout", "text": "old output\n"}],
             "source": "print(model, epochs)\n"},
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    (root / "text-classification.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    plain = {"cells": [{"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "Plain notes."}],
             "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (root / "notes.ipynb").write_text(json.dumps(plain), encoding="utf-8")
    return root


@pytest.fixture
def jp_server_config(templates_root: Path):
    return {
        "ServerApp": {
            "jpserver_extensions": {"workbench.server": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
        },
        "WorkbenchServer": {"templates_dir": str(templates_root)},
    }
