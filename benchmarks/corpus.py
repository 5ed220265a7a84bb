"""The benchmark corpora, built offline from the bundled BBC News articles.

* ``bbc-long``: whole articles with their topic (long texts: 108 to 5,300 tokens).
* ``bbc-short``: the articles' sentences with their article's topic (short texts with a long tail,
  like SST-2-style sentence data), deduplicated so no text is in both train and eval.
* ``bbc-text``: the articles' paragraphs without labels, as domain text for the language-model tasks.

Each is written once as ``train.csv`` / ``eval.csv`` so every variant reads identical rows in
identical order.
"""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

KINDS = ("bbc-long", "bbc-short", "bbc-text")


def _articles() -> list[tuple[str, str]]:
    from workbench.data.loaders import ALIASES

    frame = ALIASES["bbc-news"]()
    seen: set[str] = set()
    out = []
    for text, label in zip(frame["text"], frame["label"]):
        key = " ".join(text.split()).lower()
        if key not in seen:  # the corpus holds some articles twice
            seen.add(key)
            out.append((text, label))
    return out


def _paragraphs(articles: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    out = []
    for text, label in articles:
        for para in text.split("\n")[1:]:  # the first line is the headline
            para = " ".join(para.split())
            key = para.lower()
            if len(para.split()) >= 4 and key not in seen:
                seen.add(key)
                out.append((para, label))
    return out


SENTENCE_END = re.compile(r'(?<=[.!?])\s+(?=[A-Z"\'])')


def _sentences(paragraphs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    out = []
    for para, label in paragraphs:
        for sent in SENTENCE_END.split(para):
            key = sent.lower()
            if len(sent.split()) >= 4 and key not in seen:
                seen.add(key)
                out.append((sent, label))
    return out


def build(kind: str, dest: Path, n_train: int, n_eval: int, seed: int = 42) -> dict[str, str]:
    """Write ``train.csv`` and ``eval.csv`` for ``kind`` under ``dest``; returns their paths."""
    if kind not in KINDS:
        raise ValueError(f"unknown corpus {kind!r}; known: {', '.join(KINDS)}")
    dest.mkdir(parents=True, exist_ok=True)
    paths = {"train": str(dest / "train.csv"), "eval": str(dest / "eval.csv")}
    stamp = dest / f".built-{n_train}-{n_eval}-{seed}"
    if stamp.exists():
        return paths
    articles = _articles()
    rows = {"bbc-long": lambda: articles, "bbc-short": lambda: _sentences(_paragraphs(articles)),
            "bbc-text": lambda: _paragraphs(articles)}[kind]()
    random.Random(seed).shuffle(rows)
    if n_train + n_eval > len(rows):
        raise ValueError(f"{kind}: asked for {n_train} + {n_eval} rows, the corpus has {len(rows)}")
    parts = {"eval": rows[:n_eval], "train": rows[n_eval:n_eval + n_train]}
    for name, part in parts.items():
        with open(paths[name], "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"] if kind != "bbc-text" else ["text"])
            w.writerows(part if kind != "bbc-text" else [(t,) for t, _ in part])
    for old in dest.glob(".built-*"):
        old.unlink()
    stamp.touch()
    return paths


def read(path: str, text_column: str = "text", label_column: str | None = "label") -> tuple[list[str], list]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    texts = [r[text_column] for r in rows]
    labels = [r[label_column] for r in rows] if label_column and rows and label_column in rows[0] else []
    return texts, labels
