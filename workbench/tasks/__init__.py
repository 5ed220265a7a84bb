"""Task registry: each task knows its data, model head, collator, metrics, baseline and predictions.

A task module defines a ``Task`` subclass and registers it with ``@register``. The engine only
talks to this interface, so a new task never touches the training core.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from ..errors import ConfigError

_REGISTRY: dict[str, type] = {}
_MODULES = {
    "text-classification": "text_classification",
    "token-classification": "token_classification",
    "masked-lm": "masked_lm",
    "causal-lm": "causal_lm",
}


def register(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def get(name: str) -> type:
    if name not in _REGISTRY and name in _MODULES:
        try:
            importlib.import_module(f"{__name__}.{_MODULES[name]}")
        except ModuleNotFoundError as e:
            if e.name and e.name.endswith(_MODULES[name]):
                raise ConfigError(f"task: '{name}' is not available in this version of workbench.") from None
            raise
    if name not in _REGISTRY:
        raise ConfigError(f"task: unknown task '{name}'. Known tasks: {', '.join(_MODULES)}.")
    return _REGISTRY[name]


def task_option_defaults() -> dict[str, dict[str, Any]]:
    """Each task's ``task_options`` with their defaults (its module's ``OPTIONS``)."""
    return {name: dict(getattr(importlib.import_module(f"{__name__}.{module}"), "OPTIONS", {}))
            for name, module in _MODULES.items()}


class Task:
    """Interface every task implements (see text_classification for the reference implementation)."""

    name = "task"
    main_metric = "loss"
    greater_is_better = False
    auto_model: Any = None
    # set by the engine: 8 on a GPU, where bf16/fp16 tensor cores work on multiples of 8; None (the
    # batch's longest text) on a CPU
    pad_to_multiple_of: int | None = None
    # "masked" or "causal": logits only at the labelled positions (see engine/sparse.py)
    sparse_prediction: str | None = None

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.length_report: dict = {}

    # data
    def load_data(self):
        raise NotImplementedError

    def tokenize(self, splits, tokenizer) -> dict:
        raise NotImplementedError

    # model
    def load_model(self):
        raise NotImplementedError

    def collator(self, tokenizer):
        raise NotImplementedError

    def model_kwargs(self) -> dict:
        return {}

    # metrics
    def compute_metrics(self, eval_pred) -> dict:
        raise NotImplementedError

    def preprocess_logits_for_metrics(self, logits, labels):
        return logits

    def baseline(self, splits, tokenizer, datasets, device, precision) -> dict:
        """Metrics of the base model on the test split: {"baseline": {...}, "baselines": {...}, ...}."""
        return {}

    def emit(self, event: Any) -> None:
        """Send an event (a Phase) to the run's sinks; the engine replaces this with the run's emitter."""

    def evaluate(self, trainer, datasets, splits, baseline: dict) -> dict:
        """Final test metrics and the task's detail tables: {"metrics": ..., "per_class": ..., ...}."""
        raise NotImplementedError

    # saving and using the model
    def save_extras(self, model_dir) -> None:
        pass

    @classmethod
    def predict(cls, model, tokenizer, inputs: list, info: dict, **kw) -> list:
        raise NotImplementedError
