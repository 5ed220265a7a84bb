"""Masked-LM domain adaptation: continued pretraining of an encoder on unlabeled domain text.

Text comes from .txt files (one example per line, paragraph or file: ``task_options.sample_by``),
a text column, or a folder. Examples are packed into blocks of ``train.max_length`` tokens;
training masks tokens afresh in every batch (whole words with ``whole_word_mask: true``), while
validation and test blocks are masked once with a fixed seed, so the base and the adapted model
are scored on exactly the same masked tokens.

Baseline: the base model's perplexity on those test blocks. A checkpoint saved without its
masked-LM head (sentence-embedding models such as the bundled MiniLM) gets a new, random head;
its "as is" perplexity is recorded, and the baseline proper is the base encoder frozen with that
head trained for the run's own number of steps, so the comparison measures what adapting the
encoder adds. The adapted ``model/`` folder can be the ``model:`` of a classification run.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..data import Splits, check_texts, load_splits
from ..errors import ConfigError, ModelError
from ..models import apply_freeze, load_model
from . import Task, register
from ._common import task_options
from ._lm import (SAMPLE_BY, base_trainer, length_report, pack, perplexity_metrics, phase_every, predict_split,
                  text_loader, token_losses, workdir)

OPTIONS = {"mlm_probability": 0.15, "whole_word_mask": False, "packing": True, "sample_by": "line",
           "baseline_head_steps": None}
EXAMPLES = 8
PAD_VALUES = {"attention_mask": 0, "special_tokens_mask": 1, "offset_mapping": [0, 0], "labels": -100}
MODEL_KEYS = ("input_ids", "attention_mask", "labels")


def pad_features(features: list[dict], pad_id: int, keys: tuple[str, ...], multiple: int | None = None
                 ) -> dict[str, list]:
    """Right-pad list-valued features to the longest in the batch, rounded up to ``multiple`` if given
    (packed blocks need it only for the last)."""
    width = max(len(f["input_ids"]) for f in features)
    if multiple:
        width = -(-width // multiple) * multiple
    out: dict[str, list] = {}
    for key in keys:
        if key not in features[0]:
            continue
        fill = pad_id if key == "input_ids" else PAD_VALUES[key]
        out[key] = [list(f[key]) + [fill] * (width - len(f[key])) for f in features]
    return out


class MaskingCollator:
    """Dynamic masking for training batches; validation and test blocks arrive already masked.

    Masking itself is ``DataCollatorForLanguageModeling`` (80/10/10 replacement, whole-word masking
    from token offsets); this wrapper pads the extra columns it needs and passes pre-masked
    evaluation blocks through unchanged.
    """

    def __init__(self, tokenizer: Any, mlm_probability: float, whole_word_mask: bool, seed: int | None = None,
                 pad_to_multiple_of: int | None = None):
        import warnings

        from transformers import DataCollatorForLanguageModeling

        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.multiple = pad_to_multiple_of
        with warnings.catch_warnings():  # whole-word masking always uses [MASK]; that is the intent here
            warnings.simplefilter("ignore", UserWarning)
            self.masker = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=mlm_probability,
                                                          whole_word_mask=whole_word_mask, seed=seed)

    def __call__(self, features: list[dict]) -> dict:
        import torch

        if "labels" in features[0]:
            batch = pad_features(features, self.pad_id, MODEL_KEYS, self.multiple)
            return {k: torch.tensor(v) for k, v in batch.items()}
        batch = pad_features(features, self.pad_id,
                             ("input_ids", "attention_mask", "special_tokens_mask", "offset_mapping"), self.multiple)
        rows = [{k: v[i] for k, v in batch.items()} for i in range(len(features))]
        return self.masker(rows)


@register("masked-lm")
class MaskedLM(Task):
    main_metric = "perplexity"
    greater_is_better = False
    auto_model_name = "AutoModelForMaskedLM"
    remove_unused_columns = False  # the collator reads special-token masks and word offsets
    sparse_prediction = "masked"
    peft_task_type = None

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self.options = task_options(cfg, "masked-lm", OPTIONS, {"sample_by": SAMPLE_BY,
                                                                "whole_word_mask": (True, False),
                                                                "packing": (True, False)})
        p = self.options["mlm_probability"]
        if not isinstance(p, (int, float)) or not 0 < p < 1:
            raise ConfigError(f"task_options.mlm_probability: {p!r} must be a number between 0 and 1 (0.15 is usual).")
        steps = self.options["baseline_head_steps"]
        if steps is not None and (not isinstance(steps, int) or steps < 0):
            raise ConfigError(f"task_options.baseline_head_steps: {steps!r} must be a whole number >= 0 "
                              "(0 scores the base model as it is; null uses the run's own number of steps).")
        self.skipped: dict[str, int] = {}
        self.peft_modules_to_save: list[str] | None = None
        self.head_missing: list[str] = []

    # ---- data --------------------------------------------------------------------------------
    def load_data(self) -> Splits:
        d = self.cfg.data
        splits = load_splits(self.cfg, key_column=d.text_column, label_column=None,
                             check=lambda name, frame: check_texts(frame, d.text_column, f"data.{name}"),
                             columns={"data.text_column": d.text_column},
                             loader=text_loader(d.text_column, self.options["sample_by"], self.skipped))
        if self.skipped:
            splits.report["blank_lines_skipped"] = dict(self.skipped)
        return splits

    def tokenize(self, splits: Splits, tokenizer: Any) -> dict:
        import datasets

        if tokenizer.mask_token is None:
            raise ModelError(f"model: the tokenizer of '{self.cfg.model}' has no mask token, so it cannot do "
                             "masked-LM. Use an encoder (BERT, RoBERTa, MiniLM); for GPT-style models use "
                             "task: causal-lm.")
        wwm = self.options["whole_word_mask"]
        if wwm and not tokenizer.is_fast:
            raise ModelError("task_options.whole_word_mask needs a fast tokenizer (tokenizer.json) for word offsets.")
        block = self.cfg.train.max_length
        out = {}
        for name, frame in splits.items():
            enc = tokenizer(frame[self.cfg.data.text_column].tolist(), add_special_tokens=True, truncation=False,
                            return_special_tokens_mask=True, return_offsets_mapping=wwm, verbose=False)
            cols: dict[str, list[list]] = {"input_ids": enc["input_ids"],
                                           "special_tokens_mask": enc["special_tokens_mask"]}
            if wwm:
                cols["offset_mapping"] = [[list(o) for o in row] for row in enc["offset_mapping"]]
            lengths = [len(x) for x in enc["input_ids"]]
            if self.options["packing"]:
                cols = pack(cols, block)
                kept = lengths
            else:
                cols = {k: [_truncate(row, mask, block) for row, mask in zip(v, cols["special_tokens_mask"])]
                        for k, v in cols.items()}
                kept = [len(x) for x in cols["input_ids"]]
            self.length_report[name] = length_report(len(frame), lengths, kept, block, self.options["packing"])
            cols["attention_mask"] = [[1] * len(x) for x in cols["input_ids"]]
            if name != "train":  # mask once, with a fixed seed per split: same tokens for every model
                cols = self._mask_once(tokenizer, cols, seed=self.cfg.train.seed + (1 if name == "validation" else 2))
            cols["length"] = [len(x) for x in cols["input_ids"]]
            out[name] = datasets.Dataset.from_dict(cols)
            self.length_report[name]["blocks"] = len(cols["input_ids"])
        return out

    def _mask_once(self, tokenizer: Any, cols: dict, seed: int) -> dict:
        masker = MaskingCollator(tokenizer, self.options["mlm_probability"], self.options["whole_word_mask"], seed)
        keys = [k for k in ("input_ids", "attention_mask", "special_tokens_mask", "offset_mapping") if k in cols]
        ids: list[list[int]] = []
        labels: list[list[int]] = []
        for start in range(0, len(cols["input_ids"]), 256):
            rows = [{k: cols[k][i] for k in keys} for i in range(start, min(start + 256, len(cols["input_ids"])))]
            batch = masker(rows)
            for i, row in enumerate(rows):
                n = len(row["input_ids"])
                ids.append(batch["input_ids"][i, :n].tolist())
                labels.append(batch["labels"][i, :n].tolist())
        return {"input_ids": ids, "attention_mask": cols["attention_mask"], "labels": labels}

    # ---- model -------------------------------------------------------------------------------
    def _load(self):
        from transformers import AutoModelForMaskedLM

        model, info = load_model(self.cfg, AutoModelForMaskedLM, output_loading_info=True)
        self.head_missing = sorted(k for k in info.get("missing_keys", []) if not k.endswith("position_ids"))
        return model

    def load_model(self):
        model = self._load()
        if self.head_missing and self.cfg.lora.enabled:
            self.peft_modules_to_save = _head_modules(model)
        return model

    def collator(self, tokenizer: Any):
        return MaskingCollator(tokenizer, self.options["mlm_probability"], self.options["whole_word_mask"],
                               pad_to_multiple_of=self.pad_to_multiple_of)

    # ---- metrics -----------------------------------------------------------------------------
    def preprocess_logits_for_metrics(self, logits, labels, index=None, scores=None):
        return token_losses(logits, labels, causal=False, index=index, scores=scores)

    def compute_metrics(self, eval_pred) -> dict:
        return perplexity_metrics(eval_pred.predictions, eval_pred.label_ids, causal=False)

    def baseline(self, splits: Splits, tokenizer: Any, datasets: dict, device: str, precision: str) -> dict:
        model = self._load()
        with workdir() as tmp:
            trainer = base_trainer(self, model, tokenizer, device, precision, tmp)
            as_is, out = predict_split(trainer, datasets["test"])
            baselines = {"base_model": as_is}
            main = as_is
            method = "the base model with its pretrained masked-LM head, on the same masked test blocks"
            steps = self.options["baseline_head_steps"]
            if self.head_missing and steps != 0:
                apply_freeze(model, "all-but-head")
                trainer = base_trainer(self, model, tokenizer, device, precision, tmp, train_dataset=datasets["train"])
                if steps:
                    trainer.args.max_steps = steps
                trainer.add_callback(phase_every(self.emit, "baseline", "training the masked-LM head the base "
                                                                        "checkpoint lacks, encoder frozen"))
                trainer.train()
                main, out = predict_split(trainer, datasets["test"])
                baselines["frozen_encoder_trained_head"] = main
                budget = f"{steps} steps" if steps else "as many steps as the fine-tuning"
                method = ("the base encoder, frozen, with the masked-LM head its checkpoint lacks trained on the "
                          f"training text ({budget}); the base model with an untrained head is under "
                          "baselines.base_model")
        return {"baseline": main, "baselines": baselines, "baseline_method": method,
                "_top1": np.asarray(out.predictions[1]), "_head_missing": self.head_missing}

    def evaluate(self, trainer: Any, datasets: dict, splits: Splits, baseline: dict) -> dict:
        metrics, out = predict_split(trainer, datasets["test"])
        labels = np.asarray(out.label_ids)
        result = {"metrics": metrics, "scored_tokens": int((labels != -100).sum()),
                  "masking": {k: self.options[k] for k in ("mlm_probability", "whole_word_mask")}}
        if baseline.get("_head_missing"):
            result["base_head_missing"] = baseline["_head_missing"]
        base_top1 = baseline.get("_top1")
        if base_top1 is not None:
            result["examples"] = _disagreements(trainer.processing_class, datasets["test"], labels,
                                                np.asarray(out.predictions[1]), base_top1)
        return result

    def model_info(self) -> dict:
        return {k: self.options[k] for k in ("mlm_probability", "whole_word_mask", "packing")}

    # ---- using the model ---------------------------------------------------------------------
    @classmethod
    def predict(cls, model, tokenizer, inputs: list, info: dict, max_length: int = 256, top_k: int = 5,
                **kw) -> list[list[list[dict]]]:
        """Fill each mask token: per text, one list of ``top_k`` {token, score} per mask, special tokens
        ([CLS], [SEP], [MASK]...) left out."""
        import torch

        from ..errors import DataError

        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise DataError(f"predict: top_k {top_k!r}: give a whole number of 1 or more.")
        model.eval()
        results = []
        with torch.inference_mode():
            for text in inputs:
                enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt").to(model.device)
                positions = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten().tolist()
                if not positions:
                    raise DataError(f"predict: {text[:80]!r} has no {tokenizer.mask_token}; write "
                                    f"{tokenizer.mask_token} where a word should be filled in.")
                logits = model(**enc).logits[0, positions].float()
                # [CLS], [SEP], [PAD], [MASK] are no words to fill in: scores are over the other tokens
                special = [i for i in tokenizer.all_special_ids if 0 <= i < logits.shape[-1]]
                logits[:, special] = float("-inf")
                probs = logits.softmax(-1)
                words = logits.shape[-1] - len(set(special))
                if top_k > words:
                    warnings.warn(f"top_k {top_k} is more than the model's {words} tokens that are no special "
                                  f"tokens; each mask lists all {words}.", stacklevel=2)
                    top_k = words
                top = probs.topk(top_k, dim=-1)
                results.append([[{"token": tokenizer.decode([int(i)]).strip(), "score": float(p)}
                                 for p, i in zip(ps, ids)] for ps, ids in zip(top.values, top.indices)])
        return results


def _truncate(row: list, special: list[int], block: int) -> list:
    """Cut to ``block`` items, keeping a closing special token ([SEP], </s>) where there is one."""
    if len(row) <= block:
        return list(row)
    return list(row[:block - 1]) + [row[-1]] if special[-1] else list(row[:block])


def _head_modules(model: Any) -> list[str]:
    """Names of the masked-LM head's own layers (not the decoder tied to the input embeddings)."""
    decoder = model.get_output_embeddings()
    names = {id(m): n for n, m in model.named_modules()}
    head_name = names.get(id(decoder), "").rsplit(".", 1)[0]
    head = model.get_submodule(head_name) if head_name else None
    if head is None:
        return []
    return [f"{head_name}.{n}" for n, m in head.named_children()
            if m is not decoder and any(True for _ in m.parameters())]


def _disagreements(tokenizer: Any, dataset: Any, labels: np.ndarray, finetuned: np.ndarray, base: np.ndarray,
                   limit: int = EXAMPLES) -> list[dict]:
    """Masked test tokens where the adapted and the base model guess differently (one per block)."""
    examples = []
    ids = dataset["input_ids"]
    for row in range(min(len(ids), labels.shape[0])):
        n = len(ids[row])
        where = np.flatnonzero((labels[row, :n] != -100) & (finetuned[row, :n] != base[row, :n]))
        if not len(where):
            continue
        pos = int(where[0])
        original = [int(lab) if lab != -100 else int(tok) for tok, lab in zip(ids[row], labels[row, :n])]
        left = tokenizer.decode(original[max(0, pos - 12):pos], skip_special_tokens=True)
        right = tokenizer.decode(original[pos + 1:pos + 13], skip_special_tokens=True)
        examples.append({"text": f"{left} {tokenizer.mask_token} {right}".strip(),
                         "label": tokenizer.decode([int(labels[row, pos])]).strip(),
                         "finetuned": tokenizer.decode([int(finetuned[row, pos])]).strip(),
                         "baseline": tokenizer.decode([int(base[row, pos])]).strip()})
        if len(examples) >= limit:
            break
    return examples
