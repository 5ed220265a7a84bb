"""Token classification (NER): one tag per word, entity-level scores.

Input: CoNLL-style files (``word TAG`` per line, a blank line between sentences; BIO/IOB2,
IOB1 or BIOES tags; columns are split on tabs where a line has them, so words may hold spaces,
else on whitespace), JSONL/JSON/parquet with ``tokens``/``tags`` lists (tag names, or integer ids
named by ``task_options.tags``), CSV with space-separated words and tags, or a DataFrame. Words
are split into sub-tokens; a word's label goes to its first sub-token
(``task_options.label_subtokens: first``) or to all of them (``all``, B- becomes I- after the
first). Scores are computed per word with seqeval (entity-level precision/recall/F1 per type).
Words cut off by ``train.max_length`` count as predicted "O", so truncation costs recall visibly.

Baseline: the base encoder, frozen, with a linear token head (logistic regression on its hidden
state at each word's first sub-token) trained on the training words.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import metrics as wb_metrics
from ..data import DataError, Splits, load_frame, load_splits, where
from ..data.loaders import CONLL_SUFFIXES, TEXT_SUFFIXES, read_conll
from ..errors import ConfigError, ModelError
from ..models import load_model
from . import Task, register
from ._common import encoder_batches, predict_in_order, task_options

OPTIONS = {"label_subtokens": "first", "scheme": "auto", "invalid_sequences": "warn", "tags": None}
PREFIXES = ("B", "I", "E", "S")
TAG = re.compile(r"^(?:O|([BIES])-(.+))$")
PROBE_MAX_WORDS = 20000
EXAMPLES = 8
# punctuation predict() splits off the edges of a whitespace-separated word (see split_words)
OPENERS = set('([{"“«')
CLOSERS = set(')]}"”»,;:')
FINAL = set(".!?")
# words a "." follows without ending a sentence, before a capitalised word ("Mr. Smith", "Acme Corp. Bob");
# a sentence splitter (punkt, pysbd) would need a model download or a dependency for these few rules
ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "mt", "ft", "jr", "sr", "gen", "gov", "sen", "rep", "col",
                 "lt", "sgt", "capt", "rev", "hon", "inc", "corp", "ltd", "co", "bros", "no", "vs", "etc", "jan",
                 "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}


def _as_list(value: Any) -> Any:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, (tuple, np.ndarray)):
        return list(value)
    return value


def _conll_files(ref: Any) -> list[Path] | None:
    """CoNLL files behind ``ref``: a .conll/.bio/.iob/.txt file or a flat folder of them; else None."""
    if not isinstance(ref, (str, Path)):
        return None
    p = Path(ref).expanduser()
    ok = CONLL_SUFFIXES + TEXT_SUFFIXES + ("",)
    if p.is_file():
        return [p] if p.suffix.lower() in ok else None
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if not f.name.startswith((".", "_")))
        if files and all(f.is_file() and f.suffix.lower() in ok for f in files):
            return files
    return None


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _ends_sentence(text: str, chunks: list[tuple[int, int]], n: int, lead: int, last: int, mark: str) -> bool:
    if n == len(chunks) - 1:
        return True
    start, end = chunks[n + 1]
    head = text[start:end].lstrip("".join(OPENERS))
    if not head or not (head[0].isupper() or head[0].isdigit()):
        return False
    word = text[lead:last]
    return mark != "." or (len(word) > 1 and word.lower() not in ABBREVIATIONS)


def invalid_sequences_head(split: str, n: int) -> str:
    """The start of the warning about a split's sentences whose tags break the scheme (reports find
    the warning by it)."""
    return (f"{split} split: 1 sentence has a tag sequence that is invalid" if n == 1 else
            f"{split} split: {n} sentences have tag sequences that are invalid")


def split_words(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the words of ``text``, split as CoNLL-style data is.

    Words are separated by whitespace, as in the training data; punctuation inside a word stays, since
    the model knows "U.S.", "AT&T", "J.P.Morgan" or "Washington,D.C." as one word each. Split off a
    word's edges are: opening quotes and brackets before it, closing ones and , ; : after it, and, on
    a sentence's last word, a final ! ? or . (the . only where the word has no other, so "U.S." stays).
    A sentence ends at the text's end, and before a word that starts with a capital or a digit unless
    the . follows an initial ("J. Smith") or a common abbreviation ("Mr. Smith").
    """
    chunks = [m.span() for m in re.finditer(r"\S+", text)]
    spans = []
    for n, (start, end) in enumerate(chunks):
        letters = [i for i in range(start, end) if text[i].isalnum() or text[i] == "_"]
        if not letters:  # punctuation alone ("...", "&", "--") is one word
            spans.append((start, end))
            continue
        first, last = letters[0], letters[-1] + 1
        lead = start
        while lead < first and text[lead] in OPENERS:
            lead += 1
        trail = end
        while trail > last:
            c = text[trail - 1]
            # a final "." is split off only where the word holds no other (so "U.S." stays whole), and
            # only at the end of the text: mid-text it is as likely an abbreviation's ("Mr.", "Corp.")
            final = c in FINAL and not (c == "." and "." in text[lead:last]) and _ends_sentence(text, chunks, n,
                                                                                              lead, last, c)
            if c not in CLOSERS and not final:
                break
            trail -= 1
        spans += _runs(text, start, lead) + [(lead, trail)] + _runs(text, trail, end)
    return spans


def _runs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the runs of one repeated character in text[start:end] ("..." is one word, '")' two)."""
    return [(start + m.start(), start + m.end()) for m in re.finditer(r"(.)\1*", text[start:end])]


def entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word) of each entity, by seqeval's chunking rules."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [(t, int(s), int(e)) for t, s, e in get_entities(list(tags))]


def invalid_transitions(tags: list[str], scheme: str) -> list[int]:
    """Positions where a tag cannot follow the previous one under ``scheme`` (IOB2 or BIOES)."""
    bad = []
    open_type: str | None = None
    for i, tag in enumerate(tags):
        prefix, kind = (tag.split("-", 1) + [""])[:2] if tag != "O" else ("O", "")
        if scheme == "IOB2":
            if prefix == "I" and open_type != kind:
                bad.append(i)
            open_type = kind if prefix in ("B", "I") else None
            continue
        if prefix in ("B", "S", "O") and open_type is not None:  # the open entity never got its E- tag
            bad.append(i)
        elif prefix in ("I", "E") and open_type != kind:
            bad.append(i)
        open_type = kind if prefix in ("B", "I") else None
    if scheme == "BIOES" and open_type is not None:
        bad.append(len(tags) - 1)
    return bad


@register("token-classification")
class TokenClassification(Task):
    main_metric = "f1"
    greater_is_better = True
    auto_model_name = "AutoModelForTokenClassification"
    peft_task_type = "TOKEN_CLS"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self.options = task_options(cfg, "token-classification", OPTIONS,
                                    {"label_subtokens": ("first", "all"), "scheme": ("auto", "IOB1", "IOB2", "BIOES"),
                                     "invalid_sequences": ("warn", "error")})
        allowed = self.options["tags"]
        if allowed is not None and not (isinstance(allowed, list) and all(isinstance(t, str) for t in allowed)):
            raise ConfigError("task_options.tags: expected a list of tags such as [O, B-PER, I-PER] (the tags "
                              "allowed, and for integer tag ids the name of each id in order: id i is tags[i]).")
        self.tags: list[str] = []
        self.tag2id: dict[str, int] = {}
        self.scheme = self.options["scheme"]
        self.first_positions: dict[str, list[list[int]]] = {}

    # ---- data --------------------------------------------------------------------------------
    def _load(self, ref: Any, field: str) -> pd.DataFrame:
        d = self.cfg.data
        files = _conll_files(ref)
        if files is None:
            frame = load_frame(ref, field)
        else:
            frames = [read_conll(f) for f in files]
            if len(files) > 1:
                for f, part in zip(files, frames):
                    part["location"] = f.name + " " + part["location"]
            frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            frame.attrs.update(frames[0].attrs, source=str(ref))
            frame = frame.rename(columns={"tokens": d.tokens_column, "tags": d.tags_column})
        for col in (d.tokens_column, d.tags_column):
            if col in frame.columns:
                frame[col] = frame[col].map(_as_list)
        names = self.options["tags"]
        if names and d.tags_column in frame.columns:
            frame[d.tags_column] = self._named(frame, names)
        return frame

    def _named(self, frame: pd.DataFrame, names: list[str]) -> pd.Series:
        """Integer tag ids (Hugging Face ``ner_tags``) as their names: id i is ``task_options.tags[i]``."""
        col = self.cfg.data.tags_column
        out, bad = [], []
        for i, row in enumerate(frame[col]):
            if isinstance(row, list) and row and all(_is_id(x) for x in row):
                if not all(0 <= x < len(names) for x in row):
                    bad.append(i)
                row = [names[x] if 0 <= x < len(names) else x for x in row]
            out.append(row)
        if bad:
            ids = sorted({int(x) for i in bad for x in frame[col].iloc[i] if not 0 <= x < len(names)})
            raise DataError(f"{where(frame, bad)}: tag ids without a name in column '{col}': "
                            f"{', '.join(map(str, ids[:10]))}; task_options.tags names {len(names)} tags (ids 0 to "
                            f"{len(names) - 1}). List every tag, in id order.",
                            [{"kind": "unknown_tags", "column": col, "rows": bad[:100]}])
        return pd.Series(out, index=frame.index, dtype=object)

    def _check(self, split: str, frame: pd.DataFrame) -> None:
        d = self.cfg.data
        words, tags = frame[d.tokens_column], frame[d.tags_column]
        for col, series in ((d.tokens_column, words), (d.tags_column, tags)):
            bad = [i for i, v in enumerate(series) if not isinstance(v, list) or not all(isinstance(x, str) for x in v)]
            if bad and col == d.tags_column and all(isinstance(series.iloc[i], list) and
                                                    all(_is_id(x) for x in series.iloc[i]) for i in bad):
                raise DataError(f"{where(frame, bad)}: column '{col}' holds integer tag ids (e.g. "
                                f"{series.iloc[bad[0]]!r}), as Hugging Face's ner_tags do. Set task_options.tags to "
                                "the tag names in id order (id i is tags[i]), e.g. [O, B-PER, I-PER, B-LOC, I-LOC].",
                                [{"kind": "tag_ids", "column": col, "rows": bad[:100]}])
            if bad:
                raise DataError(f"{where(frame, bad)}: column '{col}' must hold a list of strings per row (or one "
                                f"space-separated string), got e.g. {series.iloc[bad[0]]!r}.",
                                [{"kind": "bad_type", "column": col, "rows": bad[:100]}])
        empty = [i for i, v in enumerate(words) if len(v) == 0]
        if empty:
            raise DataError(f"{where(frame, empty)}: empty sentence (no words in '{d.tokens_column}'). Remove these "
                            "rows; nothing was dropped.", [{"kind": "empty_text", "column": d.tokens_column,
                                                           "rows": empty[:100]}])
        mismatch = [i for i, (w, t) in enumerate(zip(words, tags)) if len(w) != len(t)]
        if mismatch:
            i = mismatch[0]
            raise DataError(f"{where(frame, mismatch)}: {len(words.iloc[i])} words but {len(tags.iloc[i])} tags. "
                            f"Each word needs exactly one tag in '{d.tags_column}'.",
                            [{"kind": "length_mismatch", "rows": mismatch[:100]}])
        allowed = set(self.options["tags"] or [])
        unknown: dict[str, list[int]] = {}
        for i, row in enumerate(tags):
            for tag in row:
                if (allowed and tag not in allowed) or (not allowed and not TAG.match(tag)):
                    unknown.setdefault(tag, []).append(i)
        if unknown:
            rows = sorted({r for rs in unknown.values() for r in rs})
            names = ", ".join(repr(t) for t in sorted(unknown)[:10])
            rule = (f"task_options.tags allows only {', '.join(sorted(allowed))}" if allowed else
                    "tags must be O or B-, I-, E-, S- followed by an entity type (BIO/IOB2, IOB1 or BIOES), "
                    "e.g. B-PER, I-PER")
            if frame.attrs.get("format") == "conll":
                # a sentence's words are consecutive lines from its first: name the lines of the bad tags
                lines = [int(str(frame["location"].iloc[r]).removeprefix("line ")) + j
                         for r in rows for j, tag in enumerate(tags.iloc[r]) if tag in unknown]
                shown = ", ".join(str(n) for n in lines[:5]) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
                raise DataError(f"{frame.attrs.get('source', 'data')}, line{'s' if len(lines) > 1 else ''} {shown}: "
                                f"unknown tags {names}; {rule}. Fix these tags (the last column of each line).",
                                [{"kind": "unknown_tags", "tags": sorted(unknown), "rows": rows[:100],
                                  "lines": lines[:100]}])
            raise DataError(f"{where(frame, rows, 5)}: unknown tags {names} in column '{d.tags_column}'; {rule}. "
                            "Fix these tags or set data.tags_column to the right column.",
                            [{"kind": "unknown_tags", "column": d.tags_column, "tags": sorted(unknown),
                              "rows": rows[:100]}])

    def load_data(self) -> Splits:
        d = self.cfg.data
        splits = load_splits(self.cfg, key_column=d.tokens_column, label_column=d.tags_column, check=self._check,
                             columns={"data.tokens_column": d.tokens_column, "data.tags_column": d.tags_column},
                             loader=self._load)
        train_tags = {t for row in splits.train[d.tags_column] for t in row}
        if train_tags <= {"O"}:
            raise DataError(f"{splits.train.attrs.get('source')}: the training sentences hold no entity (every tag "
                            f"in '{d.tags_column}' is O); there is nothing to learn. Check data.tags_column.",
                            [{"kind": "single_class", "column": d.tags_column}])
        if self.scheme == "auto":
            self.scheme = "BIOES" if any(t[:2] in ("E-", "S-") for t in train_tags) else "IOB2"
        for name, frame in (("validation", splits.validation), ("test", splits.test)):
            unseen = sorted({t for row in frame[d.tags_column] for t in row} - train_tags)
            if unseen:
                rows = [i for i, row in enumerate(frame[d.tags_column]) if set(row) & set(unseen)]
                raise DataError(f"{name} split: tags {', '.join(map(repr, unseen))} never occur in train "
                                f"({where(frame, rows, 5)}); the model cannot learn them. Add training sentences "
                                "with them, or fix the tags.",
                                [{"kind": "unseen_tags", "split": name, "tags": unseen, "rows": rows[:100]}])
        if self.options["label_subtokens"] == "all" and self.scheme != "BIOES":
            # later sub-tokens of a B-X word are trained as I-X, even where no word carries I-X
            train_tags |= {"I-" + t[2:] for t in train_tags if t.startswith("B-")}
        self.tags = ["O"] + sorted(train_tags - {"O"}, key=lambda t: (t.split("-", 1)[-1], t))
        self.tag2id = {t: i for i, t in enumerate(self.tags)}
        self._report_sequences(splits)
        counts: dict[str, int] = {}
        for row in splits.train[d.tags_column]:
            for kind, _, _ in entities(row):
                counts[kind] = counts.get(kind, 0) + 1
        splits.report.update(scheme=self.scheme, tags=self.tags, labels=dict(sorted(counts.items())))
        return splits

    def _report_sequences(self, splits: Splits) -> None:
        """Count sentences whose tag sequence breaks the scheme (e.g. I-PER after O in IOB2)."""
        if self.scheme == "IOB1":
            return
        col = self.cfg.data.tags_column
        found = {}
        hint = None
        for name, frame in splits.items():
            rows = [i for i, row in enumerate(frame[col]) if invalid_transitions(row, self.scheme)]
            if not rows:
                continue
            first = frame[col].iloc[rows[0]]
            pos = invalid_transitions(first, self.scheme)[0]
            context = " ".join(first[max(0, pos - 1):pos + 1])
            hint = hint or self._scheme_hint(splits)
            msg = (f"{invalid_sequences_head(name, len(rows))} in {self.scheme} "
                   f"({where(frame, rows, 3)}; e.g. '{context}'). seqeval still reads them"
                   f"{' (an I- tag opens an entity)' if self.scheme == 'IOB2' else ''}; {hint}.")
            found[name] = {"sentences": len(rows), "rows": rows[:100]}
            if self.options["invalid_sequences"] == "error":
                raise DataError(msg, [{"kind": "invalid_tag_sequence", "split": name, "rows": rows[:100]}])
            splits.report["warnings"].append(msg)
        if found:
            splits.report["invalid_tag_sequences"] = found

    def _scheme_hint(self, splits: Splits) -> str:
        """What to do about invalid sequences: the scheme(s) every sentence does fit, if any."""
        rows = [row for _, frame in splits.items() for row in frame[self.cfg.data.tags_column]]
        fits = [s for s in ("IOB2", "BIOES") if s != self.scheme and not any(invalid_transitions(r, s) for r in rows)]
        if fits:
            auto = "BIOES" if any(t[:2] in ("E-", "S-") for r in rows for t in r) else "IOB2"
            names = " or ".join(s + (" (or auto)" if s == auto else "") for s in fits)
            return f"every sentence fits {' and '.join(fits)}: set task_options.scheme: {names}"
        if not any(t[:2] in ("E-", "S-") for r in rows for t in r):
            # in IOB1 an I- tag opens an entity and B- only splits two adjacent ones of one type
            return "fix the tags, or set task_options.scheme: IOB1 if the data is IOB1"
        return "fix the tags"

    def tokenize(self, splits: Splits, tokenizer: Any) -> dict:
        import datasets

        if not tokenizer.is_fast:
            raise ModelError(f"model: token classification needs a fast tokenizer (tokenizer.json) for '{self.cfg.model}' "
                             "to map sub-tokens back to words.")
        d = self.cfg.data
        max_length = self.cfg.train.max_length
        special = set(tokenizer.all_special_ids)
        out = {}
        for name, frame in splits.items():
            words = frame[d.tokens_column].tolist()
            tags = frame[d.tags_column].tolist()
            enc = tokenizer(words, is_split_into_words=True, truncation=False, add_special_tokens=True, verbose=False)
            ids_out, labels_out, firsts = [], [], []
            truncated = cut_words = tokens_before = tokens_kept = 0
            lengths = []
            for i, ids in enumerate(enc["input_ids"]):
                word_ids = enc.word_ids(i)
                tokens_before += len(ids)
                lengths.append(len(ids))
                if len(ids) > max_length:
                    truncated += 1
                    keep_last = ids[-1] in special
                    ids = ids[: max_length - 1] + [ids[-1]] if keep_last else ids[:max_length]
                    word_ids = word_ids[: max_length - 1] + [None] if keep_last else word_ids[:max_length]
                tokens_kept += len(ids)
                labels, first, previous = [], [], None
                for pos, w in enumerate(word_ids):
                    if w is None:
                        labels.append(-100)
                    elif w != previous:
                        labels.append(self.tag2id[tags[i][w]])
                        first.append(pos)
                    elif name == "train" and self.options["label_subtokens"] == "all":
                        labels.append(self.tag2id[self._continuation(tags[i][w])])
                    else:
                        labels.append(-100)
                    previous = w
                cut_words += len(words[i]) - len(first)
                ids_out.append(ids)
                labels_out.append(labels)
                firsts.append(first)
            self.first_positions[name] = firsts
            arr = np.asarray(lengths)
            self.length_report[name] = {
                "examples": len(words), "truncated": truncated, "truncated_fraction": truncated / max(len(words), 1),
                "truncated_words": int(cut_words), "tokens_before": tokens_before, "tokens_kept": tokens_kept,
                "length_mean": float(arr.mean()), "length_p50": float(np.percentile(arr, 50)),
                "length_p90": float(np.percentile(arr, 90)), "length_max": int(arr.max()), "max_length": max_length}
            out[name] = datasets.Dataset.from_dict({"input_ids": ids_out,
                                                    "attention_mask": [[1] * len(x) for x in ids_out],
                                                    "labels": labels_out, "length": [len(x) for x in ids_out]})
        return out

    def _continuation(self, tag: str) -> str:
        """The label of a word's later sub-tokens with label_subtokens: all (B-X continues as I-X)."""
        if tag.startswith("B-") and "I-" + tag[2:] in self.tag2id:
            return "I-" + tag[2:]
        return tag

    # ---- model -------------------------------------------------------------------------------
    def load_model(self):
        from transformers import AutoModelForTokenClassification

        return load_model(self.cfg, AutoModelForTokenClassification, num_labels=len(self.tags),
                          id2label=dict(enumerate(self.tags)), label2id=dict(self.tag2id))

    def collator(self, tokenizer: Any):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=-100,
                                                  pad_to_multiple_of=self.pad_to_multiple_of)

    # ---- metrics -----------------------------------------------------------------------------
    def preprocess_logits_for_metrics(self, logits, labels):
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits.argmax(dim=-1)

    def compute_metrics(self, eval_pred) -> dict:
        """Validation scores over the words that fit in max_length (the test adds the cut ones as misses)."""
        preds, labels = np.asarray(eval_pred.predictions), np.asarray(eval_pred.label_ids)
        y_pred, y_true = [], []
        for p, lab in zip(preds, labels):
            keep = lab != -100
            y_pred.append([self.tags[int(x)] for x in p[keep]])
            y_true.append([self.tags[int(x)] for x in lab[keep]])
        return wb_metrics.entity_metrics(y_pred, y_true)[0]

    def _word_tags(self, token_preds: list, split: str, n_words: list[int]) -> list[list[str]]:
        """Per-word predictions from first-sub-token predictions; words cut off count as "O"."""
        out = []
        for row, first, n in zip(token_preds, self.first_positions[split], n_words):
            tags = [self.tags[int(row[p])] for p in first]
            out.append(tags + ["O"] * (n - len(tags)))
        return out

    def baseline(self, splits: Splits, tokenizer: Any, datasets: dict, device: str, precision: str) -> dict:
        from sklearn.linear_model import LogisticRegression
        from transformers import AutoModel

        encoder = load_model(self.cfg, AutoModel)
        rng = np.random.default_rng(self.cfg.train.seed)
        train_ids = datasets["train"]["input_ids"]
        x_train, y_train = self._first_token_states(encoder, tokenizer, train_ids, "train", device, precision,
                                                    datasets["train"]["labels"])
        if len(y_train) > PROBE_MAX_WORDS:
            pick = np.sort(rng.choice(len(y_train), PROBE_MAX_WORDS, replace=False))
            x_train, y_train = x_train[pick], y_train[pick]
        test_states = self._first_token_states(encoder, tokenizer, datasets["test"]["input_ids"], "test", device,
                                               precision)
        del encoder
        probe = LogisticRegression(max_iter=1000, C=1.0)
        probe.fit(x_train, y_train)
        preds = []
        for states in test_states:
            preds.append(probe.predict(states) if len(states) else np.zeros(0, dtype=np.int64))
        d = self.cfg.data
        n_words = [len(w) for w in splits.test[d.tokens_column]]
        word_preds = [[self.tags[int(x)] for x in row] for row in preds]
        word_preds = [row + ["O"] * (n - len(row)) for row, n in zip(word_preds, n_words)]
        gold = splits.test[d.tags_column].tolist()
        overall, per_type = wb_metrics.entity_metrics(word_preds, gold)
        return {"baseline": overall, "baselines": {"linear_probe": overall},
                "baseline_method": (f"a linear token head (logistic regression) on the frozen base encoder's hidden "
                                    f"states, trained on {len(y_train)} training words"),
                "_per_type": per_type, "_word_preds": word_preds}

    def _first_token_states(self, encoder: Any, tokenizer: Any, ids: list, split: str, device: str, precision: str,
                            labels: list | None = None):
        """Hidden states at each word's first sub-token: stacked with labels (train) or per sentence (test)."""
        firsts = self.first_positions[split]
        per_row: list[np.ndarray] = [np.zeros((0, encoder.config.hidden_size), dtype=np.float32)] * len(ids)
        for batch, hidden, _ in encoder_batches(encoder, tokenizer, ids, device, precision):
            states = hidden.float().cpu().numpy()
            for row, i in enumerate(batch):
                per_row[i] = states[row, firsts[i]]
        if labels is None:
            return per_row
        y = np.concatenate([np.asarray(labels[i])[firsts[i]] for i in range(len(ids))])
        return np.concatenate(per_row), y

    def evaluate(self, trainer: Any, datasets: dict, splits: Splits, baseline: dict) -> dict:
        out = predict_in_order(trainer, datasets["test"])
        d = self.cfg.data
        words = splits.test[d.tokens_column].tolist()
        gold = splits.test[d.tags_column].tolist()
        preds = self._word_tags(list(out.predictions), "test", [len(w) for w in words])
        metrics, per_type = wb_metrics.entity_metrics(preds, gold)
        per_class = {"finetuned": per_type}
        base_preds = baseline.get("_word_preds")
        if base_preds is not None:
            per_class["baseline"] = baseline["_per_type"]
        examples = []
        for i, (w, g, p) in enumerate(zip(words, gold, preds)):
            if base_preds is None or p == base_preds[i]:
                continue
            spans = {name: [f"{kind}: {' '.join(w[s:e + 1])}" for kind, s, e in entities(tags)]
                     for name, tags in (("label", g), ("finetuned", p), ("baseline", base_preds[i]))}
            examples.append({"text": " ".join(w)[:300], **spans})
            if len(examples) >= EXAMPLES:
                break
        return {"metrics": metrics, "per_class": per_class, "examples": examples, "scheme": self.scheme,
                "truncated_words": self.length_report.get("test", {}).get("truncated_words", 0)}

    def model_info(self) -> dict:
        return {"tags": self.tags, "scheme": self.scheme, "label_subtokens": self.options["label_subtokens"]}

    # ---- using the model ---------------------------------------------------------------------
    @classmethod
    def predict(cls, model, tokenizer, inputs: list, info: dict, max_length: int = 256, **kw) -> list[list[dict]]:
        """Predictions for each input, which is a text or a list of words.

        A text gives its entities, ``[{entity, text, start, end, score}]`` with character offsets; it is
        split into words by ``split_words``. A list of words (already split, as in the training data)
        gives one ``{word, tag, score}`` per word, in order.
        """
        import torch

        tags = info.get("tags") or [model.config.id2label[i] for i in range(model.config.num_labels)]
        model.eval()
        results = []
        with torch.inference_mode():
            for n, item in enumerate(inputs):
                if isinstance(item, str):
                    spans = split_words(item)
                    words = [item[s:e] for s, e in spans]
                elif isinstance(item, (list, tuple)) and all(isinstance(w, str) for w in item):
                    words = list(item)
                else:
                    raise TypeError(f"predict: input {n} is {type(item).__name__} {str(item)[:60]!r}; expected a "
                                    "text or a list of words (strings).")
                word_tags, word_scores = cls._tag_words(model, tokenizer, words, tags, max_length)
                if not isinstance(item, str):
                    results.append([{"word": w, "tag": t, "score": p}
                                    for w, t, p in zip(words, word_tags, word_scores)])
                    continue
                results.append([{"entity": kind, "text": item[spans[s][0]:spans[e][1]], "start": spans[s][0],
                                 "end": spans[e][1], "score": float(np.mean(word_scores[s:e + 1]))}
                                for kind, s, e in entities(word_tags)])
        return results

    @staticmethod
    def _tag_words(model, tokenizer, words: list[str], tags: list[str], max_length: int):
        """Each word's tag and its probability, from the word's first sub-token."""
        word_tags, word_scores = ["O"] * len(words), [1.0] * len(words)
        if not words:
            return word_tags, word_scores
        # a text longer than max_length tokens goes through in consecutive pieces of whole words
        # (one pass would cut it, and every word past the cut would come back untagged)
        for first, last in _word_windows(tokenizer, words, max_length):
            enc = tokenizer(words[first:last], is_split_into_words=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            probs = model(**enc.to(model.device)).logits[0].float().softmax(-1).cpu().numpy()
            seen: set = set()
            for pos, w in enumerate(enc.word_ids(0)):
                if w is None or w in seen:
                    continue
                seen.add(w)
                k = int(probs[pos].argmax())
                word_tags[first + w], word_scores[first + w] = tags[k], float(probs[pos, k])
        return word_tags, word_scores


def _word_windows(tokenizer: Any, words: list[str], max_length: int) -> list[tuple[int, int]]:
    """[first, last) word ranges whose tokens, with the special tokens, fit in ``max_length``."""
    room = max(1, max_length - tokenizer.num_special_tokens_to_add(pair=False))
    counts = [max(1, len(ids)) for ids in tokenizer(words, add_special_tokens=False)["input_ids"]]
    windows, first, used = [], 0, 0
    for i, n in enumerate(counts):
        if used + n > room and i > first:
            windows.append((first, i))
            first, used = i, 0
        used += n
    windows.append((first, len(words)))
    return windows
