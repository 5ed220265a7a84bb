"""Metrics through `evaluate`, from modules bundled here so they work offline.

``evaluate.load("accuracy")`` fetches a script from the hub; ``load("accuracy")`` here loads
the same interface from this package's folder.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUNDLED = ("accuracy", "precision", "recall", "f1")


@lru_cache(maxsize=None)
def load(name: str):
    import evaluate

    if name in BUNDLED:
        return evaluate.load(str(HERE / name))
    return evaluate.load(name)


def classification_metrics(predictions, references, num_labels: int) -> dict:
    """accuracy plus macro precision / recall / F1."""
    labels = list(range(num_labels))
    out = dict(load("accuracy").compute(predictions=predictions, references=references))
    for name in ("precision", "recall", "f1"):
        value = load(name).compute(predictions=predictions, references=references, average="macro",
                                   labels=labels)[name]
        out[f"{name}_macro"] = value
    return out
