"""Entity-level precision / recall / F1 (seqeval), as an `evaluate` module that loads offline.

Same output as the hub's ``seqeval`` metric: one entry per entity type and ``overall_*`` scores.
"""

import datasets
import evaluate
from seqeval.metrics import accuracy_score, classification_report


class Seqeval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Entity-level scores of tag sequences (IOB1, IOB2/BIO, BIOES), computed by seqeval.",
            citation="",
            inputs_description="predictions, references: lists of tag sequences, one tag per word",
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string")),
                                        "references": datasets.Sequence(datasets.Value("string"))}),
        )

    def _compute(self, predictions, references, suffix=False, scheme=None, mode=None, zero_division=0):
        if scheme is not None:
            import seqeval.scheme

            scheme = getattr(seqeval.scheme, scheme)
        report = classification_report(y_true=references, y_pred=predictions, suffix=suffix, output_dict=True,
                                       scheme=scheme, mode=mode, zero_division=zero_division)
        overall = report.pop("micro avg")
        for key in ("macro avg", "weighted avg"):
            report.pop(key, None)
        scores = {kind: {"precision": float(s["precision"]), "recall": float(s["recall"]),
                         "f1": float(s["f1-score"]), "number": int(s["support"])} for kind, s in report.items()}
        scores.update(overall_precision=float(overall["precision"]), overall_recall=float(overall["recall"]),
                      overall_f1=float(overall["f1-score"]),
                      overall_accuracy=float(accuracy_score(y_true=references, y_pred=predictions)))
        return scores
