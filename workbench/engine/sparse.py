"""Language-model loss over the labelled positions only.

A language-model head projects every position onto the vocabulary, although only some carry a
label: the masked ~15 % in masked-LM, the response tokens of prompt/response causal-LM data. For
MiniLM (hidden 384, vocabulary 30,522) that projection and its fp32 cross-entropy were close to
half of a masked-LM training step. transformers offers no switch for it (ModernBERT alone has a
``sparse_prediction`` config of its own), so workbench gathers the labelled positions right before
the vocabulary projection (a forward pre-hook on the model's output embeddings) and computes the
same cross-entropy over them. For a causal model the position before each labelled token is the one
that predicts it. In evaluation too: the logits Trainer hands to ``preprocess_logits_for_metrics``
are then M x vocabulary for the batch's M predicting positions, in row-major order
(``tasks._lm.token_losses`` scatters them back to positions).

The cross-entropy itself is fused (``cross_entropy``): its gradient is computed with the loss, a
few MiB of logits at a time, instead of in several fp32 passes over the whole array. Packed
causal-LM text, labelled almost everywhere, takes this path for that reason.
"""

from __future__ import annotations

import functools
from typing import Any


class LabelledPositions:
    """A forward pre-hook that passes only the hidden states at the labelled positions to the projection.

    ``shape`` is the batch's (rows, length) and ``index`` the flat indices of its labelled positions.
    """

    def __init__(self, module: Any):
        self.shape: tuple | None = None
        self.index = None
        self.handle = module.register_forward_pre_hook(self)

    def __call__(self, module: Any, args: tuple):
        if self.index is None or not args or tuple(args[0].shape[:-1]) != self.shape:
            return None
        return (args[0].flatten(0, -2).index_select(0, self.index),) + tuple(args[1:])


def predicted_targets(labels: Any, causal: bool) -> Any:
    """The token each position is scored on: its label, or for a causal model the next position's."""
    import torch.nn.functional as F

    return F.pad(labels[:, 1:], (0, 1), value=-100) if causal else labels


def labelled_index(targets: Any) -> Any:
    """Flat indices of the positions with a target (on a GPU one device-to-host sync: their number)."""
    return (targets != -100).reshape(-1).nonzero().squeeze(1)


# the batch key under which ``IndexingCollator`` passes the labelled positions to the loss
INDEX_KEY = "labelled_index"


class IndexingCollator:
    """A collator that also lists each batch's labelled positions, while the labels are on the host.

    On a GPU, counting them from the labels already on the device (a ``nonzero``) makes the host
    wait for every kernel queued before it, at the start of every step; in the collator the count is
    a host operation, and the index reaches the device with the batch. A class rather than a
    closure, so that loader workers started by spawn can receive it.
    """

    def __init__(self, collate: Any, causal: bool):
        self.collate = collate
        self.causal = causal

    def __call__(self, features: list) -> Any:
        batch = self.collate(features)
        if "labels" in batch:
            batch[INDEX_KEY] = labelled_index(predicted_targets(batch["labels"], self.causal))
        return batch


def positions_hook(model: Any) -> LabelledPositions | None:
    """The hook on the model's vocabulary projection, or None where it is not a plain Linear layer."""
    import torch

    get = getattr(model, "get_output_embeddings", None)
    projection = get() if callable(get) else None
    return LabelledPositions(projection) if isinstance(projection, torch.nn.Linear) else None


def sparse_lm_loss(trainer: Any, model: Any, inputs: dict, num_items_in_batch: Any = None, causal: bool = False,
                   index: Any = None, scores: bool = False):
    """Cross-entropy over the labelled positions, reduced as Trainer expects from the model's own loss,
    the model's outputs with ``logits`` for those positions only, and with ``scores`` (evaluation)
    their per-position (nll, top-1) from the same pass (``token_nll``), else None. ``index``: the
    positions as ``IndexingCollator`` listed them (counted here from the labels otherwise)."""
    hook = trainer._positions_hook or None
    labels = inputs["labels"]
    targets = predicted_targets(labels, causal)
    if index is None:
        index = labelled_index(targets)
    if hook is not None:
        hook.shape, hook.index = tuple(labels.shape), index
    try:
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
    finally:
        if hook is not None:
            hook.shape = hook.index = None
    logits = outputs["logits"]
    if tuple(logits.shape[:-1]) == tuple(labels.shape):  # the hook did not apply: full logits came back
        logits = logits.flatten(0, -2).index_select(0, index)
        outputs["logits"] = logits
    target = targets.reshape(-1).index_select(0, index)
    # normalised over the whole accumulated batch where Trainer passes the count, as it assumes
    across = trainer.model_accepts_loss_kwargs and num_items_in_batch is not None
    divisor = num_items_in_batch if across else target.numel()
    scored = token_nll(logits, target, top1=True) if scores else None
    loss = scored[0].sum() / divisor if scored else cross_entropy(logits, target, divisor)
    if across and trainer.args.average_tokens_across_devices:
        loss = loss * (trainer.accelerator.num_processes // trainer.get_tp_size())  # as Trainer.compute_loss
    return loss, outputs, scored


# fp32 bytes of logits one chunk of the fused cross-entropy works on: a few MiB stay in a CPU's
# caches between the chunk's passes; on a GPU, chunks only bound the fp32 working memory
CHUNK_BYTES = {"cpu": 4 << 20}
DEVICE_CHUNK_BYTES = 256 << 20


def chunk_rows(logits: Any) -> int:
    """Rows of ``logits`` per chunk of the loss computations here."""
    return max(1, CHUNK_BYTES.get(logits.device.type, DEVICE_CHUNK_BYTES) // (4 * logits.shape[-1]))


def token_nll(logits: Any, target: Any, top1: bool = False) -> Any:
    """Each row's fp32 negative log-likelihood of its target, without a gradient, a chunk of rows at
    a time: the same as ``F.cross_entropy(logits.float(), target, reduction="none")`` without the
    fp32 copy and log-softmax of the whole array (for an evaluation batch of 32 x 256 tokens over a
    30,522-token vocabulary, 1 GB each). With ``top1``, (nll, each row's top-1 token), the argmax
    taken on the chunk's fp32 log-probabilities (on a CPU, torch's bf16 argmax over the whole array
    took longer than the log-softmax)."""
    import torch

    rows = chunk_rows(logits)
    nll = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
    best = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device) if top1 else None
    with torch.no_grad():
        for start in range(0, logits.shape[0], rows):
            log_p = torch.log_softmax(logits[start:start + rows], -1, dtype=torch.float32)
            torch.neg(log_p.gather(1, target[start:start + rows, None]).squeeze(1), out=nll[start:start + rows])
            if top1:
                torch.argmax(log_p, -1, out=best[start:start + rows])
    return (nll, best) if top1 else nll


@functools.cache
def _fused_cross_entropy() -> type:
    """Summed cross-entropy whose gradient is computed with the loss, a chunk of rows at a time.

    ``F.cross_entropy(logits.float(), ...)`` over a language model's positions x vocabulary logits
    makes an fp32 copy, its log-softmax, and in the backward two more fp32 arrays of that size and
    a cast back, each a pass over memory (for a 4-layer, 256-wide GPT-2 on 8 x 256 tokens on a CPU,
    that was close to half of the training step). Here each chunk of rows is read once in the
    forward pass: its fp32 log-softmax gives the loss, and ``exp`` of it minus the one-hot target
    is the gradient, scaled and stored in the logits' dtype; the backward pass only multiplies it
    by the incoming gradient. The result equals torch's up to the rounding of fp32 sums. Liger's
    and Apple's fused cross-entropies do this on GPUs with Triton kernels; they need a GPU and do
    not run on a CPU, where workbench needs it most.
    """
    import torch

    class Fused(torch.autograd.Function):
        @staticmethod
        def forward(ctx, logits, target, divisor):
            rows = chunk_rows(logits)
            grad = torch.empty_like(logits)
            total = logits.new_zeros((), dtype=torch.float32)
            steps = torch.arange(min(rows, logits.shape[0]), device=logits.device)
            for start in range(0, logits.shape[0], rows):
                log_p = torch.log_softmax(logits[start:start + rows], -1, dtype=torch.float32)
                picked = (steps[:log_p.shape[0]], target[start:start + rows])
                total -= log_p[picked].sum()
                log_p.exp_()
                log_p[picked] -= 1.0
                torch.div(log_p, divisor, out=grad[start:start + rows])  # rounded once, here
            ctx.grad = grad
            return total / divisor

        @staticmethod
        def backward(ctx, out):
            grad, ctx.grad = ctx.grad, None
            if grad is None:
                raise RuntimeError("workbench's fused cross-entropy keeps its gradient for one "
                                   "backward pass; call backward once per forward")
            # in place: the stored gradient is this function's own; a 0-dim fp32 factor is
            # applied in fp32 before the result is rounded to the logits' dtype
            return grad.mul_(out.float()), None, None

    return Fused


def cross_entropy(logits: Any, target: Any, divisor: Any) -> Any:
    """The cross-entropy of ``logits`` (rows x vocabulary) against ``target`` (every row labelled),
    summed and divided by ``divisor`` (a number or a 0-dim tensor): without a gradient, chunk by
    chunk (``token_nll``); with one, torch's own for fp16 logits (whose gradient needs the loss scale
    before its rounding) and the fused one otherwise."""
    import torch
    import torch.nn.functional as F

    grad = torch.is_grad_enabled() and logits.requires_grad
    if logits.dim() != 2 or logits.shape[0] == 0 or (grad and logits.dtype == torch.float16):
        return F.cross_entropy(logits.float(), target, reduction="sum") / divisor
    if not grad:
        return token_nll(logits, target).sum() / divisor
    # a number stays a number: a tensor made from it on a GPU would be a blocking copy, which waits
    # for every kernel queued before it
    divisor = divisor.to(logits.device, torch.float32) if isinstance(divisor, torch.Tensor) else float(divisor)
    return _fused_cross_entropy().apply(logits, target, divisor)
