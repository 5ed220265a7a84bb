"""Shared fixtures; the builders they use live in builders.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from builders import *  # noqa: F401,F403  (also sets the offline environment)
from builders import build_tiny_bert, build_tiny_decoder, make_texts


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def clf_csv(tmp_path_factory) -> Path:
    import csv

    path = tmp_path_factory.mktemp("data") / "topics.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(make_texts(180))
    return path


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "runs"
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return build_tiny_decoder(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")
