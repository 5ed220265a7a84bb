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

from typing import Any

import pandas as pd

from ..data import DataError, Splits, check_texts, load_splits, require_columns
from ..errors import ModelError
from ..models import load_model
from . import Task, register
from ._common import task_options
from ._lm import (SAMPLE_BY, base_trainer, length_report, pack, perplexity_metrics, predict_split, text_loader,
                  token_losses, workdir)

OPTIONS = {"format": "auto", "packing": None, "sample_by": "line", "example_prompts": 4, "max_new_tokens": 24}
FORMATS = ("auto", "text", "prompt-response")


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
        if fmt == "prompt-response" and not (has_prompt and has_response):
            there, missing = ((d.prompt_column, ("data.response_column", d.response_column)) if has_prompt else
                              (d.response_column, ("data.prompt_column", d.prompt_column)))
            if not (has_prompt or has_response):
                require_columns(train, {"data.prompt_column": d.prompt_column})
            raise DataError(
                f"{train.attrs.get('source', 'data')}: has a '{there}' field but no '{missing[1]}' field "
                f"({missing[0]}); prompt/response training needs both in every row. Available fields: "
                f"{', '.join(map(str, train.columns))}. Set {missing[0]} to the right field, or give plain text "
                f"in a '{d.text_column}' field with task_options.format: text.",
                [{"kind": "missing_column", "file": train.attrs.get("source"), "column": missing[1],
                  "available": [str(c) for c in train.columns]}])
        return fmt

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
        if self.format == "prompt-response":
            return [{"prompt": p, "reference": r} for p, r in zip(frame[d.prompt_column], frame[d.response_column])]
        rows = []
        for text in frame[d.text_column]:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            cut = max(1, min(16, len(ids) // 2))
            rows.append({"prompt": tokenizer.decode(ids[:cut]), "reference": tokenizer.decode(ids[cut:cut + 24])})
        return rows

    def baseline(self, splits: Splits, tokenizer: Any, datasets: dict, device: str, precision: str) -> dict:
        model = self.load_model()
        with workdir() as tmp:
            trainer = base_trainer(self, model, tokenizer, device, precision, tmp)
            metrics, _ = predict_split(trainer, datasets["test"])
        prompts = self._example_prompts(splits, tokenizer)
        texts = self._shown_continuations(model, tokenizer, [p["prompt"] for p in prompts],
                                          int(self.options["max_new_tokens"]))
        return {"baseline": metrics, "baselines": {"base_model": metrics},
                "baseline_method": "the base model, unchanged, on the same test tokens",
                "_prompts": prompts, "_generations": texts}

    def evaluate(self, trainer: Any, datasets: dict, splits: Splits, baseline: dict) -> dict:
        metrics, out = predict_split(trainer, datasets["test"])
        labels = out.label_ids
        result = {"metrics": metrics, "format": self.format, "packing": self.packing,
                  "scored_tokens": int((labels[:, 1:] != -100).sum()) if labels.ndim == 2 else 0}
        prompts = baseline.get("_prompts")
        if prompts:
            texts = self._shown_continuations(trainer.model, trainer.processing_class, [p["prompt"] for p in prompts],
                                              int(self.options["max_new_tokens"]))
            result["examples"] = [{**p, "finetuned": ft, "baseline": base}
                                  for p, ft, base in zip(prompts, texts, baseline["_generations"]) if ft != base]
        return result

    def model_info(self) -> dict:
        return {"format": self.format, "packing": self.packing}

    # ---- using the model ---------------------------------------------------------------------
    @classmethod
    def generate(cls, model, tokenizer, prompts: list[str], info: dict, max_new_tokens: int = 50,
                 **kw) -> list[str]:
        """Continuations of each prompt (greedy by default; pass do_sample=True, temperature=... to sample)."""
        return [tokenizer.decode(ids, skip_special_tokens=True).strip()
                for ids in cls._generated_ids(model, tokenizer, prompts, max_new_tokens, **kw)]

    @classmethod
    def _shown_continuations(cls, model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy continuations for the examples of eval.json. Where a model generated only special
        tokens (a barely trained one repeats ``<unk>`` or stops at once), the decoded text is empty;
        the examples say what it generated instead of showing an empty cell."""
        out = []
        for ids in cls._generated_ids(model, tokenizer, prompts, max_new_tokens):
            text = tokenizer.decode(ids, skip_special_tokens=True).strip()
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
    def _generated_ids(cls, model, tokenizer, prompts: list[str], max_new_tokens: int, **kw) -> list[list[int]]:
        import torch

        from ..errors import DataError as _DataError

        kw.pop("max_length", None)
        kw.setdefault("do_sample", False)
        model.eval()
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        outs = []
        with torch.inference_mode():
            for prompt in prompts:
                enc = tokenizer(prompt, return_tensors="pt").to(model.device)
                if enc["input_ids"].shape[1] == 0:
                    raise _DataError("generate: the prompt is empty; give at least one word to continue.")
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=pad, **kw)
                outs.append(gen[0, enc["input_ids"].shape[1]:].tolist())
        return outs

    @classmethod
    def predict(cls, model, tokenizer, inputs: list, info: dict, **kw) -> list[str]:
        return cls.generate(model, tokenizer, inputs, info, **kw)
