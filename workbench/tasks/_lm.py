"""What the two language-modelling tasks share: reading domain text, packing it, and perplexity.

Perplexity is ``exp`` of the mean negative log-likelihood over every scored token of a split
(token-weighted, not a mean of batch means), computed the same way for the base and the
fine-tuned model: through ``Trainer.predict`` with the per-token loss taken on the device.
"""

from __future__ import annotations

import glob
import math
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..data import DataError, load_frame
from ..data.loaders import TEXT_SUFFIXES, read_text_file
from ._common import baseline_stop_callback, predict_in_order

SAMPLE_BY = ("line", "paragraph", "document")


# ---- reading domain text ------------------------------------------------------------------------

def _text_files(ref: Any) -> list[Path] | None:
    """The text files behind ``ref`` when it names .txt files (a file, a folder, a glob); else None.

    A folder is read with its sub-folders (a corpus kept by year or source): for language modelling
    the folder names are no labels. A folder that also holds other files is refused with their
    names rather than read in part."""
    if not isinstance(ref, (str, Path)):
        return None
    p = Path(ref).expanduser()
    if p.is_file():
        return [p] if p.suffix.lower() in TEXT_SUFFIXES else None
    if p.is_dir():
        files = [f for f in sorted(p.rglob("*")) if f.is_file()
                 and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts)]
        texts = [f for f in files if f.suffix.lower() in TEXT_SUFFIXES]
        if not texts:
            return None
        others = [str(f.relative_to(p)) for f in files if f.suffix.lower() not in TEXT_SUFFIXES]
        if others:
            raise DataError(f"{p}: besides {len(texts)} text file{'s' if len(texts) != 1 else ''} the folder holds {len(others)} other file{'s' if len(others) != 1 else ''} "
                            f"({', '.join(others[:5])}{', …' if len(others) > 5 else ''}), which are not read as "
                            f"text. Move them out, or name the text files with a glob such as {p}/**/*.txt.",
                            [{"kind": "other_files", "file": str(p), "files": others[:100]}])
        return texts
    # a glob such as corpus/** also matches the folders it walks through: those are no documents
    matches = [Path(m) for m in sorted(glob.glob(str(ref), recursive=True)) if Path(m).is_file()]
    texts = [m for m in matches if m.suffix.lower() in TEXT_SUFFIXES]
    if not texts:
        return None
    others = [str(m) for m in matches if m.suffix.lower() not in TEXT_SUFFIXES]
    if others:
        raise DataError(f"{ref}: besides {len(texts)} text file{'s' if len(texts) != 1 else ''} the pattern matches {len(others)} other file{'s' if len(others) != 1 else ''} "
                        f"({', '.join(others[:5])}{', …' if len(others) > 5 else ''}), which are not read as text. "
                        "End the pattern with the text files' suffix, such as **/*.txt.",
                        [{"kind": "other_files", "file": str(ref), "files": others[:100]}])
    return texts


def _documents(path: Path, sample_by: str, name: str) -> tuple[list[dict], int]:
    """(rows with text and location, number of blank lines skipped) for one text file."""
    text = read_text_file(path)
    lines = text.splitlines()
    where = f"{name} " if name else ""
    if not text.strip():
        raise DataError(f"{path}: the file holds no text (empty document). Remove it or fill it in.",
                        [{"kind": "empty_text", "file": str(path)}])
    if sample_by == "document":
        return [{"text": text.strip(), "location": name or path.name}], 0
    rows: list[dict] = []
    blank = 0
    block: list[str] = []
    start = 0
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            blank += 1
            if block:
                rows.append({"text": "\n".join(block), "location": f"{where}line {start}"})
                block = []
            continue
        if sample_by == "line":
            rows.append({"text": line.strip(), "location": f"{where}line {i}"})
        else:
            start = start if block else i
            block.append(line.strip())
    if block:
        rows.append({"text": "\n".join(block), "location": f"{where}line {start}"})
    return rows, blank


def text_loader(text_column: str, sample_by: str, skipped: dict) -> Callable[[Any, str], pd.DataFrame]:
    """A ``load_splits`` loader: .txt files become one row per line/paragraph/file, blank lines skipped.

    A blank line separates text; it is not a document, so it is counted in ``skipped`` rather than
    reported as an empty document. Anything else (csv, jsonl, bbc-news, DataFrames) goes to
    ``load_frame`` and keeps its own empty-text checks.
    """

    def load(ref: Any, field: str) -> pd.DataFrame:
        files = _text_files(ref)
        if files is None:
            return load_frame(ref, field)
        rows: list[dict] = []
        root = Path(ref).expanduser() if Path(ref).expanduser().is_dir() else None
        for f in files:
            name = (str(f.relative_to(root)) if root else f.name) if len(files) > 1 else ""
            found, blank = _documents(f, sample_by, name)
            rows.extend(found)
            if blank:
                skipped[field] = skipped.get(field, 0) + blank
        frame = pd.DataFrame(rows, columns=["text", "location"]).rename(columns={"text": text_column})
        frame.attrs.update(source=str(ref), row_offset=0, row_word=sample_by, location_column="location")
        return frame

    return load


# ---- blocks -------------------------------------------------------------------------------------

def pack(columns: dict[str, list[list]], block: int) -> dict[str, list[list]]:
    """Concatenate every example and cut the stream into ``block``-token pieces (the last may be shorter).

    All columns are cut at the same places, so labels stay aligned with their tokens. Nothing is
    dropped: the short last block is padded by the collator.
    """
    out: dict[str, list[list]] = {}
    for name, rows in columns.items():
        stream = [x for row in rows for x in row]
        out[name] = [stream[i:i + block] for i in range(0, len(stream), block)]
    return out


def length_report(examples: int, lengths: list[int], kept: list[int], max_length: int, packed: bool) -> dict:
    arr = np.asarray(lengths, dtype=np.int64) if lengths else np.zeros(0, dtype=np.int64)
    cut = sum(1 for a, b in zip(lengths, kept) if b < a)  # packed text loses nothing; long pairs still can
    return {
        "examples": int(examples),
        "truncated": int(cut),
        "truncated_fraction": float(cut / examples) if examples else 0.0,
        "tokens_before": int(arr.sum()),
        "tokens_kept": int(sum(kept)),
        "length_mean": float(arr.mean()) if len(arr) else 0.0,
        "length_p50": float(np.percentile(arr, 50)) if len(arr) else 0.0,
        "length_p90": float(np.percentile(arr, 90)) if len(arr) else 0.0,
        "length_max": int(arr.max()) if len(arr) else 0,
        "max_length": int(max_length),
        "packed": bool(packed),
    }


# ---- perplexity -----------------------------------------------------------------------------------

def token_losses(logits: Any, labels: Any, causal: bool, index: Any = None, scores: Any = None) -> tuple[Any, Any]:
    """Per-position negative log-likelihood and top-1 prediction, aligned with ``labels``.

    Runs on the device inside ``preprocess_logits_for_metrics`` so only two B x T arrays reach the
    host, never the B x T x vocabulary logits. For a causal model position t scores ``labels[t]``
    from the logits at t - 1 (position 0 is never scored). Logits of the predicting positions only
    (M x vocabulary) are scattered back by ``index``, the positions the loader's collator listed
    (listed here from the labels when it is None); ``scores``: their (nll, top-1) where the loss
    already computed them (``engine.sparse.token_nll``).
    """
    import torch
    import torch.nn.functional as F

    if isinstance(logits, tuple):
        logits = logits[0]
    nll = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
    top1 = torch.full(labels.shape, -100, dtype=torch.long, device=labels.device)
    if logits.dim() == 2:  # the predicting positions only (engine/sparse.py), row-major
        from ..engine.sparse import labelled_index, predicted_targets, token_nll

        targets = predicted_targets(labels, causal)
        if index is None:
            index = labelled_index(targets)
        if scores is None:
            scores = token_nll(logits, targets.reshape(-1).index_select(0, index), top1=True)
        scored = index + 1 if causal else index  # position t + 1 holds the score of its prediction at t
        nll.view(-1)[scored], top1.view(-1)[scored] = scores
        return nll, top1
    for i in range(labels.shape[0]):  # one row at a time: the fp32 copy of the logits stays small
        row = logits[i, :-1] if causal else logits[i]
        target = labels[i, 1:] if causal else labels[i]
        loss = F.cross_entropy(row.float(), target, ignore_index=-100, reduction="none")
        if causal:
            nll[i, 1:] = loss
            top1[i, 1:] = row.argmax(-1)
        else:
            nll[i] = loss
            top1[i] = row.argmax(-1)
    return nll, top1


def scored_mask(labels: np.ndarray, causal: bool) -> np.ndarray:
    mask = labels != -100
    if causal and mask.ndim == 2:
        mask[:, 0] = False
    return mask


def perplexity_metrics(predictions: Any, labels: np.ndarray, causal: bool) -> dict:
    nll, top1 = predictions
    labels = np.asarray(labels)
    mask = scored_mask(labels, causal)
    n = int(mask.sum())
    mean = float(np.asarray(nll, dtype=np.float64)[mask].sum() / n) if n else float("nan")
    # "nll", not "loss": Trainer writes its own batch-mean loss under that name
    return {"perplexity": float(math.exp(min(mean, 700.0))) if n else float("nan"), "nll": mean,
            "accuracy": float((np.asarray(top1)[mask] == labels[mask]).mean()) if n else float("nan")}


def base_trainer(task: Any, model: Any, tokenizer: Any, device: str, precision: str, workdir: str,
                 train_dataset: Any = None):
    """A Trainer over the base model with the run's own settings, for the baseline (no files kept).

    Using the run's TrainingArguments gives the base model the same evaluation batches and, where a
    head has to be trained first, the same optimisation budget as the fine-tuning.
    """
    from ..engine.run import _drop_library_progress
    from ..engine.trainer import trainer_class, training_arguments

    args = training_arguments(task.cfg, task, SimpleNamespace(checkpoints=Path(workdir)), device, precision,
                              has_eval=False)
    args.logging_strategy = "no"
    args.save_strategy = "no"
    trainer = trainer_class()(model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer,
                              data_collator=task.collator(tokenizer), compute_metrics=task.compute_metrics,
                              preprocess_logits_for_metrics=task.preprocess_logits_for_metrics,
                              callbacks=[baseline_stop_callback()])
    trainer.sparse_prediction = task.sparse_prediction
    _drop_library_progress(trainer)
    return trainer


def phase_every(emit: Callable, name: str, what: str, reports: int = 10):
    """A TrainerCallback that reports training progress as a few Phase events (for baseline training)."""
    from transformers import TrainerCallback

    from ..events import Phase

    class _Phases(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            every = max(1, -(-state.max_steps // reports))  # at most ``reports`` lines, however few the steps
            if state.global_step % every == 0 or state.global_step == state.max_steps:
                emit(Phase(name, f"{what}: step {state.global_step} of {state.max_steps}"))

    return _Phases()


def predict_split(trainer: Any, dataset: Any) -> tuple[dict, Any]:
    """Test metrics (without Trainer's prefixes and timings) and the raw (nll, top1) predictions."""
    out = predict_in_order(trainer, dataset)
    metrics = {k.removeprefix("test_"): v for k, v in out.metrics.items()
               if k.startswith("test_") and not k.endswith(("_runtime", "_per_second", "_loss", "_time"))}
    return metrics, out


def workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="workbench-baseline-")
