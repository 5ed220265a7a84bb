"""On a CPU, bf16 training forwards of a model with attention dropout use transformers' eager attention.

With dropout, torch's CPU ``scaled_dot_product_attention`` cannot use its fused (flash) kernel and
takes its math path, which under bf16 autocast upcasts query, key and value to fp32 and guards each
softmax row against full masking (``_safe_softmax``: an ``isneginf``, an ``all`` and a ``where`` per
layer). transformers' eager attention (matmul, softmax in fp32 under autocast, dropout, matmul)
skips both. MiniLM training steps on a 2-core Xeon with AMX (bf16, workbench's dropout masks,
medians of alternating steps in one process): 301 against 363 ms at batch 16 x 128 tokens, 380
against 457 ms at 8 x 256, level at 16 x 32; a 4-layer GPT-2 at 8 x 256: 583 against 613 ms.
Without dropout (evaluation) SDPA's fused kernel wins by as much the other way (eager took 1.85 to
2.13 times as long), and in fp32 training the two were level, so only bf16 runs switch, and the
switch follows the model's mode: eager while it trains, SDPA otherwise. transformers has the switch
(``set_attn_implementation``) but no policy for when to use it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

# the config fields that hold a model's attention-probability dropout (BERT family, GPT-2, Llama family)
ATTENTION_DROPOUT_FIELDS = ("attention_probs_dropout_prob", "attn_pdrop", "attention_dropout")


def attention_dropout(config: Any) -> float:
    """The model's attention dropout rate, 0.0 where its config names none."""
    rates = [getattr(config, name, None) for name in ATTENTION_DROPOUT_FIELDS]
    return max([float(r) for r in rates if isinstance(r, (int, float))], default=0.0)


def _switchable(model: Any) -> Any:
    """The ``PreTrainedModel`` inside ``model`` (a PEFT wrapper too) whose SDPA attention can be
    switched to eager and back, or None."""
    from transformers import PreTrainedModel

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not isinstance(base, PreTrainedModel):
        return None
    config = base.config
    if getattr(config, "_attn_implementation", None) != "sdpa" or attention_dropout(config) <= 0:
        return None
    can_set = getattr(base, "_can_set_attn_implementation", None)
    return base if can_set is not None and can_set() else None


@contextmanager
def eager_attention_while_training(model: Any) -> Iterator[bool]:
    """While open, every forward of ``model`` in training mode runs eager attention and every other
    forward SDPA (switched at the forward that changes mode, not per forward). Yields whether the
    model is switched at all (SDPA attention with dropout, a model transformers can switch); its
    SDPA attention is restored on leaving."""
    base = _switchable(model)
    if base is None:
        yield False
        return
    current = ["sdpa"]

    def follow_mode(module: Any, args: tuple) -> None:
        want = "eager" if module.training else "sdpa"
        if want != current[0]:
            base.set_attn_implementation(want)
            current[0] = want

    handle = base.register_forward_pre_hook(follow_mode)
    try:
        yield True
    finally:
        handle.remove()
        if current[0] != "sdpa":
            base.set_attn_implementation("sdpa")
