"""Pieces several tasks share: tokenizing with a truncation report, batched inference, label maps."""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterable

import numpy as np


def encode_texts(tokenizer: Any, texts: list[str], max_length: int) -> tuple[list[list[int]], dict]:
    """Tokenize without padding; truncate to ``max_length`` keeping the closing special token.

    Returns the ids and a report: how many texts were cut, and token-length statistics before
    cutting (the report a user needs to choose max_length).
    """
    enc = tokenizer(list(texts), truncation=False, add_special_tokens=True, verbose=False)
    ids = enc["input_ids"]
    special = set(tokenizer.all_special_ids)
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    cut = 0
    out = []
    for x in ids:
        if len(x) > max_length:
            cut += 1
            x = x[: max_length - 1] + [x[-1]] if x[-1] in special else x[:max_length]
        out.append(x)
    report = {
        "examples": int(len(ids)),
        "truncated": int(cut),
        "truncated_fraction": float(cut / max(len(ids), 1)),
        "tokens_before": int(lengths.sum()),
        "tokens_kept": int(sum(len(x) for x in out)),
        "length_mean": float(lengths.mean()) if len(lengths) else 0.0,
        "length_p50": float(np.percentile(lengths, 50)) if len(lengths) else 0.0,
        "length_p90": float(np.percentile(lengths, 90)) if len(lengths) else 0.0,
        "length_max": int(lengths.max()) if len(lengths) else 0,
        "max_length": int(max_length),
    }
    return out, report


def autocast(device: str, precision: str):
    import torch

    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype)
    return nullcontext()


def length_sorted_batches(lengths: Iterable[int], batch_size: int) -> list[np.ndarray]:
    order = np.argsort(np.asarray(list(lengths)), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class BaselineStopped(Exception):
    """A stop was asked for while the base model was being evaluated (see ``stops_baseline``)."""


_baseline = threading.local()


@contextmanager
def stops_baseline(requested: Callable[[], bool]):
    """For the length of a task's baseline on this thread: its batches (frozen-encoder embeddings,
    Trainer's prediction and head-training steps) end it with ``BaselineStopped`` once ``requested()``
    says so, instead of running on for minutes after Stop."""
    before = getattr(_baseline, "requested", None)
    _baseline.requested = requested
    try:
        yield
    finally:
        _baseline.requested = before


def raise_if_stopped() -> None:
    requested = getattr(_baseline, "requested", None)
    if requested is not None and requested():
        raise BaselineStopped()


def baseline_stop_callback() -> Any:
    """A TrainerCallback that checks for a stop at each prediction and training step of a baseline."""
    from transformers import TrainerCallback

    class _Stops(TrainerCallback):
        def on_prediction_step(self, args, state, control, **kw):
            raise_if_stopped()

        def on_step_end(self, args, state, control, **kw):
            raise_if_stopped()

    return _Stops()


def encoder_batches(model: Any, tokenizer: Any, ids: list[list[int]], device: str, precision: str,
                    batch_size: int = 64):
    """Run a frozen encoder over ``ids`` in length-sorted, padded batches.

    Yields (row indices, last hidden state, attention mask) per batch, without gradients.
    """
    import torch

    model.eval().to(device)
    pad = tokenizer.pad_token_id or 0
    with torch.inference_mode(), autocast(device, precision):
        for batch in length_sorted_batches((len(x) for x in ids), batch_size):
            raise_if_stopped()
            width = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                mask[row, : len(ids[i])] = 1
            mask = mask.to(device)
            yield batch, model(input_ids=input_ids.to(device), attention_mask=mask).last_hidden_state, mask


def mean_pooled_embeddings(model: Any, tokenizer: Any, ids: list[list[int]], device: str, precision: str,
                           batch_size: int = 64) -> np.ndarray:
    """Frozen-encoder sentence embeddings (masked mean of the last hidden state), length-sorted batches."""
    out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    for batch, hidden, mask in encoder_batches(model, tokenizer, ids, device, precision, batch_size):
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        out[batch] = pooled.float().cpu().numpy()
    return out


def json_label(value: Any) -> Any:
    """Labels as JSON-able values (numpy ints become ints)."""
    if hasattr(value, "item"):
        return value.item()
    return value


def task_options(cfg: Any, task: str, defaults: dict, choices: dict | None = None) -> dict:
    """``cfg.task_options`` over the task's ``defaults``; an unknown key or a bad choice is a ConfigError."""
    import difflib

    from ..errors import ConfigError

    given = dict(cfg.task_options or {})
    for key in given:
        if key not in defaults:
            close = difflib.get_close_matches(str(key), list(defaults), n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"task_options.{key}: not an option of {task} (options: {', '.join(defaults)}).{hint}")
    out = {**defaults, **given}
    for key, allowed in (choices or {}).items():
        if out[key] not in allowed:
            close = difflib.get_close_matches(str(out[key]), [str(a) for a in allowed], n=1, cutoff=0.6)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"task_options.{key}: {out[key]!r} is not one of {', '.join(map(str, allowed))}.{hint}")
    return out


def predict_in_order(trainer: Any, dataset: Any, prefix: str = "test"):
    """``trainer.predict`` whose predictions and labels line up with ``dataset``'s rows.

    With ``train_sampling_strategy="group_by_length"`` Trainer length-groups evaluation batches
    too, which shuffles rows, so predictions would no longer match the texts they belong to. Here
    rows go through sorted by length (sequential sampling, least padding) and are put back in order.
    """
    from transformers.trainer_utils import PredictionOutput

    lengths = dataset["length"] if "length" in dataset.column_names else [len(x) for x in dataset["input_ids"]]
    order = np.argsort(np.asarray(lengths), kind="stable")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    saved = trainer.args.train_sampling_strategy
    trainer.args.train_sampling_strategy = "random"  # evaluation then samples sequentially
    try:
        out = trainer.predict(dataset.select(order), metric_key_prefix=prefix)
    finally:
        trainer.args.train_sampling_strategy = saved

    def restore(a: Any) -> Any:
        if a is None:
            return None
        if isinstance(a, (tuple, list)):
            return type(a)(restore(x) for x in a)
        return np.asarray(a)[inverse]

    return PredictionOutput(predictions=restore(out.predictions), label_ids=restore(out.label_ids),
                            metrics=out.metrics)
