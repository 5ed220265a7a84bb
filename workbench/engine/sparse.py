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
"""

from __future__ import annotations

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
                   index: Any = None):
    """Cross-entropy over the labelled positions, reduced as Trainer expects from the model's own loss,
    and the model's outputs with ``logits`` for those positions only. ``index``: the positions as
    ``IndexingCollator`` listed them (counted here from the labels otherwise)."""
    import torch.nn.functional as F

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
    if trainer.model_accepts_loss_kwargs and num_items_in_batch is not None:
        # normalised over the whole accumulated batch, as Trainer assumes when it passes the count
        loss = F.cross_entropy(logits.float(), target, reduction="sum") / num_items_in_batch
        if trainer.args.average_tokens_across_devices:
            loss = loss * (trainer.accelerator.num_processes // trainer.get_tp_size())  # as Trainer.compute_loss
    else:
        loss = F.cross_entropy(logits.float(), target)
    return loss, outputs
