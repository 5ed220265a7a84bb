"""Data: load, check, and split — with errors that name the file, column, rows and a fix.

Nothing is dropped silently: every row removed (by an explicit ``duplicates: drop`` or
``overlap: drop`` setting) is counted in the report.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import DataError
from .loaders import INTERNAL_PREFIX, POSITION_COLUMN, load_frame, where

__all__ = ["Splits", "load_splits", "load_frame", "where", "require_columns", "DataError"]

SPLITS = ("train", "validation", "test")


@dataclass
class Splits:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    report: dict = field(default_factory=dict)

    def items(self):
        return (("train", self.train), ("validation", self.validation), ("test", self.test))


# what the default columns are often called in the data sets people bring (first found is suggested)
_COLUMN_SYNONYMS = {
    "text": ("sentence", "review", "content", "body", "document", "message", "comment", "description", "abstract",
             "headline", "title"),
    "label": ("category", "class", "sentiment", "target", "topic", "intent", "y"),
    "tokens": ("words",),
    "tags": ("ner_tags", "ner", "tag"),
    "prompt": ("instruction", "question", "input", "query"),
    "response": ("output", "answer", "completion"),
}


def require_columns(frame: pd.DataFrame, columns: dict[str, str]) -> None:
    """``columns`` maps config field -> column name; a missing one gets the list and the nearest match
    (by spelling, else by what such a column is often called)."""
    # the columns of the data as given: not those workbench adds to remember where rows came from
    location = frame.attrs.get("location_column")
    available = [str(c) for c in frame.columns if not str(c).startswith(INTERNAL_PREFIX) and c != location]
    for fieldname, col in columns.items():
        if col in frame.columns:
            continue
        close = difflib.get_close_matches(col, available, n=1, cutoff=0.6)  # a far guess misleads more than none
        if not close:
            lower = {a.lower(): a for a in available}
            close = [lower[s] for s in _COLUMN_SYNONYMS.get(col, ()) if s in lower][:1]
        hint = f" The nearest is '{close[0]}': set {fieldname}: {close[0]}." if close else \
            f" Set {fieldname} to one of them."
        raise DataError(
            f"{frame.attrs.get('source', 'data')}: no column '{col}' ({fieldname}). "
            f"Available columns: {', '.join(available) or '(none)'}.{hint}",
            [{"kind": "missing_column", "file": frame.attrs.get("source"), "column": col,
              "available": available, "suggestion": close[0] if close else None}])


def empty_text_rows(series: pd.Series) -> list[int]:
    bad = series.isna() | series.map(lambda v: not isinstance(v, str) or not v.strip())
    return [int(i) for i in np.flatnonzero(bad.to_numpy())]


def check_texts(frame: pd.DataFrame, column: str, field_name: str) -> None:
    numbers = [i for i, v in enumerate(frame[column].tolist())
               if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and not pd.isna(v)]
    if numbers:
        others = [str(c) for c in frame.columns if c != column]
        raise DataError(
            f"{where(frame, numbers)}: column '{column}' holds numbers, not text ({len(numbers)} of {len(frame)} "
            f"rows, e.g. {frame[column].iloc[numbers[0]]}) in {field_name}. Is it the right column? The others: "
            f"{', '.join(others) or 'none'}. To train on numbers as text, pass strings: quote them in JSON, or "
            f"give a DataFrame with df['{column}'] = df['{column}'].astype(str).",
            [{"kind": "numeric_text", "file": frame.attrs.get("source"), "column": column, "rows": numbers[:100],
              "count": len(numbers)}])
    rows = empty_text_rows(frame[column])
    if rows:
        raise DataError(
            f"{where(frame, rows)}: empty text in column '{column}' ({len(rows)} of {len(frame)} rows). "
            f"Remove these rows or fill them in; nothing was dropped.",
            [{"kind": "empty_text", "file": frame.attrs.get("source"), "column": column, "rows": rows[:100],
              "count": len(rows)}])


def fingerprint(splits: Splits, columns: list[str]) -> str:
    h = hashlib.sha256()
    for name, frame in splits.items():
        h.update(name.encode())
        cols = [c for c in columns if c in frame.columns]
        for row in frame[cols].itertuples(index=False):
            h.update(repr(tuple(row)).encode("utf-8", "replace"))
    return h.hexdigest()[:16]


def _key(v: Any) -> str:
    if isinstance(v, str):
        return " ".join(v.split()).lower()
    return repr(v)


def _group_split(frame: pd.DataFrame, size: float, key_col: str, strat: tuple[str, Callable] | None, seed: int,
                 what: str, taken: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """Split off ``size`` of ``frame``; copies of one text stay together, so no duplicate leaks across.
    The flag says whether the split is stratified (every class has two texts, and room in both parts).
    ``taken``: the test split already split off ``frame``'s data, for the count a refusal gives."""
    from sklearn.model_selection import train_test_split

    keys = frame[key_col].map(_key)
    first = ~keys.duplicated()
    uniq = frame[first]
    by = None
    if strat is not None:
        labels = uniq[strat[0]].map(strat[1])
        counts = labels.value_counts()
        n_eval = int(round(len(uniq) * size))
        if counts.min() >= 2 and n_eval >= len(counts) and len(uniq) - n_eval >= len(counts):
            by = labels
    if len(uniq) < 3:
        source = frame.attrs.get("source", "data")
        if taken is not None:
            n_taken = int((~taken[key_col].map(_key).duplicated()).sum())
            raise DataError(f"{source}: only {len(uniq) + n_taken} distinct texts; after {n_taken} went to the test "
                            f"split, the {len(uniq)} left are too few to split off a validation set as well. Give "
                            "more data, or separate data.validation and data.test files.")
        raise DataError(f"{source}: only {len(uniq)} distinct texts; too few to split off "
                        f"a {what} set. Give more data or a separate data.{what} file.")
    keep_keys, held_keys = train_test_split(keys[first], test_size=size, random_state=seed, stratify=by)
    held = set(held_keys)
    mask = keys.isin(held).to_numpy()
    a, b = frame[~mask], frame[mask]
    for part in (a, b):
        part.attrs.update(frame.attrs)
    return a, b, by is not None


def load_splits(cfg: Any, *, key_column: str, label_column: str | None,
                check: Callable[[str, pd.DataFrame], None] | None = None,
                columns: dict[str, str] | None = None,
                loader: Callable[[Any, str], pd.DataFrame] = load_frame,
                stratify_by: Callable[[Any], str] | None = None) -> Splits:
    """Load train/validation/test for ``cfg.data``, check them, and split off what is missing.

    ``key_column`` holds the text used for duplicate and overlap checks; ``label_column`` (if
    any) stratifies automatic splits, by its values where they are hashable or by ``stratify_by(value)``
    (a multi-label row's label set); ``check(split_name, frame)`` runs the task's
    own checks on each split before anything is split or dropped; ``loader(ref, field)`` reads one
    reference (a task with its own file formats passes its reader, falling back to ``load_frame``).
    """
    d = cfg.data
    seed = cfg.train.seed
    frames: dict[str, pd.DataFrame | None] = {}
    for name in SPLITS:
        ref = getattr(d, name)
        frames[name] = None if ref is None else loader(ref, f"data.{name}")
    for name, frame in frames.items():
        if frame is None:
            continue
        if len(frame) == 0:
            raise DataError(f"data.{name}: {frame.attrs.get('source', 'data')} has no rows.")
        require_columns(frame, columns or {})
        if check:
            check(name, frame)

    for frame in frames.values():
        # each row keeps its place in its file through splitting, sampling and dropping, so later
        # messages (duplicates, overlap, a task's checks on a split) name the file's own lines
        if frame is not None and not frame.attrs.get("location_column"):
            frame[POSITION_COLUMN] = np.arange(len(frame))
            frame.attrs["position_column"] = POSITION_COLUMN
    report: dict[str, Any] = {"sources": {n: (f.attrs.get("source") if f is not None else None)
                                          for n, f in frames.items()}, "warnings": [], "dropped": {}}
    train = frames["train"]
    assert train is not None
    strat = None
    if label_column and (stratify_by or _hashable(train[label_column])):
        strat = (label_column, stratify_by or _key)
    if frames["test"] is None:
        train, frames["test"], stratified = _group_split(train, d.test_size, key_column, strat, seed, "test")
        report["test_from"] = (f"{d.test_size:.0%} of train (seeded, {'stratified, ' if stratified else ''}"
                               "duplicates kept together)")
    if frames["validation"] is None:
        size = d.validation_size / (1 - d.test_size) if report.get("test_from") else d.validation_size
        if size >= 1:
            raise DataError(f"data.validation_size ({d.validation_size}) and data.test_size ({d.test_size}) add up "
                            "to the whole of data.train, leaving nothing to train on. Make them add up to less "
                            "than 1 (e.g. 0.1 each), or give data.validation or data.test files.")
        train, frames["validation"], stratified = _group_split(train, size, key_column, strat, seed + 1,
                                                               "validation",
                                                               frames["test"] if report.get("test_from") else None)
        report["validation_from"] = f"{d.validation_size:.0%} of the data (seeded{', stratified' if stratified else ''})"
    splits = Splits(train.reset_index(drop=True), frames["validation"].reset_index(drop=True),
                    frames["test"].reset_index(drop=True), report)
    for name, frame in splits.items():
        frame.attrs.update((frames[name] if frames[name] is not None else train).attrs)
    if d.max_train_samples:
        splits.train = _sample(splits.train, d.max_train_samples, strat, seed)
    if d.max_eval_samples:
        splits.validation = _sample(splits.validation, d.max_eval_samples, strat, seed)
        splits.test = _sample(splits.test, d.max_eval_samples, strat, seed)
    # checked on the rows the run uses (after the samples), so the counts match the split sizes shown
    _duplicates(splits, key_column, label_column, d.duplicates)
    _overlap(splits, key_column, d.overlap)
    report["sizes"] = {n: len(f) for n, f in splits.items()}
    return splits


def _hashable(series: pd.Series) -> bool:
    return not series.map(lambda v: isinstance(v, (list, tuple, np.ndarray, dict))).any()


def _sample(frame: pd.DataFrame, n: int, strat: tuple[str, Callable] | None, seed: int) -> pd.DataFrame:
    if len(frame) <= n:
        return frame
    from sklearn.model_selection import train_test_split

    labels = frame[strat[0]].map(strat[1]) if strat else None
    ok = labels is not None and labels.value_counts().min() >= 2 and n >= labels.nunique()
    part, _ = train_test_split(frame, train_size=n, random_state=seed, stratify=labels if ok else None)
    out = part.reset_index(drop=True)
    out.attrs.update(frame.attrs)
    return out


def _duplicates(splits: Splits, key: str, label: str | None, policy: str) -> None:
    for name, frame in splits.items():
        keys = frame[key].map(_key)
        dup = keys.duplicated(keep="first")
        n = int(dup.sum())
        if not n:
            continue
        rows = [int(i) for i in np.flatnonzero(dup.to_numpy())]
        conflicts = 0
        if label and _hashable(frame[label]):
            per_key = frame.assign(_k=keys).groupby("_k")[label].nunique()
            conflicts = int((per_key > 1).sum())
        msg = (f"{name} split: {n} exact duplicate text{'s' if n > 1 else ''} ({where(frame, rows, 3)})"
               + (f", {conflicts} of them with conflicting labels" if conflicts else ""))
        if policy == "error":
            raise DataError(msg + ". Remove the duplicates, or set data.duplicates: warn (keep) or drop "
                            "(keep the first copy).",
                            [{"kind": "duplicates", "split": name, "rows": rows[:100], "count": n,
                              "conflicting_labels": conflicts}])
        if policy == "drop":
            kept = frame[~dup.to_numpy()].reset_index(drop=True)
            kept.attrs.update(frame.attrs)
            setattr(splits, name, kept)
            splits.report["dropped"][f"{name}_duplicates"] = n
            splits.report["warnings"].append(msg + "; dropped (data.duplicates: drop)")
        else:
            splits.report["warnings"].append(msg + "; kept (data.duplicates: warn)")


def _overlap(splits: Splits, key: str, policy: str) -> None:
    """Evaluation texts that also occur in train inflate scores; test texts that also occur in
    validation take part in choosing the best checkpoint. Either way the evaluation split loses them
    (``drop``), keeps them (``warn``) or the run stops (``error``)."""
    train_keys = set(splits.train[key].map(_key))
    for name, seen, where_seen in (("validation", train_keys, "train"), ("test", train_keys, "train"),
                                   ("test", None, "validation")):
        frame = getattr(splits, name)
        if seen is None:  # validation as it stands after its own check
            seen = set(splits.validation[key].map(_key)) - train_keys
        hit = frame[key].map(_key).isin(seen).to_numpy()
        n = int(hit.sum())
        if not n:
            continue
        rows = [int(i) for i in np.flatnonzero(hit)]
        msg = (f"{n} {name} text{' also appears' if n == 1 else 's also appear'} in {where_seen} "
               f"({where(frame, rows, 3)})")
        why = "scores on them would be inflated" if where_seen == "train" else \
            "they would help choose the checkpoint the test is meant to judge"
        if policy == "error":
            raise DataError(msg + f": {why}. Remove them from one side, or set "
                            "data.overlap: drop (remove them from the evaluation split) or warn (keep).",
                            [{"kind": "overlap", "split": name, "with": where_seen, "rows": rows[:100], "count": n}])
        if policy == "drop" and n == len(frame):
            given = splits.report["sources"].get(name)
            earlier = splits.report["dropped"].get(f"{name}_overlap", 0) if where_seen != "train" else 0
            raise DataError(msg + f": dropping them (data.overlap: drop) leaves no {name} split"
                            + (f" (its other {earlier} were dropped as they also appear in train)" if earlier else "")
                            + ". "
                            + (f"Give a data.{name} file with texts that are not in {where_seen}, leave data.{name} "
                               f"out to split one off train, or set data.overlap: warn to keep them."
                               if given else "Give more data, or set data.overlap: warn to keep them."),
                            [{"kind": "overlap", "split": name, "with": where_seen, "rows": rows[:100], "count": n,
                              "emptied": True}])
        if policy == "drop":
            kept = frame[~hit].reset_index(drop=True)
            kept.attrs.update(frame.attrs)
            setattr(splits, name, kept)
            tag = f"{name}_overlap" if where_seen == "train" else f"{name}_overlap_with_{where_seen}"
            splits.report["dropped"][tag] = n
            splits.report["warnings"].append(msg + f"; dropped from the {name} split (data.overlap: drop)")
        else:
            splits.report["warnings"].append(msg + "; kept (data.overlap: warn)")
