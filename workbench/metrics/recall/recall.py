"""Recall (binary, micro, macro or weighted), as an `evaluate` module that loads offline."""

import datasets
import evaluate
from sklearn.metrics import recall_score


class Recall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Recall from scikit-learn.",
            citation="",
            inputs_description="predictions, references: class ids (or 0/1 indicator lists for multi-label)",
            features=[
                datasets.Features({"predictions": datasets.Sequence(datasets.Value("int64")),
                                   "references": datasets.Sequence(datasets.Value("int64"))}),
                datasets.Features({"predictions": datasets.Value("int64"),
                                   "references": datasets.Value("int64")}),
            ],
        )

    def _compute(self, predictions, references, labels=None, pos_label=1, average="binary",
                 sample_weight=None, zero_division=0):
        score = recall_score(references, predictions, labels=labels, pos_label=pos_label, average=average,
                           sample_weight=sample_weight, zero_division=zero_division)
        return {"recall": float(score) if getattr(score, "size", 1) == 1 else score.tolist()}
