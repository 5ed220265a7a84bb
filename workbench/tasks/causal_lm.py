"""Causal-LM fine-tuning of decoder models (GPT-2, Llama, Qwen families) on domain text.

Two data shapes: plain text (a text column, .txt files or a folder), packed into blocks of
``train.max_length`` tokens with the loss on every token; or prompt/response pairs (columns
``data.prompt_column`` / ``data.response_column``, e.g. JSONL) with the loss on the response
only. The prompt is followed directly by the response, so put any separator (a newline, a space,
"Answer:") at the end of the prompt. Pairs are not packed unless ``task_options.packing: true``
(packed pairs can attend across examples).

Baseline: the base model's perplexity on the same test tokens; ``eval.json`` also shows a few
test prompts where the base and the fine-tuned model continue differently.
"""

from __future__ import annotations

import codecs
import functools
import json
import re
import warnings
from typing import Any

import pandas as pd

from ..data import _COLUMN_SYNONYMS, DataError, Splits, check_texts, load_splits, require_columns
from ..errors import ModelError
from ..models import load_model, positions_limit
from . import Task, register
from ._common import BaselineStopped, task_options
from ._lm import (SAMPLE_BY, base_trainer, length_report, pack, perplexity_metrics, predict_split, text_loader,
                  token_losses, workdir)

OPTIONS = {"format": "auto", "packing": None, "sample_by": "line", "example_prompts": 4, "max_new_tokens": 24}
FORMATS = ("auto", "text", "prompt-response")


def _pair_column(frame: pd.DataFrame, role: str) -> str | None:
    """The field of ``frame`` that is often what a prompt (``role`` "prompt") or a response is called."""
    lower = {str(c).lower(): str(c) for c in frame.columns}
    return next((lower[s] for s in _COLUMN_SYNONYMS[role] if s in lower), None)


@register("causal-lm")
class CausalLM(Task):
    main_metric = "perplexity"
    greater_is_better = False
    auto_model_name = "AutoModelForCausalLM"
    peft_task_type = "CAUSAL_LM"
    # the loss over the labelled positions (engine/sparse.py): with prompt/response data only the
    # response positions are projected onto the vocabulary; packed text, labelled almost everywhere,
    # gains the fused cross-entropy
    sparse_prediction = "causal"

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self.options = task_options(cfg, "causal-lm", OPTIONS, {"format": FORMATS, "sample_by": SAMPLE_BY,
                                                                "packing": (None, True, False)})
        self.format = self.options["format"]
        self.skipped: dict[str, int] = {}

    @property
    def packing(self) -> bool:
        p = self.options["packing"]
        return self.format == "text" if p is None else bool(p)

    # ---- data --------------------------------------------------------------------------------
    def _detect_format(self, train: pd.DataFrame) -> str:
        d = self.cfg.data
        has_prompt, has_response = d.prompt_column in train.columns, d.response_column in train.columns
        fmt = self.format
        if fmt == "auto":
            fmt = "prompt-response" if has_prompt or has_response else "text"
        if not (has_prompt or has_response) and (fmt == "prompt-response" or d.text_column not in train.columns):
            self._suggest_pair_columns(train)
        if fmt == "prompt-response" and not (has_prompt and has_response):
            there, missing = ((d.prompt_column, ("data.response_column", d.response_column)) if has_prompt else
                              (d.response_column, ("data.prompt_column", d.prompt_column)))
            if not (has_prompt or has_response):
                require_columns(train, {"data.prompt_column": d.prompt_column})
            guess = _pair_column(train, "response" if has_prompt else "prompt")
            hint = f" (the '{guess}' field?)" if guess else ""
            raise DataError(
                f"{train.attrs.get('source', 'data')}: has a '{there}' field but no '{missing[1]}' field "
                f"({missing[0]}); prompt/response training needs both in every row. Available fields: "
                f"{', '.join(map(str, train.columns))}. Set {missing[0]} to the right field{hint}, or give plain "
                f"text in a '{d.text_column}' field with task_options.format: text.",
                [{"kind": "missing_column", "file": train.attrs.get("source"), "column": missing[1],
                  "available": [str(c) for c in train.columns], "suggestion": guess}])
        return fmt

    def _suggest_pair_columns(self, train: pd.DataFrame) -> None:
        """Data with neither the text column nor the prompt/response columns, whose fields are what a
        prompt and a response are often called (question/answer, instruction/output): the error names
        both settings, where the plain-text check would only say that 'text' is missing."""
        d = self.cfg.data
        prompt, response = _pair_column(train, "prompt"), _pair_column(train, "response")
        if not (prompt and response):
            return
        available = [str(c) for c in train.columns]
        raise DataError(
            f"{train.attrs.get('source', 'data')}: no column '{d.text_column}' (data.text_column) and no "
            f"'{d.prompt_column}'/'{d.response_column}' pair. Available columns: {', '.join(available)}. "
            f"'{prompt}' and '{response}' look like a prompt and its response: set data.prompt_column: {prompt} "
            f"and data.response_column: {response} (on the command line: data.prompt_column={prompt} "
            f"data.response_column={response}).",
            [{"kind": "missing_column", "file": train.attrs.get("source"), "column": d.text_column,
              "available": available,
              "suggestion": {"data.prompt_column": prompt, "data.response_column": response}}])

    def load_data(self) -> Splits:
        d = self.cfg.data
        read = text_loader(d.text_column, self.options["sample_by"], self.skipped)
        train = read(d.train, "data.train")
        self.format = self._detect_format(train)
        if self.format == "prompt-response":
            columns = {"data.prompt_column": d.prompt_column, "data.response_column": d.response_column}
            key = d.prompt_column
        else:
            columns = {"data.text_column": d.text_column}
            key = d.text_column

        def check(name: str, frame: pd.DataFrame) -> None:
            for col in columns.values():
                check_texts(frame, col, f"data.{name}")

        splits = load_splits(self.cfg, key_column=key, label_column=None, check=check, columns=columns,
                             loader=lambda ref, field: train if field == "data.train" else read(ref, field))
        splits.report["format"] = self.format
        if self.skipped:
            splits.report["blank_lines_skipped"] = dict(self.skipped)
        return splits

    def tokenize(self, splits: Splits, tokenizer: Any) -> dict:
        import datasets

        if tokenizer.eos_token_id is None:
            raise ModelError(f"model: the tokenizer of '{self.cfg.model}' has no end-of-sequence token; a causal "
                             "LM needs one to mark where texts end.")
        if tokenizer.pad_token is None:  # batches are padded; padded positions never count in the loss
            tokenizer.pad_token = tokenizer.eos_token
        block = self.cfg.train.max_length
        out = {}
        for name, frame in splits.items():
            if self.format == "prompt-response":
                ids, labels, lengths, kept = self._pairs(tokenizer, frame, block)
            else:
                ids, lengths = self._texts(tokenizer, frame[self.cfg.data.text_column].tolist())
                labels = [list(x) for x in ids]
                if not self.packing:
                    ids, labels = [x[:block] for x in ids], [x[:block] for x in labels]
                kept = [len(x) for x in ids] if not self.packing else lengths
            if self.packing:
                packed = pack({"input_ids": ids, "labels": labels}, block)
                ids, labels = packed["input_ids"], packed["labels"]
            self.length_report[name] = length_report(len(frame), lengths, kept, block, self.packing)
            self.length_report[name]["blocks"] = len(ids)
            out[name] = datasets.Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids],
                                                    "labels": labels, "length": [len(x) for x in ids]})
        return out

    @staticmethod
    def _texts(tokenizer: Any, texts: list[str]) -> tuple[list[list[int]], list[int]]:
        eos = tokenizer.eos_token_id
        enc = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        ids = [x + [eos] if not x or x[-1] != eos else x for x in enc]
        return ids, [len(x) for x in ids]

    def _pairs(self, tokenizer: Any, frame: pd.DataFrame, block: int) -> tuple[list, list, list, list]:
        """Prompt tokens (no loss) + response tokens + EOS. A pair longer than ``block`` loses prompt
        tokens from the left first (down to half the block), then response tokens from the right."""
        d = self.cfg.data
        eos = tokenizer.eos_token_id
        prompts = tokenizer(frame[d.prompt_column].tolist(), add_special_tokens=True, verbose=False)["input_ids"]
        responses = tokenizer(frame[d.response_column].tolist(), add_special_tokens=False, verbose=False)["input_ids"]
        ids, labels, lengths, kept = [], [], [], []
        for p, r in zip(prompts, responses):
            r = r + [eos]
            lengths.append(len(p) + len(r))
            if len(p) + len(r) > block:
                r = r[:max(block - len(p), block // 2)]
                p = p[len(p) - (block - len(r)):]
            ids.append(p + r)
            labels.append([-100] * len(p) + r)
            kept.append(len(p) + len(r))
        return ids, labels, lengths, kept

    # ---- model -------------------------------------------------------------------------------
    def load_model(self):
        from transformers import AutoModelForCausalLM

        return load_model(self.cfg, AutoModelForCausalLM)

    def collator(self, tokenizer: Any):
        from transformers import DataCollatorForTokenClassification

        # pads input_ids with the pad token and labels with -100 (on the tokenizer's padding side)
        return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=-100,
                                                  pad_to_multiple_of=self.pad_to_multiple_of)

    # ---- metrics -----------------------------------------------------------------------------
    def preprocess_logits_for_metrics(self, logits, labels, index=None, scores=None):
        return token_losses(logits, labels, causal=True, index=index, scores=scores)

    def compute_metrics(self, eval_pred) -> dict:
        return perplexity_metrics(eval_pred.predictions, eval_pred.label_ids, causal=True)

    def _example_prompts(self, splits: Splits, tokenizer: Any) -> list[dict]:
        n = int(self.options["example_prompts"])
        frame = splits.test.head(n)
        d = self.cfg.data
        max_new = int(self.options["max_new_tokens"])
        if self.format == "prompt-response":
            return [{"prompt": p, "reference": self._shown_reference(tokenizer, r, max_new)}
                    for p, r in zip(frame[d.prompt_column], frame[d.response_column])]
        rows = []
        for text in frame[d.text_column]:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            cut = max(1, min(16, len(ids) // 2))
            # a byte-level tokenizer spreads a character over several tokens: cut between characters so
            # that neither the prompt nor the reference shows half of one
            while cut > 1 and _incomplete_tail(tokenizer, ids[:cut]):
                cut -= 1
            rows.append({"prompt": tokenizer.decode(ids[:cut]),
                         "reference": self._decode(tokenizer, ids[cut:cut + max_new])})
        return rows

    @classmethod
    def _shown_reference(cls, tokenizer: Any, response: str, max_new_tokens: int) -> str:
        """The response as far as the models' continuations go (max_new_tokens), marked where it goes
        on: a 300-word response next to 50 generated tokens compares nothing and fills the report."""
        ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        if len(ids) <= max_new_tokens:
            return response
        return cls._decode(tokenizer, ids[:max_new_tokens]) + " …"

    def _examples(self, model: Any, tokenizer: Any, prompts: list[dict]) -> tuple[list[str], str | None]:
        """The continuations shown in eval.json, or why there are none. They only illustrate the
        metrics: a model whose generate() fails is still scored, and saved after training."""
        max_new = int(self.options["max_new_tokens"])
        try:
            self._note_cut_prompts(model, tokenizer, prompts, max_new)
            return self._shown_continuations(model, tokenizer, [p["prompt"] for p in prompts], max_new), None
        except BaselineStopped:
            raise
        except Exception as e:  # any failure here costs the examples, not the run
            return [], f"no examples: generating them failed ({type(e).__name__}: {e})"

    @classmethod
    def _note_cut_prompts(cls, model: Any, tokenizer: Any, prompts: list[dict], max_new_tokens: int) -> None:
        """Says on each example whose prompt is too long for the model that its continuation follows the
        prompt's last tokens only. Every example gets the note field then (empty where nothing was
        cut), as the report's table takes its columns from the first example."""
        fits = [_Fit.of(model, tokenizer, tokenizer(p["prompt"])["input_ids"], max_new_tokens) for p in prompts]
        notes = [fit.describe(max_new_tokens) for fit in fits]
        if any(notes):
            for p, note in zip(prompts, notes):
                p["note"] = note

    def baseline(self, splits: Splits, tokenizer: Any, datasets: dict, device: str, precision: str) -> dict:
        model = self.load_model()
        with workdir() as tmp:
            trainer = base_trainer(self, model, tokenizer, device, precision, tmp)
            metrics, _ = predict_split(trainer, datasets["test"])
        prompts = self._example_prompts(splits, tokenizer)
        texts, error = self._examples(model, tokenizer, prompts)
        return {"baseline": metrics, "baselines": {"base_model": metrics},
                "baseline_method": "the base model, unchanged, on the same test tokens",
                "_prompts": [] if error else prompts, "_generations": texts, "_examples_error": error}

    def evaluate(self, trainer: Any, datasets: dict, splits: Splits, baseline: dict) -> dict:
        metrics, out = predict_split(trainer, datasets["test"])
        labels = out.label_ids
        result = {"metrics": metrics, "format": self.format, "packing": self.packing,
                  "scored_tokens": int((labels[:, 1:] != -100).sum()) if labels.ndim == 2 else 0}
        prompts = baseline.get("_prompts")
        error = baseline.get("_examples_error")
        if prompts:
            texts, error = self._examples(trainer.model, trainer.processing_class, prompts)
            if not error:
                result["examples"] = [{**p, "finetuned": ft, "baseline": base}
                                      for p, ft, base in zip(prompts, texts, baseline["_generations"]) if ft != base]
        if error:
            result["examples_error"] = error
        return result

    def model_info(self) -> dict:
        return {"format": self.format, "packing": self.packing}

    # ---- using the model ---------------------------------------------------------------------
    @classmethod
    def generate(cls, model, tokenizer, prompts: list[str], info: dict, max_new_tokens: int = 50,
                 **kw) -> list[str]:
        """Continuations of each prompt (greedy by default; pass do_sample=True, temperature=... to sample).

        A prompt too long for the model is continued from its last tokens, with a warning."""
        return [cls._decode(tokenizer, ids)
                for ids in cls._generated_ids(model, tokenizer, prompts, max_new_tokens, **kw)]

    @staticmethod
    def _decode(tokenizer: Any, ids: list[int]) -> str:
        """Generated text as generated: leading spaces, newlines and indentation are part of it (code,
        a response that starts with a space like its reference). Special tokens are left out, and so is
        a character whose last bytes fell past the end (it would show as U+FFFD)."""
        text = tokenizer.decode(ids, skip_special_tokens=True)
        pending = _incomplete_tail(tokenizer, ids)
        if not pending or not text.endswith("\ufffd"):
            return text
        if _is_byte_level(tokenizer):  # lossy UTF-8 decoding: one U+FFFD for the cut sequence
            return text[:-1]
        # byte-fallback tokens are one byte each, and a run of them that is not valid UTF-8 decodes to
        # one U+FFFD per byte, the whole characters before the cut included: decode without the cut bytes
        special = set(tokenizer.all_special_ids)
        return tokenizer.decode([i for i in ids if i not in special][:-pending], skip_special_tokens=True)

    @classmethod
    def _shown_continuations(cls, model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy continuations for the examples of eval.json. Where a model generated only special
        tokens (a barely trained one repeats ``<unk>`` or stops at once), the decoded text is empty;
        the examples say what it generated instead of showing an empty cell."""
        out = []
        for ids in cls._generated_ids(model, tokenizer, prompts, max_new_tokens, warn=False):
            text = cls._decode(tokenizer, ids)
            if not text:
                tokens = tokenizer.convert_ids_to_tokens(ids)
                if not tokens:
                    text = "(nothing generated)"
                else:
                    kinds = list(dict.fromkeys(tokens))
                    text = "(only special tokens: " + ", ".join(
                        f"{t} ×{tokens.count(t)}" if tokens.count(t) > 1 else t for t in kinds[:4]) + \
                        (", …" if len(kinds) > 4 else "") + ")"
            out.append(text)
        return out

    @classmethod
    def _generated_ids(cls, model, tokenizer, prompts: list[str], max_new_tokens: int, warn: bool = True,
                       **kw) -> list[list[int]]:
        import torch

        from ..errors import DataError as _DataError

        kw.pop("max_length", None)
        kw.setdefault("do_sample", False)
        model.eval()
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        outs = []
        with torch.inference_mode():
            for n, prompt in enumerate(prompts, 1):
                # which prompt a message is about, where several are given at once
                head = " ".join(prompt.split())
                shown = head[:40] + "…" if len(head) > 40 else head
                which = f"prompt {n} of {len(prompts)} ({shown!r})" if len(prompts) > 1 else ""
                ids = tokenizer(prompt)["input_ids"]
                if not ids:
                    raise _DataError(f"generate: {which or 'the prompt'} is empty; give at least one word to continue.")
                fit = _Fit.of(model, tokenizer, ids, max_new_tokens)
                note = fit.describe(max_new_tokens)
                if warn and note:
                    warnings.warn(f"generate: {which + ': ' if which else ''}{note}.", stacklevel=4)
                enc = torch.tensor([fit.ids], dtype=torch.long, device=model.device)
                gen = model.generate(input_ids=enc, attention_mask=torch.ones_like(enc),
                                     max_new_tokens=fit.new_tokens, pad_token_id=pad, **kw)
                outs.append(gen[0, enc.shape[1]:].tolist())
        return outs

    @classmethod
    def predict(cls, model, tokenizer, inputs: list, info: dict, **kw) -> list[str]:
        return cls.generate(model, tokenizer, inputs, info, **kw)


# ---- generating within the model's positions -------------------------------------------------------

class _Fit:
    """A prompt's ids and the number of new tokens, cut to the model's positions.

    A prompt too long keeps its last tokens (a leading BOS stays), as training cuts long prompts from
    the left; it keeps at least half the positions, and the continuation is shortened where it would
    not fit beside that."""

    def __init__(self, ids: list[int], left_out: int, new_tokens: int, positions: int | None):
        self.ids, self.left_out, self.new_tokens, self.positions = ids, left_out, new_tokens, positions
        self.length = len(ids) + left_out

    @classmethod
    def of(cls, model: Any, tokenizer: Any, ids: list[int], max_new_tokens: int) -> "_Fit":
        positions = positions_limit(getattr(model, "config", None), tokenizer)
        n = len(ids)
        if positions is None or n + max_new_tokens <= positions:
            return cls(list(ids), 0, max_new_tokens, positions)
        keep = max(1, min(n, max(positions - max_new_tokens, positions // 2)))
        head = 1 if keep > 1 and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id else 0
        kept = list(ids[:head]) + list(ids[n - keep + head:])
        return cls(kept, n - keep, max(1, min(max_new_tokens, positions - keep)), positions)

    def describe(self, max_new_tokens: int) -> str:
        """What was cut, in words; empty where nothing was."""
        parts = []
        if self.left_out:
            parts.append(f"the prompt has {self.length} tokens and the model takes {self.positions} positions "
                         f"(prompt and continuation together): its first {self.left_out} tokens were left out, "
                         f"the continuation follows the last {len(self.ids)}")
        if self.new_tokens < max_new_tokens:
            parts.append(f"{self.new_tokens} new tokens instead of {max_new_tokens}, to fit the model's "
                         f"{self.positions} positions")
        return "; ".join(parts)


# ---- characters cut in half ---------------------------------------------------------------------------

_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # a sentencepiece byte-fallback token


@functools.lru_cache(maxsize=1)
def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the byte that each character of a byte-level BPE token stands for."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {c: b for b, c in bytes_to_unicode().items()}


def _is_byte_level(tokenizer: Any) -> bool:
    if getattr(tokenizer, "byte_decoder", None):  # Python GPT-2-style tokenizers
        return True
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    if decoder is None:
        return False
    try:
        spec = json.loads(decoder.__getstate__())
    except (AttributeError, TypeError, ValueError):
        return False
    kinds, todo = set(), [spec]
    while todo:
        d = todo.pop()
        if isinstance(d, dict):
            kinds.add(d.get("type"))
            todo.extend(d.get("decoders") or [])
    return "ByteLevel" in kinds


def _incomplete_tail(tokenizer: Any, ids: list[int]) -> int:
    """How many bytes of a character whose last bytes are missing the decoded ``ids`` end with: 0 where
    the text ends on a whole character (a U+FFFD in the data itself is one).

    Works on the bytes that the last tokens stand for (byte-level BPE, or byte-fallback tokens such
    as ``<0xF0>``): at most three bytes can be pending, and every token carries at least one."""
    special = set(tokenizer.all_special_ids)
    tokens = tokenizer.convert_ids_to_tokens([i for i in ids if i not in special][-4:])
    byte_level = _is_byte_level(tokenizer)
    alphabet = _byte_level_alphabet() if byte_level else {}
    tail = b""
    for token in reversed(tokens):
        match = None if byte_level else _BYTE_TOKEN.fullmatch(token)
        if byte_level and all(c in alphabet for c in token):
            tail = bytes(alphabet[c] for c in token) + tail
        elif match:
            tail = bytes([int(match.group(1), 16)]) + tail
        else:  # a token of whole characters: nothing before it can be pending
            break
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    decoder.decode(tail, final=False)
    return len(decoder.getstate()[0])
