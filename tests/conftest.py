"""Shared fixtures: tiny models built from configs (no downloads) and small generated data."""

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


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def clf_csv(tmp_path_factory) -> Path:
    import csv

    path = tmp_path_factory.mktemp("data") / "topics.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(make_texts(180))
    return path


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "runs"
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(d))
    return d


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
                                     | {":", ".", "topic", "say", "answer"})
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


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return build_tiny_decoder(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")
