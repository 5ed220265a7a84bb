"""Text classification: one label per text.

Baseline (what the fine-tuning has to beat): a logistic-regression probe on the frozen base
model's mean-pooled embeddings, and the majority class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import metrics as wb_metrics
from ..data import DataError, Splits, check_texts, load_splits, where
from ..models import load_model
from . import Task, register
from ._common import encode_texts, json_label, mean_pooled_embeddings

PROBE_MAX_TRAIN = 2000
EXAMPLES = 8


def _label_kind(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, (int, np.integer)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "int" if float(v).is_integer() else "float"
    if isinstance(v, str):
        return "str"
    return type(v).__name__


@register("text-classification")
class TextClassification(Task):
    main_metric = "accuracy"
    greater_is_better = True

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self.labels: list = []
        self.label2id: dict = {}

    # ---- data --------------------------------------------------------------------------------
    def _check(self, split: str, frame: pd.DataFrame) -> None:
        d = self.cfg.data
        check_texts(frame, d.text_column, f"data.{split}")
        labels = frame[d.label_column]
        missing = [int(i) for i in np.flatnonzero(labels.isna().to_numpy())]
        if missing:
            raise DataError(f"{where(frame, missing)}: no label in column '{d.label_column}'. Label these rows or "
                            "remove them; nothing was dropped.",
                            [{"kind": "missing_label", "column": d.label_column, "rows": missing[:100]}])
        kinds = labels.map(_label_kind)
        found = sorted(set(kinds))
        if len(found) > 1:
            minority = kinds.value_counts().index[-1]
            rows = [int(i) for i in np.flatnonzero((kinds == minority).to_numpy())]
            raise DataError(f"{frame.attrs.get('source')}: column '{d.label_column}' mixes label types "
                            f"({', '.join(found)}); e.g. {where(frame, rows, 3)} hold {minority} values. "
                            "Use one spelling per class (all text or all integers).",
                            [{"kind": "mixed_label_types", "column": d.label_column, "types": found,
                              "rows": rows[:100]}])
        if found and found[0] in ("list", "ndarray", "tuple"):
            raise DataError(f"{frame.attrs.get('source')}: column '{d.label_column}' holds lists; multi-label "
                            "classification is set with task_options: {problem: multi-label}.")
        if found == ["float"]:
            raise DataError(f"{frame.attrs.get('source')}: column '{d.label_column}' holds non-integer numbers; "
                            "for a numeric target use task_options: {problem: regression}.")

    def load_data(self) -> Splits:
        d = self.cfg.data
        splits = load_splits(self.cfg, key_column=d.text_column, label_column=d.label_column, check=self._check,
                             columns={"data.text_column": d.text_column, "data.label_column": d.label_column})
        train_labels = pd.unique(splits.train[d.label_column])
        if len(train_labels) < 2:
            raise DataError(f"{splits.train.attrs.get('source')}: the training data has a single class "
                            f"({train_labels[0]!r}); a classifier needs at least two. Check data.label_column.",
                            [{"kind": "single_class", "column": d.label_column}])
        known = set(train_labels)
        for name, frame in (("validation", splits.validation), ("test", splits.test)):
            unseen = sorted({v for v in pd.unique(frame[d.label_column]) if v not in known}, key=str)
            if unseen:
                rows = [int(i) for i in np.flatnonzero(frame[d.label_column].isin(unseen).to_numpy())]
                raise DataError(f"{name} split: labels {', '.join(map(repr, unseen))} never occur in train "
                                f"({where(frame, rows, 5)}); the model cannot learn them. Add training examples "
                                "or remove these rows.",
                                [{"kind": "unseen_labels", "split": name, "labels": [json_label(u) for u in unseen],
                                  "rows": rows[:100]}])
        self.labels = sorted((json_label(v) for v in train_labels), key=lambda v: (str(type(v)), v))
        self.label2id = {v: i for i, v in enumerate(self.labels)}
        counts = splits.train[d.label_column].value_counts()
        splits.report["labels"] = {str(k): int(v) for k, v in counts.items()}
        return splits

    def tokenize(self, splits: Splits, tokenizer: Any) -> dict:
        import datasets

        d = self.cfg.data
        out = {}
        for name, frame in splits.items():
            ids, rep = encode_texts(tokenizer, frame[d.text_column].tolist(), self.cfg.train.max_length)
            self.length_report[name] = rep
            labels = [self.label2id[json_label(v)] for v in frame[d.label_column]]
            out[name] = datasets.Dataset.from_dict(
                {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids], "labels": labels,
                 "length": [len(x) for x in ids]})
        return out

    # ---- model -------------------------------------------------------------------------------
    def load_model(self):
        from transformers import AutoModelForSequenceClassification

        return load_model(self.cfg, AutoModelForSequenceClassification, num_labels=len(self.labels),
                          id2label={i: str(v) for i, v in enumerate(self.labels)},
                          label2id={str(v): i for i, v in enumerate(self.labels)})

    def collator(self, tokenizer: Any):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=None)

    # ---- metrics -----------------------------------------------------------------------------
    def preprocess_logits_for_metrics(self, logits, labels):
        # argmax on the device: only class ids cross to the host, not the whole logit matrix
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits.argmax(dim=-1)

    def compute_metrics(self, eval_pred) -> dict:
        preds = np.asarray(eval_pred.predictions).reshape(-1)
        refs = np.asarray(eval_pred.label_ids).reshape(-1)
        return wb_metrics.classification_metrics(preds, refs, len(self.labels))

    def baseline(self, splits: Splits, tokenizer: Any, datasets: dict, device: str, precision: str) -> dict:
        from sklearn.linear_model import LogisticRegression
        from transformers import AutoModel

        train_ids = datasets["train"]["input_ids"]
        train_y = np.asarray(datasets["train"]["labels"])
        test_y = np.asarray(datasets["test"]["labels"])
        rng = np.random.default_rng(self.cfg.train.seed)
        idx = np.arange(len(train_ids))
        if len(idx) > PROBE_MAX_TRAIN:
            idx = np.sort(rng.choice(idx, PROBE_MAX_TRAIN, replace=False))
        encoder = load_model(self.cfg, AutoModel)
        x_train = mean_pooled_embeddings(encoder, tokenizer, [train_ids[i] for i in idx], device, precision)
        x_test = mean_pooled_embeddings(encoder, tokenizer, datasets["test"]["input_ids"], device, precision)
        del encoder
        probe = LogisticRegression(max_iter=2000, C=1.0)
        probe.fit(x_train, train_y[idx])
        probe_pred = probe.predict(x_test)
        majority = np.bincount(train_y, minlength=len(self.labels)).argmax()
        maj_pred = np.full_like(test_y, majority)
        n = len(self.labels)
        return {
            "baseline": wb_metrics.classification_metrics(probe_pred, test_y, n),
            "baselines": {
                "linear_probe": wb_metrics.classification_metrics(probe_pred, test_y, n),
                "majority_class": wb_metrics.classification_metrics(maj_pred, test_y, n),
            },
            "baseline_method": (f"logistic regression on the frozen base model's mean-pooled embeddings "
                                f"({len(idx)} training texts)"),
            "_predictions": probe_pred,
        }

    def evaluate(self, trainer: Any, datasets: dict, splits: Splits, baseline: dict) -> dict:
        from sklearn.metrics import classification_report, confusion_matrix

        out = trainer.predict(datasets["test"], metric_key_prefix="test")
        preds = np.asarray(out.predictions).reshape(-1)
        refs = np.asarray(out.label_ids).reshape(-1)
        metrics = wb_metrics.classification_metrics(preds, refs, len(self.labels))
        names = [str(v) for v in self.labels]
        ids = list(range(len(names)))
        per_class = {"finetuned": classification_report(refs, preds, labels=ids, target_names=names,
                                                        output_dict=True, zero_division=0)}
        base_pred = baseline.get("_predictions")
        if base_pred is not None:
            per_class["baseline"] = classification_report(refs, base_pred, labels=ids, target_names=names,
                                                          output_dict=True, zero_division=0)
        examples = []
        text = splits.test[self.cfg.data.text_column].tolist()
        if base_pred is not None:
            for i in np.flatnonzero(preds != base_pred)[:EXAMPLES]:
                examples.append({"text": text[i][:300], "label": names[refs[i]], "finetuned": names[preds[i]],
                                 "baseline": names[base_pred[i]]})
        return {
            "metrics": metrics,
            "per_class": per_class,
            "confusion_matrix": {"labels": names,
                                 "finetuned": confusion_matrix(refs, preds, labels=ids).tolist(),
                                 **({"baseline": confusion_matrix(refs, base_pred, labels=ids).tolist()}
                                    if base_pred is not None else {})},
            "examples": examples,
        }

    def model_info(self) -> dict:
        return {"labels": self.labels}

    # ---- using the model ---------------------------------------------------------------------
    @classmethod
    def predict(cls, model, tokenizer, inputs: list, info: dict, max_length: int = 256, batch_size: int = 32,
                **kw) -> list[dict]:
        import torch

        labels = info.get("labels") or [model.config.id2label[i] for i in range(model.config.num_labels)]
        model.eval()
        results: list[dict] = []
        with torch.inference_mode():
            for start in range(0, len(inputs), batch_size):
                batch = tokenizer(list(inputs[start:start + batch_size]), truncation=True, max_length=max_length,
                                  padding=True, return_tensors="pt").to(model.device)
                probs = model(**batch).logits.float().softmax(-1).cpu().numpy()
                for row in probs:
                    k = int(row.argmax())
                    results.append({"label": labels[k], "score": float(row[k]),
                                    "scores": {str(labels[j]): float(p) for j, p in enumerate(row)}})
        return results
