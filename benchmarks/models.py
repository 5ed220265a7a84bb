"""Models for the benchmarks: the bundled MiniLM, and random-weight models built from configs.

Random weights are enough for throughput (the work per token does not depend on the values).
They share MiniLM's WordPiece tokenizer (30,522 ids); a decoder's own vocabulary is kept at its
real size so its output layer costs what it costs in the real model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# name -> (architecture, config keyword arguments). Sizes follow the public configs.
SHAPES: dict[str, tuple[str, dict]] = {
    # CPU: a small GPT-2-style decoder
    "tiny-gpt2": ("gpt2", dict(n_embd=256, n_layer=4, n_head=4, n_positions=512, vocab_size=30522)),
    # GPU: BERT-base, GPT-2 (124M), a Qwen2.5-0.5B-shaped and a Llama-3.2-1B-shaped decoder
    "bert-base": ("bert", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                               intermediate_size=3072, vocab_size=30522, max_position_embeddings=512)),
    "gpt2-124m": ("gpt2", dict(n_embd=768, n_layer=12, n_head=12, n_positions=1024, vocab_size=50257)),
    "qwen2-0.5b": ("qwen2", dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                 num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                                 max_position_embeddings=4096, tie_word_embeddings=True)),
    "llama-1b": ("llama", dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                               num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                               max_position_embeddings=4096, tie_word_embeddings=True)),
    # the same code paths at toy sizes, for tests on a CPU
    "toy-bert": ("bert", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                              vocab_size=30522, max_position_embeddings=512)),
    "toy-gpt2": ("gpt2", dict(n_embd=32, n_layer=2, n_head=2, n_positions=512, vocab_size=30522)),
    "toy-qwen2": ("qwen2", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                num_key_value_heads=1, vocab_size=30522, max_position_embeddings=512,
                                tie_word_embeddings=True)),
}


def minilm_path() -> str:
    from workbench.models import resolve_model

    return resolve_model("minilm")


def tokenizer_dir(root: Path) -> Path:
    """MiniLM's tokenizer, copied once under ``root`` (the models folder): a bench folder prepared on
    one machine can be copied to another that lacks the bundled MiniLM package (a GPU machine with
    only the libraries), and its random-weight models are built there."""
    dest = root / "tokenizer"
    if not (dest / "tokenizer_config.json").exists():
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(str(dest))
    return dest


def _tokenizer(decoder: bool, root: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir(root)))
    if decoder:  # a causal LM needs an end-of-text token; [SEP] plays that part here
        tok.eos_token, tok.bos_token = "[SEP]", "[CLS]"
    return tok


def build(name: str, root: Path) -> str:
    """A local model folder (safetensors + tokenizer) for ``name``; 'minilm' is the bundled model."""
    if name == "minilm":
        return minilm_path()
    if name not in SHAPES:
        raise ValueError(f"unknown benchmark model {name!r}; known: minilm, {', '.join(SHAPES)}")
    dest = root / name
    if (dest / ".complete").exists():
        return str(dest)
    import torch
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    from transformers import Qwen2Config, Qwen2ForCausalLM

    arch, kw = SHAPES[name]
    torch.manual_seed(0)
    decoder = arch != "bert"
    tok = _tokenizer(decoder, root)
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    build_on = "cuda" if torch.cuda.is_available() else "cpu"  # random init of 1B weights is seconds on a GPU
    with torch.device(build_on):
        model = {
            "bert": lambda: BertModel(BertConfig(**kw, pad_token_id=tok.pad_token_id)),
            "gpt2": lambda: GPT2LMHeadModel(GPT2Config(**kw, **ids)),
            "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**kw, **ids)),
            "llama": lambda: LlamaForCausalLM(LlamaConfig(**kw, **ids)),
        }[arch]()
    if dest.exists():
        shutil.rmtree(dest)
    model.save_pretrained(str(dest), safe_serialization=True)
    tok.save_pretrained(str(dest))
    (dest / ".complete").touch()
    return str(dest)
