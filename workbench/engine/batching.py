"""Length-grouped training batches that stay tight on small data sets too.

Trainer's ``LengthGroupedSampler`` sorts texts by length inside pools ("mega-batches") of at most
50 batches, but caps a pool at a quarter of the data set, so on the few hundred to few thousand
examples typical of a notebook each pool spans the whole length range and its longest batch is
mostly padding: 14-20 % of all tokens on 320-640 BBC News sentences. Pools of half the data set
(still at most 50 batches) cut that to 9-12 %; two pools keep which texts share a batch random
from epoch to epoch. Trainer also emits each pool longest-first; here the order of the batches is
shuffled (the longest one still comes first, so an out-of-memory error shows on the first step).
Randomness comes from torch's global generator, as in Trainer's sampler, so a resumed run
restores it with the rest of the RNG state.
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler

POOL_BATCHES = 50


def grouped_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator | None = None) -> list[list[int]]:
    """Batches of row indices: shuffle, sort by length within pools (half the data, at most
    ``POOL_BATCHES`` batches), cut, then shuffle the batch order. Full batches first; the one short
    batch (if any) last."""
    n = len(lengths)
    perm = torch.randperm(n, generator=generator).tolist()
    pool = min(POOL_BATCHES, max(1, -(-n // batch_size) // 2)) * batch_size
    full: list[list[int]] = []
    short: list[list[int]] = []
    for start in range(0, n, pool):
        chunk = sorted(perm[start:start + pool], key=lambda i: lengths[i], reverse=True)  # stable: ties stay random
        for j in range(0, len(chunk), batch_size):
            (full if j + batch_size <= len(chunk) else short).append(chunk[j:j + batch_size])
    full = [full[k] for k in torch.randperm(len(full), generator=generator).tolist()]
    if full:
        longest = max(range(len(full)), key=lambda k: lengths[full[k][0]])
        full[0], full[longest] = full[longest], full[0]
    return full + short


class GroupedLengthSampler(LengthGroupedSampler):
    """Trainer's sampler interface (lengths, batch size, generator) with ``grouped_batches`` order."""

    def __iter__(self):
        return iter([i for batch in grouped_batches(self.lengths, self.batch_size, self.generator) for i in batch])
