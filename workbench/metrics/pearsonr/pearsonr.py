"""Pearson correlation, as an `evaluate` module that loads from this folder (no hub access)."""

import datasets
import evaluate
from scipy.stats import pearsonr


class Pearsonr(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Pearson correlation coefficient from SciPy (0 when either side is constant).",
            citation="",
            inputs_description="predictions, references: numbers",
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}),
        )

    def _compute(self, predictions, references):
        import numpy as np

        if len(predictions) < 2 or np.std(predictions) == 0 or np.std(references) == 0:
            return {"pearsonr": 0.0}  # undefined; a constant prediction carries no correlation
        return {"pearsonr": float(pearsonr(references, predictions)[0])}
