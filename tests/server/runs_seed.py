"""A runs directory with one run in every state, for the server and browser tests and the screenshot."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

from workbench.runs import RunDir, atomic_write_json, atomic_write_text

CONFIG = """task: text-classification
model: minilm
data:
  train: bbc-news
  text_column: text
  label_column: label
train:
  epochs: 1
  learning_rate: 5.0e-05
  batch_size: 16
  max_length: 128
  seed: 42
"""

REPORT = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Report</title></head>
<body><h1>bbc-news-minilm report</h1><p id="acc">accuracy 0.969</p></body></html>
"""


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


def _losses(n: int, start: float = 1.6, end: float = 0.15) -> list[float]:
    return [end + (start - end) * math.exp(-4.0 * i / max(n - 1, 1)) + 0.03 * math.sin(i) for i in range(n)]


def make_run(root: Path, run_id: str, *, name: str, task: str, model: str, status: str, created: dt.datetime,
             steps: int, total_steps: int, main_metric: str | None = "accuracy", value: float | None = None,
             baseline: float | None = None, error: str | None = None, report: bool = False) -> RunDir:
    run = RunDir(root / run_id)
    run.path.mkdir(parents=True)
    info = {"id": run_id, "name": name, "task": task, "model": model, "status": status,
            "created_at": _iso(created), "started_at": _iso(created + dt.timedelta(seconds=20)),
            "main_metric": main_metric, "error": error,
            "progress": {"step": steps, "total_steps": total_steps, "epoch": round(steps / total_steps, 3)}}
    if status in ("completed", "failed", "interrupted"):
        info["finished_at"] = _iso(created + dt.timedelta(minutes=3))
    atomic_write_json(run.run_json, info)
    atomic_write_text(run.config_yaml, CONFIG.replace("minilm", model))
    run.append_metrics({"event": "started", "run_id": run_id, "total_steps": total_steps})
    for step, loss in enumerate(_losses(steps), start=1):
        run.append_metrics({"event": "step", "step": step, "total_steps": total_steps, "epoch": step / total_steps,
                            "loss": round(loss, 4), "learning_rate": 5e-5 * (1 - step / total_steps)})
        if step % 20 == 0 and main_metric:
            run.append_metrics({"event": "eval", "step": step, "split": "validation",
                                "metrics": {main_metric: round(0.5 + 0.45 * step / total_steps, 4),
                                            "loss": round(loss + 0.05, 4)}})
    if value is not None:
        atomic_write_json(run.eval_json, {"main_metric": main_metric, "split": "test",
                                          "finetuned": {main_metric: value, "f1": value - 0.01},
                                          "baseline": {main_metric: baseline, "f1": (baseline or 0) - 0.02},
                                          "delta": {main_metric: value - (baseline or 0)}})
        run.append_metrics({"event": "finished", "status": status})
    if report:
        atomic_write_text(run.path / "report.html", REPORT)
        atomic_write_text(run.path / "report.ipynb", json.dumps(
            {"cells": [{"cell_type": "markdown", "id": "title", "metadata": {}, "source": f"# {name} report"}],
             "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
             "nbformat": 4, "nbformat_minor": 5}))
    return run


def seed_runs(root: Path, now: dt.datetime | None = None) -> dict[str, RunDir]:
    """Five runs: completed (with report), running, failed, interrupted, and one corrupt directory."""
    now = now or dt.datetime.now(dt.timezone.utc)
    root.mkdir(parents=True, exist_ok=True)
    runs = {
        "completed": make_run(root, "20261124-101500-bbc-news-minilm-a1b2", name="bbc-news-minilm",
                              task="text-classification", model="minilm", status="completed",
                              created=now - dt.timedelta(hours=5), steps=140, total_steps=140,
                              value=0.9685, baseline=0.2135, report=True),
        "running": make_run(root, "20261124-150200-support-tickets-c3d4", name="support-tickets",
                            task="text-classification", model="minilm", status="running",
                            created=now - dt.timedelta(minutes=4), steps=60, total_steps=200),
        "failed": make_run(root, "20261124-094000-legal-ner-e5f6", name="legal-ner", task="token-classification",
                           model="bert-base-cased", status="failed", created=now - dt.timedelta(days=1),
                           steps=3, total_steps=90, main_metric="f1",
                           error="DataError: train.conll line 12: expected 2 columns, found 1"),
        "interrupted": make_run(root, "20261123-180000-clinical-mlm-0a0b", name="clinical-mlm", task="masked-lm",
                                model="minilm", status="interrupted", created=now - dt.timedelta(days=2),
                                steps=45, total_steps=300, main_metric="perplexity",
                                error="stopped on request"),
    }
    corrupt = root / "20261122-120000-broken-0c0d"
    corrupt.mkdir()
    (corrupt / "run.json").write_text('{"id": "20261122-120000-broken', encoding="utf-8")
    runs["corrupt"] = RunDir(corrupt)
    # a bare NaN, as a writer that skipped strict JSON would leave it
    with open(runs["running"].metrics_jsonl, "a", encoding="utf-8") as f:
        f.write('{"event": "step", "step": 61, "loss": NaN, "learning_rate": 3e-05}\n')
    return runs
