"""The text-classification report on the real bundled MiniLM and BBC News (a subset, one epoch)."""

import json
import re
from pathlib import Path

import pytest

from workbench import cli


@pytest.mark.slow
def test_text_classification_report_on_minilm(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / ".jupyter-data"))
    code = cli.main(["report", "text_classification", "-p", "max_train_samples", "400", "-p", "max_eval_samples",
                     "150", "-p", "config", '{"train.save_checkpoints": false}', "--no-input"])
    out, err = capsys.readouterr()
    assert code == 0, err
    page_path = Path(re.search(r"^Report: (.+)$", out, re.M).group(1))
    ev = json.loads((page_path.parent / "eval.json").read_text())
    assert ev["finetuned"]["accuracy"] > ev["baselines"]["majority_class"]["accuracy"] + 0.3
    page = page_path.read_text()
    assert "<script" not in page.lower() and f"{ev['finetuned']['accuracy']:.4f}" in page
    assert "bbc-news" in page and "sport" in page
