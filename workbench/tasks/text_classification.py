"""Text classification: one label per text, several labels per text, or a number per text.

``task_options.problem`` picks the kind: ``single-label`` (softmax head, accuracy and macro F1),
``multi-label`` (a list of labels per row, sigmoid head, micro/macro F1) or ``regression`` (a
numeric target, MSE and Pearson's r).

Baseline (what the fine-tuning has to beat): a linear model on the frozen base model's mean-pooled
embeddings (logistic regression, one-vs-rest logistic regression, or ridge regression), and the
trivial predictor (the majority class, the label priors, the training mean).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from .. import metrics as wb_metrics
from ..data import DataError, Splits, check_texts, load_splits, where
from ..models import load_model
from . import Task, register
from ._common import encode_texts, json_label, mean_pooled_embeddings, predict_in_order, task_options

PROBE_MAX_TRAIN = 2000
EXAMPLES = 8
PROBLEMS = ("single-label", "multi-label", "regression")
OPTIONS = {"problem": "single-label", "threshold": 0.5, "label_separator": ","}


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
    peft_task_type = "SEQ_CLS"  # peft then trains the new classifier head in full next to the adapters

    def __new__(cls, cfg: Any = None):
        problem = (getattr(cfg, "task_options", None) or {}).get("problem", "single-label")
        sub = {"multi-label": MultiLabelClassification, "regression": TextRegression}.get(problem, cls)
        return super().__new__(sub if issubclass(sub, cls) else cls)

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self.options = task_options(cfg, "text-classification", OPTIONS, {"problem": PROBLEMS})
        t = self.options["threshold"]
        if not isinstance(t, (int, float)) or not 0 < t < 1:
            from ..errors import ConfigError

            raise ConfigError(f"task_options.threshold: {t!r} must be a number between 0 and 1.")
        sep = self.options["label_separator"]
        if not isinstance(sep, str) or not sep:
            from ..errors import ConfigError

            raise ConfigError(f"task_options.label_separator: {sep!r} must be one or more characters, such as ',' "
                              "or '|' (quote it in YAML: label_separator: '|').")
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
                            "Use one spelling per class (all text or all integers)"
                            + ("; or, if the labels are quantities to predict, set task_options.problem: "
                               "regression." if set(found) <= {"float", "int"} else "."),
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
            fix = ("Put each class's texts in a sub-folder named after the class, with at least two sub-folders."
                   if splits.train.attrs.get("row_word") == "document" else "Check data.label_column.")
            raise DataError(f"{splits.train.attrs.get('source')}: the training data has a single class "
                            f"({train_labels[0]!r}); a classifier needs at least two. {fix}",
                            [{"kind": "single_class", "column": d.label_column}])
        known = set(train_labels)
        for name, frame in (("validation", splits.validation), ("test", splits.test)):
            unseen = sorted({v for v in pd.unique(frame[d.label_column]) if v not in known}, key=str)
            if unseen:
                rows = [int(i) for i in np.flatnonzero(frame[d.label_column].isin(unseen).to_numpy())]
                by_text = {str(v): v for v in known}
                respelled = [u for u in unseen if str(u) in by_text]
                if respelled:  # "1" in a JSONL test file against 1 in a CSV: the same class, another type
                    u, t = json_label(respelled[0]), json_label(by_text[str(respelled[0])])
                    fix = (f"Train has {t!r} ({type(t).__name__}) where {name} has {u!r} ({type(u).__name__}): "
                           "write the labels the same way in both files (quote them in JSON, or none).")
                else:
                    fix = "The model cannot learn them. Add training examples or remove these rows."
                raise DataError(f"{name} split: labels {', '.join(map(repr, unseen))} never occur in train "
                                f"({where(frame, rows, 5)}). {fix}",
                                [{"kind": "unseen_labels", "split": name, "labels": [json_label(u) for u in unseen],
                                  "rows": rows[:100]}])
        self.labels = sorted((json_label(v) for v in train_labels), key=lambda v: (str(type(v)), v))
        self.label2id = {v: i for i, v in enumerate(self.labels)}
        counts = splits.train[d.label_column].value_counts()
        splits.report["labels"] = {str(k): int(v) for k, v in counts.items()}
        sep = self.options["label_separator"]
        joined = [str(v) for v in counts.index if isinstance(v, str) and sep in v]
        if joined and type(self) is TextClassification:  # "money,sport" as a class of its own
            splits.report["warnings"].append(
                f"{len(joined)} of the {len(counts)} classes hold '{sep}' (e.g. {joined[0]!r}), each trained as one "
                "class of its own. If a text can have several labels, set task_options.problem: multi-label.")
        if d.augment == "eda":
            from ..data.augment import augment_frame

            before = len(splits.train)
            splits.train, added = augment_frame(splits.train, d.text_column, d.augment_copies, d.augment_rate,
                                                self.cfg.train.seed)
            splits.report["augmented"] = {"method": "eda", "original": before, "added": added,
                                          "copies": d.augment_copies, "rate": d.augment_rate}
        return splits

    def tokenize(self, splits: Splits, tokenizer: Any) -> dict:
        import datasets

        d = self.cfg.data
        out = {}
        for name, frame in splits.items():
            ids, rep = encode_texts(tokenizer, frame[d.text_column].tolist(), self.cfg.train.max_length)
            self.length_report[name] = rep
            out[name] = datasets.Dataset.from_dict(
                {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids], "labels": self._targets(frame),
                 "length": [len(x) for x in ids]})
        return out

    def _targets(self, frame: pd.DataFrame) -> list:
        return [self.label2id[json_label(v)] for v in frame[self.cfg.data.label_column]]

    # ---- model -------------------------------------------------------------------------------
    def load_model(self):
        from transformers import AutoModelForSequenceClassification

        # problem_type stated up front: transformers' heads otherwise set it in their first forward,
        # and that change of the config makes torch.compile compile the model a second time
        return load_model(self.cfg, AutoModelForSequenceClassification, num_labels=len(self.labels),
                          problem_type="single_label_classification",
                          id2label={i: str(v) for i, v in enumerate(self.labels)},
                          label2id={str(v): i for i, v in enumerate(self.labels)})

    def collator(self, tokenizer: Any):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=self.pad_to_multiple_of)

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

        train_y = np.asarray(datasets["train"]["labels"])
        test_y = np.asarray(datasets["test"]["labels"])
        idx, x_train, x_test = self._frozen_features(tokenizer, datasets, device, precision)
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

    def _frozen_features(self, tokenizer: Any, datasets: dict, device: str, precision: str):
        """(probe training rows, their embeddings, test embeddings) from the frozen base encoder."""
        from transformers import AutoModel

        train_ids = datasets["train"]["input_ids"]
        rng = np.random.default_rng(self.cfg.train.seed)
        idx = np.arange(len(train_ids))
        if len(idx) > PROBE_MAX_TRAIN:
            idx = np.sort(rng.choice(idx, PROBE_MAX_TRAIN, replace=False))
        encoder = load_model(self.cfg, AutoModel)
        x_train = mean_pooled_embeddings(encoder, tokenizer, [train_ids[i] for i in idx], device, precision)
        x_test = mean_pooled_embeddings(encoder, tokenizer, datasets["test"]["input_ids"], device, precision)
        return idx, x_train, x_test

    def evaluate(self, trainer: Any, datasets: dict, splits: Splits, baseline: dict) -> dict:
        from sklearn.metrics import classification_report, confusion_matrix

        out = predict_in_order(trainer, datasets["test"])
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
        return {"labels": self.labels, "problem": "single-label"}

    # ---- using the model ---------------------------------------------------------------------
    @classmethod
    def predict(cls, model, tokenizer, inputs: list, info: dict, max_length: int = 256, batch_size: int = 32,
                **kw) -> list[dict]:
        problem = info.get("problem", "single-label")
        if problem != "single-label" and cls is TextClassification:
            sub = MultiLabelClassification if problem == "multi-label" else TextRegression
            return sub.predict(model, tokenizer, inputs, info, max_length=max_length, batch_size=batch_size, **kw)
        labels = info.get("labels") or [model.config.id2label[i] for i in range(model.config.num_labels)]
        results: list[dict] = []
        for logits in batched_logits(model, tokenizer, inputs, max_length, batch_size):
            for row in logits.softmax(-1).numpy():
                k = int(row.argmax())
                results.append({"label": labels[k], "score": float(row[k]),
                                "scores": {str(labels[j]): float(p) for j, p in enumerate(row)}})
        return results


def batched_logits(model: Any, tokenizer: Any, inputs: list, max_length: int, batch_size: int):
    """fp32 CPU logits of ``inputs``, one batch at a time (inference mode, padded per batch)."""
    import torch

    model.eval()
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            batch = tokenizer(list(inputs[start:start + batch_size]), truncation=True, max_length=max_length,
                              padding=True, return_tensors="pt").to(model.device)
            yield model(**batch).logits.float().cpu()


def probe_baseline(score: Any, test_y: np.ndarray, probe_pred: np.ndarray, trivial: tuple[str, np.ndarray],
                   method: str) -> dict:
    """The baseline record: the linear probe (the baseline proper), with a trivial predictor beside it."""
    probe = score(probe_pred, test_y)
    return {"baseline": probe, "baselines": {"linear_probe": probe, trivial[0]: score(trivial[1], test_y)},
            "baseline_method": method, "_predictions": probe_pred}


def _check_targets(task: TextClassification, split: str, frame: pd.DataFrame, convert: Any, kind: str,
                   rule: str, none_hint: str = "") -> None:
    """Texts present, targets present, and every target readable by ``convert`` (else name the rows);
    ``none_hint`` says how to write a row that has no target on purpose."""
    col = task.cfg.data.label_column
    check_texts(frame, task.cfg.data.text_column, f"data.{split}")
    values = frame[col]
    missing = [i for i, v in enumerate(values) if v is None or (isinstance(v, float) and np.isnan(v))]
    if missing:
        raise DataError(f"{where(frame, missing)}: no label in column '{col}'. Label these rows or remove them"
                        f"{none_hint}; nothing was dropped.",
                        [{"kind": "missing_label", "column": col, "rows": missing[:100]}])
    bad = [i for i, v in enumerate(values) if convert(v) is None]
    if bad:
        raise DataError(f"{where(frame, bad)}: column '{col}' {rule}; got e.g. {values.iloc[bad[0]]!r}. Fix these "
                        "values; nothing was dropped.", [{"kind": kind, "column": col, "rows": bad[:100]}])


def _load_converted(task: TextClassification, convert: Any, stratify_by: Any = None) -> Splits:
    """Load and check the splits, then replace each target by ``convert(target)``."""
    d = task.cfg.data
    splits = load_splits(task.cfg, key_column=d.text_column, label_column=d.label_column, check=task._check,
                         columns={"data.text_column": d.text_column, "data.label_column": d.label_column},
                         stratify_by=stratify_by)
    for _, frame in splits.items():
        frame[d.label_column] = frame[d.label_column].map(convert)
    return splits


class MultiLabelClassification(TextClassification):
    """Several labels per text: a sigmoid per label, a label is on when its probability >= threshold."""

    main_metric = "f1_micro"
    greater_is_better = True

    def _parse(self, value: Any) -> list | None:
        """A row's labels: a list, a JSON list ('["a", "b"]'), or text split on label_separator ('a,b')."""
        import json

        if isinstance(value, (list, tuple, np.ndarray)):
            items = list(value)
        elif isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    items = json.loads(text)
                except json.JSONDecodeError:
                    return None
            else:
                items = [part.strip() for part in text.split(self.options["label_separator"]) if part.strip()]
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            items = [int(value)]
        else:
            return None
        if not isinstance(items, list) or not all(isinstance(v, (str, int, np.integer)) for v in items):
            return None
        return sorted({json_label(v) for v in items}, key=lambda v: (str(type(v)), v))

    def _check(self, split: str, frame: pd.DataFrame) -> None:
        sep = self.options["label_separator"]
        _check_targets(self, split, frame, self._parse, "bad_labels",
                       "must hold the labels of each row as a list (JSON/JSONL/parquet), a JSON list in text, or "
                       f"text separated by '{sep}' (task_options.label_separator)",
                       none_hint=" (a row with none of the labels is written [] in the cell, or an empty list in "
                                 "JSON)")

    def load_data(self) -> Splits:
        d = self.cfg.data
        # split off validation/test by label set, alike for lists, "a,b" and "b,a"
        splits = _load_converted(self, self._parse, stratify_by=lambda v: json.dumps(self._parse(v)))
        counts: dict = {}
        for row in splits.train[d.label_column]:
            for v in row:
                counts[v] = counts.get(v, 0) + 1
        if len(counts) < 2:
            raise DataError(f"{splits.train.attrs.get('source')}: the training data uses {len(counts)} distinct "
                            "label(s); multi-label classification needs at least two. Check data.label_column.",
                            [{"kind": "single_class", "column": d.label_column}])
        for name, frame in (("validation", splits.validation), ("test", splits.test)):
            rows = [i for i, row in enumerate(frame[d.label_column]) if set(row) - set(counts)]
            if rows:
                unseen = sorted({v for i in rows for v in frame[d.label_column].iloc[i]} - set(counts), key=str)
                raise DataError(f"{name} split: labels {', '.join(map(repr, unseen))} never occur in train "
                                f"({where(frame, rows, 5)}); the model cannot learn them. Add training examples "
                                "or remove these labels.",
                                [{"kind": "unseen_labels", "split": name, "labels": unseen, "rows": rows[:100]}])
        self.labels = sorted(counts, key=lambda v: (str(type(v)), v))
        self.label2id = {v: i for i, v in enumerate(self.labels)}
        splits.report["labels"] = {str(k): int(counts[k]) for k in self.labels}
        return splits

    def _targets(self, frame: pd.DataFrame) -> list:
        out = []
        for row in frame[self.cfg.data.label_column]:
            hot = [0.0] * len(self.labels)
            for v in row:
                hot[self.label2id[v]] = 1.0
            out.append(hot)
        return out

    def load_model(self):
        from transformers import AutoModelForSequenceClassification

        return load_model(self.cfg, AutoModelForSequenceClassification, num_labels=len(self.labels),
                          problem_type="multi_label_classification",
                          id2label={i: str(v) for i, v in enumerate(self.labels)},
                          label2id={str(v): i for i, v in enumerate(self.labels)})

    def preprocess_logits_for_metrics(self, logits, labels):
        import math

        if isinstance(logits, tuple):
            logits = logits[0]
        t = float(self.options["threshold"])
        return (logits > math.log(t / (1 - t))).long()  # sigmoid(x) >= t, without the sigmoid

    def compute_metrics(self, eval_pred) -> dict:
        return wb_metrics.multilabel_metrics(eval_pred.predictions, np.asarray(eval_pred.label_ids).round())

    def baseline(self, splits: Splits, tokenizer: Any, datasets: dict, device: str, precision: str) -> dict:
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        train_y = np.asarray(datasets["train"]["labels"]).round().astype(np.int64)
        test_y = np.asarray(datasets["test"]["labels"]).round().astype(np.int64)
        idx, x_train, x_test = self._frozen_features(tokenizer, datasets, device, precision)
        probe = OneVsRestClassifier(LogisticRegression(max_iter=2000, C=1.0))
        probe.fit(x_train, train_y[idx])
        t = float(self.options["threshold"])
        probe_pred = (probe.predict_proba(x_test) >= t).astype(np.int64)
        prior_pred = np.tile((train_y.mean(axis=0) >= t).astype(np.int64), (len(test_y), 1))
        return probe_baseline(wb_metrics.multilabel_metrics, test_y, probe_pred, ("label_prior", prior_pred),
                              f"one-vs-rest logistic regression on the frozen base model's mean-pooled embeddings "
                              f"({len(idx)} training texts)")

    def evaluate(self, trainer: Any, datasets: dict, splits: Splits, baseline: dict) -> dict:
        from sklearn.metrics import classification_report

        out = predict_in_order(trainer, datasets["test"])
        preds = np.asarray(out.predictions).astype(np.int64)
        refs = np.asarray(out.label_ids).round().astype(np.int64)
        names = [str(v) for v in self.labels]
        report = {"finetuned": classification_report(refs, preds, target_names=names, output_dict=True,
                                                     zero_division=0)}
        base_pred = baseline.get("_predictions")
        examples = []
        if base_pred is not None:
            report["baseline"] = classification_report(refs, base_pred, target_names=names, output_dict=True,
                                                       zero_division=0)
            text = splits.test[self.cfg.data.text_column].tolist()

            def on(row: np.ndarray) -> list[str]:
                return [names[j] for j in np.flatnonzero(row)]

            for i in np.flatnonzero((preds != base_pred).any(axis=1))[:EXAMPLES]:
                examples.append({"text": text[i][:300], "label": on(refs[i]), "finetuned": on(preds[i]),
                                 "baseline": on(base_pred[i])})
        return {"metrics": wb_metrics.multilabel_metrics(preds, refs), "per_class": report, "examples": examples,
                "threshold": float(self.options["threshold"])}

    def model_info(self) -> dict:
        return {"labels": self.labels, "problem": "multi-label", "threshold": float(self.options["threshold"])}

    @classmethod
    def predict(cls, model, tokenizer, inputs: list, info: dict, max_length: int = 256, batch_size: int = 32,
                **kw) -> list[dict]:
        labels = info.get("labels") or [model.config.id2label[i] for i in range(model.config.num_labels)]
        t = float(kw.get("threshold", info.get("threshold", 0.5)))
        results = []
        for logits in batched_logits(model, tokenizer, inputs, max_length, batch_size):
            for row in logits.sigmoid().numpy():
                results.append({"labels": [labels[j] for j in np.flatnonzero(row >= t)],
                                "scores": {str(labels[j]): float(p) for j, p in enumerate(row)}})
        return results


class TextRegression(TextClassification):
    """A number per text. Targets are standardised for training (z-scores) and reported in their own units."""

    main_metric = "mse"
    greater_is_better = False

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self.mean = 0.0
        self.std = 1.0

    @staticmethod
    def _number(value: Any) -> float | None:
        if isinstance(value, bool):
            return None
        try:
            x = float(value)
        except (TypeError, ValueError):
            return None
        return x if np.isfinite(x) else None

    def _check(self, split: str, frame: pd.DataFrame) -> None:
        _check_targets(self, split, frame, self._number, "bad_target",
                       "must hold a finite number for regression (use task_options.problem: single-label for "
                       "classes)")

    def load_data(self) -> Splits:
        d = self.cfg.data
        splits = _load_converted(self, self._number)
        y = splits.train[d.label_column].to_numpy(dtype=np.float64)
        if len(y) < 2 or float(y.std()) == 0.0:
            raise DataError(f"{splits.train.attrs.get('source')}: the training target '{d.label_column}' is constant "
                            f"({y[0] if len(y) else 'no rows'}); there is nothing to learn.",
                            [{"kind": "constant_target", "column": d.label_column}])
        self.mean, self.std = float(y.mean()), float(y.std())
        splits.report["target"] = {"mean": self.mean, "std": self.std, "min": float(y.min()), "max": float(y.max())}
        return splits

    def _targets(self, frame: pd.DataFrame) -> list:
        return [(float(v) - self.mean) / self.std for v in frame[self.cfg.data.label_column]]

    def load_model(self):
        from transformers import AutoModelForSequenceClassification

        return load_model(self.cfg, AutoModelForSequenceClassification, num_labels=1, problem_type="regression")

    def preprocess_logits_for_metrics(self, logits, labels):
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits.squeeze(-1)

    def _units(self, z: Any) -> np.ndarray:
        return np.asarray(z, dtype=np.float64).reshape(-1) * self.std + self.mean

    def compute_metrics(self, eval_pred) -> dict:
        return wb_metrics.regression_metrics(self._units(eval_pred.predictions), self._units(eval_pred.label_ids))

    def baseline(self, splits: Splits, tokenizer: Any, datasets: dict, device: str, precision: str) -> dict:
        from sklearn.linear_model import Ridge

        train_y = np.asarray(datasets["train"]["labels"], dtype=np.float64)
        test_y = self._units(datasets["test"]["labels"])
        idx, x_train, x_test = self._frozen_features(tokenizer, datasets, device, precision)
        probe = Ridge(alpha=1.0).fit(x_train, train_y[idx])
        probe_pred = self._units(probe.predict(x_test))
        mean_pred = np.full_like(test_y, self.mean)
        return probe_baseline(wb_metrics.regression_metrics, test_y, probe_pred, ("train_mean", mean_pred),
                              f"ridge regression on the frozen base model's mean-pooled embeddings "
                              f"({len(idx)} training texts)")

    def evaluate(self, trainer: Any, datasets: dict, splits: Splits, baseline: dict) -> dict:
        out = predict_in_order(trainer, datasets["test"])
        preds = self._units(out.predictions)
        refs = splits.test[self.cfg.data.label_column].to_numpy(dtype=np.float64)  # exact, not via float32 labels
        examples = []
        base_pred = baseline.get("_predictions")
        if base_pred is not None:
            text = splits.test[self.cfg.data.text_column].tolist()
            for i in np.argsort(-np.abs(preds - base_pred))[:EXAMPLES]:  # where the two differ most
                examples.append({"text": text[i][:300], "label": float(refs[i]), "finetuned": float(preds[i]),
                                 "baseline": float(base_pred[i])})
        return {"metrics": wb_metrics.regression_metrics(preds, refs), "examples": examples,
                "target": {"mean": self.mean, "std": self.std}}

    def model_info(self) -> dict:
        return {"problem": "regression", "target_mean": self.mean, "target_std": self.std}

    @classmethod
    def predict(cls, model, tokenizer, inputs: list, info: dict, max_length: int = 256, batch_size: int = 32,
                **kw) -> list[dict]:
        mean, std = float(info.get("target_mean", 0.0)), float(info.get("target_std", 1.0))
        return [{"value": float(v) * std + mean}
                for logits in batched_logits(model, tokenizer, inputs, max_length, batch_size)
                for v in logits.reshape(-1).numpy()]
