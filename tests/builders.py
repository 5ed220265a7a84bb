"""Builders shared by the tests: tiny models from configs (no downloads) and small generated data.

Imported as `from builders import ...` (a unique module name; `conftest` is ambiguous once
several test folders have one)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

TOPICS = {
    "sport": "match goal team player coach league score win season stadium",
    "tech": "software chip computer phone network data code internet robot digital",
    "money": "bank market shares profit price economy trade stock investor rate",
}
FILLER = "the a of and to in on for with is was it this that said new year people".split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_vocab() -> list[str]:
    words = set(FILLER)
    for kw in TOPICS.values():
        words.update(kw.split())
    return SPECIAL + sorted(words)


def make_texts(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    labels = list(TOPICS)
    for i in range(n):
        label = labels[i % len(labels)]
        kws = TOPICS[label].split()
        length = rng.randint(6, 40)
        words = [rng.choice(kws) if rng.random() < 0.4 else rng.choice(FILLER) for _ in range(length)]
        words.append(str(i))  # unique: no accidental duplicates
        rows.append((" ".join(words), label))
    return rows


def build_tiny_bert(path: Path, vocab: list[str] | None = None) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = vocab or make_vocab()
    digits = [str(d) for d in range(10)] + [f"##{d}" for d in range(10)]
    vocab = vocab + [d for d in digits if d not in vocab]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(path), safe_serialization=True)
    tok.save_pretrained(str(path))
    return path


def tiny_config(model: Path, data: Path | str, runs: Path, **train) -> dict:
    t = {"epochs": 4, "learning_rate": 3e-3, "batch_size": 16, "max_length": 64, "logging_steps": 5,
         "warmup_ratio": 0.0}
    t.update(train)
    return {"task": "text-classification", "model": str(model), "runs_dir": str(runs),
            "data": {"train": str(data) if isinstance(data, Path) else data}, "train": t}


# ---- tiny models for the other tasks ----------------------------------------------------------------

DECODER_SPECIAL = ["<pad>", "<unk>", "<s>", "</s>"]


def build_tiny_decoder(path: Path, arch: str = "gpt2", words: list[str] | None = None) -> Path:
    """A 2-layer decoder (gpt2, llama or qwen2; hidden 32) with a word-level tokenizer, built offline."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast,
                              Qwen2Config, Qwen2ForCausalLM)

    vocab = DECODER_SPECIAL + sorted(set(words or make_vocab()[len(SPECIAL):]) | {str(d) for d in range(10)}
                                     | {":", ".", "topic", "say", "answer"} | set(TOPICS))
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="<pad>")
    common = dict(vocab_size=len(vocab), bos_token_id=2, eos_token_id=3, pad_token_id=0)
    torch.manual_seed(0)
    if arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=128, **common))
    elif arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=2, num_key_value_heads=1,
                                             max_position_embeddings=128, **common))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=2, num_key_value_heads=1,
                                             max_position_embeddings=128, **common))
    else:
        raise ValueError(arch)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path), safe_serialization=True)
    tok.save_pretrained(str(path))
    return path


NER_NAMES = {"PER": ["alice", "bob", "carol", "dave", "erin", "frank", "jordan", "georgia"],
             "LOC": ["paris", "london", "tokyo", "berlin", "madrid", "oslo", "jordan", "georgia"],
             "ORG": ["acme", "globex", "initech", "umbrella"]}
NER_TEMPLATES = ["{PER} works at {ORG} in {LOC} .", "{PER} visited {LOC} with {PER} .",
                 "the {ORG} office in {LOC} is new .", "{PER} and {PER} joined {ORG} corp .",
                 "in {LOC} , {PER} said the {ORG} deal was good ."]


def make_ner_sentences(n: int, seed: int = 0, scheme: str = "IOB2") -> list[tuple[list[str], list[str]]]:
    """Template sentences with person, place and company names (``acme corp`` is a two-word entity)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words, tags = [], []
        for part in rng.choice(NER_TEMPLATES).split():
            if part.startswith("{"):
                kind = part[1:-1]
                name = [rng.choice(NER_NAMES[kind])] + (["corp"] if kind == "ORG" and rng.random() < 0.3 else [])
                if scheme == "BIOES":
                    tags += [f"S-{kind}"] if len(name) == 1 else [f"B-{kind}", f"E-{kind}"]
                else:
                    tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
                words += name
            else:
                words.append(part)
                tags.append("O")
        words.append(str(i))  # unique sentences: no accidental duplicates across splits
        tags.append("O")
        rows.append((words, tags))
    return rows


def ner_vocab() -> list[str]:
    """Word-piece vocabulary for the NER sentences; 'berlin' and 'madrid' split into two pieces."""
    words = {w for names in NER_NAMES.values() for w in names} - {"berlin", "madrid"}
    words |= {w for t in NER_TEMPLATES for w in t.split() if not w.startswith("{")} | {"corp", "ber", "##lin",
                                                                                       "mad", "##rid"}
    return SPECIAL + sorted(words)


def write_conll(path: Path, rows: list[tuple[list[str], list[str]]]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        f.write("-DOCSTART- -X- O O\n\n")
        for words, tags in rows:
            f.writelines(f"{w} {t}\n" for w, t in zip(words, tags))
            f.write("\n")
    return path


def make_multilabel_rows(n: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    """Texts that mix the keywords of one or two topics; the labels are the topics used."""
    rng = random.Random(seed)
    labels = list(TOPICS)
    rows = []
    for i in range(n):
        chosen = sorted(rng.sample(labels, 1 if i % 2 else 2))
        words = []
        for _ in range(rng.randint(6, 20)):
            words.append(rng.choice(TOPICS[rng.choice(chosen)].split()) if rng.random() < 0.8 else rng.choice(FILLER))
        rows.append((" ".join(words) + f" {i}", chosen))
    return rows


def make_regression_rows(n: int, seed: int = 0) -> list[tuple[str, float]]:
    """Texts whose target is the share of 'money' keywords among their words (times 10)."""
    rng = random.Random(seed)
    money = TOPICS["money"].split()
    rows = []
    for i in range(n):
        share = rng.random()
        words = [rng.choice(money) if rng.random() < share else rng.choice(FILLER) for _ in range(rng.randint(10, 30))]
        rows.append((" ".join(words) + f" {i}", round(10 * sum(w in money for w in words) / len(words), 3)))
    return rows
