"""Metrics through `evaluate`, from modules bundled here so they work offline.

``evaluate.load("accuracy")`` fetches a script from the hub; ``load("accuracy")`` here loads
the same interface from this package's folder.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUNDLED = ("accuracy", "precision", "recall", "f1", "seqeval", "mse", "pearsonr")
LOWER_IS_BETTER = ("perplexity", "nll", "loss", "mse", "mae", "rmse")


def greater_is_better(name: str, main_metric: str | None, main_greater: bool) -> bool:
    """A metric's direction: the task's own for its main metric, otherwise by name (a loss,
    perplexity or error improves as it falls)."""
    name = name.removeprefix("eval_")
    if name == main_metric:
        return main_greater
    return not (name in LOWER_IS_BETTER or name.endswith("loss"))


def higher_is_better_in(evaluation: dict, name: str) -> bool:
    """``name``'s direction in an eval.json: its ``greater_is_better`` for the main metric (by the main
    metric's name when an older file lacks it), by name for the others."""
    main = evaluation.get("main_metric")
    declared = evaluation.get("greater_is_better")
    main_greater = declared if isinstance(declared, bool) else (greater_is_better(main, None, True) if main else True)
    return greater_is_better(name, main, main_greater)


@lru_cache(maxsize=None)
def load(name: str):
    # one instance per metric for the process: runs of one process train one at a time (engine.run),
    # and an evaluate module is not made for two runs computing at once
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


def multilabel_metrics(predictions, references) -> dict:
    """For 0/1 indicator rows: micro and macro F1 / precision / recall, and exact-match accuracy."""
    import numpy as np

    preds = np.asarray(predictions, dtype=np.int64)
    refs = np.asarray(references, dtype=np.int64)
    out = {"subset_accuracy": float((preds == refs).all(axis=1).mean()) if len(refs) else 0.0}
    for average in ("micro", "macro"):
        for name in ("f1", "precision", "recall"):
            out[f"{name}_{average}"] = load(name).compute(predictions=preds.tolist(), references=refs.tolist(),
                                                          average=average)[name]
    return out


def regression_metrics(predictions, references) -> dict:
    """mse, rmse, mae and Pearson's r of numeric predictions."""
    import numpy as np

    preds = np.asarray(predictions, dtype=np.float64).reshape(-1)
    refs = np.asarray(references, dtype=np.float64).reshape(-1)
    mse = load("mse").compute(predictions=preds, references=refs)["mse"]
    if len(preds) < 2 or np.ptp(preds) == 0 or np.ptp(refs) == 0:
        pearson = None  # undefined for a constant input (a mean baseline): n/a, without scipy's warning
    else:
        pearson = load("pearsonr").compute(predictions=preds, references=refs)["pearsonr"]
    return {"mse": mse, "rmse": float(mse ** 0.5), "mae": float(np.abs(preds - refs).mean()) if len(refs) else 0.0,
            "pearson": pearson}


def entity_metrics(predictions: list[list[str]], references: list[list[str]]) -> tuple[dict, dict]:
    """seqeval scores of word-level tag sequences: (overall metrics, per-entity-type table)."""
    scores = load("seqeval").compute(predictions=predictions, references=references)
    overall = {"f1": scores.pop("overall_f1"), "precision": scores.pop("overall_precision"),
               "recall": scores.pop("overall_recall"), "accuracy": scores.pop("overall_accuracy")}
    return overall, scores
