"""Mean squared error, as an `evaluate` module that loads from this folder (no hub access)."""

import datasets
import evaluate
from sklearn.metrics import mean_squared_error


class Mse(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Mean squared error from scikit-learn.",
            citation="",
            inputs_description="predictions, references: numbers",
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}),
        )

    def _compute(self, predictions, references, sample_weight=None, squared=True):
        mse = float(mean_squared_error(references, predictions, sample_weight=sample_weight))
        return {"mse": mse if squared else mse ** 0.5}
