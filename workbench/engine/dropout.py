"""Dropout masks from a fast generator where torch's CPU one draws them one number at a time.

torch's CPU ``bernoulli_(p)`` (every dropout, including the attention dropout inside SDPA) draws
one Mersenne-Twister number per element unless its build routes the call to MKL's vectorised
generator, which older builds did on Intel processors only. The PyPI CPU wheel of torch 2.13 draws
one number per element on Intel (a 2-core Xeon with AMX) and AMD (EPYC) alike: 38 ms for one
16 x 12 x 128 x 128 attention mask on the Xeon. On an AMD EPYC that was about a fifth of a MiniLM
training step at batch 16 x 128 tokens (a torch.profiler trace of the benchmark's BBC News
workload: 20 masks per step, 6 of them 16 x 12 x 128 x 128 attention masks). torch has no switch
for that generator, so while a training forward runs, ``fast_bernoulli`` answers CPU
``bernoulli_(p)`` calls (below autograd: gradients are untouched) with numpy's PCG64 instead: 16
bits per element, so p is exact to 1/65,536, from a seed that torch's own seeded generator gives
each call, which keeps runs reproducible from ``train.seed``. Masks of fewer than ``NATIVE_BELOW``
elements keep torch's own draw; no other operation is touched.
"""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from typing import Any, Iterator


# Below this many elements torch's own draw is as quick as numpy's fixed cost per call (on the
# AMD EPYC here, per mask: 31 us against 31 us at 4,096 elements, 35 us against 56 us at 8,192).
NATIVE_BELOW = 4096

# Once the kernel is replaced, every mask (small ones too) goes through a Python call. That pays only
# when a batch's hidden-state masks are mostly large: batch size x hidden width at or above this
# (16 x 384 for MiniLM). A 2-layer, 32-wide BERT at batch 8 (about 7,700 elements per mask at 30
# tokens) spent 0.38 ms per step in dropout with the replacement against 0.13 ms without it.
FAST_FROM_BATCH_WIDTH = 512


@functools.cache
def slow_cpu_bernoulli() -> bool:
    """True where torch's CPU ``bernoulli_(p)`` draws one random number per element.

    Asked of torch itself rather than guessed from the processor: the one-number-per-element path
    gives the same numbers as the tensor-probability overload (which never uses MKL) from the same
    seed; MKL's generator gives others. A private generator leaves torch's global one untouched.
    """
    import torch

    def draw(p: object) -> object:
        return torch.empty(64).bernoulli_(p, generator=torch.Generator().manual_seed(0))

    return torch.equal(draw(0.5), draw(torch.tensor(0.5, dtype=torch.float64)))


def fast_masks_pay(batch_size: int, hidden_size: int | None) -> bool:
    """Whether a training run's masks are large enough for ``bernoulli_kernel`` to pay for itself."""
    return hidden_size is None or batch_size * hidden_size >= FAST_FROM_BATCH_WIDTH


def bernoulli_into(out: Any, p: float) -> Any:
    """Fill ``out`` in place with 1 with probability ``p`` per element, else 0 (``out.bernoulli_(p)``).

    Each element compares 16 random bits with ``p`` in units of 1/65,536; the bits are PCG64's raw
    64-bit outputs read as four int16 each, and the comparison writes ``out`` directly in its dtype
    (one pass; a bool mask and a copy took twice as long at MiniLM's mask sizes).
    """
    import numpy as np
    import torch

    keep = round(p * 65536)
    if keep >= 65536:  # p within 2**-17 of 1: every element (an int16 threshold cannot say so)
        return out.fill_(1)
    if keep <= 0:
        return out.fill_(0)
    n = out.numel()
    seed = int(torch.randint(0, 2**62, (1,), dtype=torch.int64))
    bits = torch.from_numpy(np.random.PCG64(seed).random_raw((n + 3) // 4).view(np.int16)[:n])
    if out.is_contiguous():
        return torch.lt(bits.view(out.shape), keep - 32768, out=out)
    return out.copy_(bits.view(out.shape) < keep - 32768)


_state = threading.local()  # .on: this thread's masks come from bernoulli_into
_lock = threading.Lock()
_kernel_users = 0  # open bernoulli_kernel() contexts; the replacement stays while there is one
_library: Any = None


def _kernel(self: Any, p: float = 0.5, *, generator: Any = None) -> Any:
    import torch

    if generator is None and self.numel() >= NATIVE_BELOW and 0.0 <= p <= 1.0 and getattr(_state, "on", False):
        return bernoulli_into(self, float(p))
    # torch's own draw: the tensor-probability overload draws the same numbers as the replaced kernel
    return self.bernoulli_(torch.tensor(float(p), dtype=torch.float64), generator=generator)


@contextmanager
def bernoulli_kernel() -> Iterator[None]:
    """While open, the CPU kernel of ``aten::bernoulli_.float`` is ``_kernel`` (for a training run).

    It draws from ``bernoulli_into`` only on a thread inside ``fast_bernoulli()``; every other call
    (other threads, evaluation, an explicit generator, small masks) gets torch's own numbers. A
    ``TorchDispatchMode`` would be the thread-local way, but it calls into Python for every operation
    of the forward (about 600 for MiniLM): a MiniLM training step took 3-8 % longer with it.
    """
    global _kernel_users, _library
    import warnings

    import torch

    with _lock:
        if _kernel_users == 0:
            _library = torch.library.Library("aten", "IMPL")
            try:
                with warnings.catch_warnings():  # torch warns that a built-in kernel is being overridden
                    warnings.simplefilter("ignore")
                    _library.impl("bernoulli_.float", _kernel, "CPU")
            except Exception:  # a torch build that refuses the override keeps its own (slower) draw
                pass
        _kernel_users += 1
    try:
        yield
    finally:
        with _lock:
            _kernel_users -= 1
            if _kernel_users == 0:
                _library._destroy()
                _library = None


@contextmanager
def fast_bernoulli() -> Iterator[None]:
    """While open, CPU ``tensor.bernoulli_(p)`` on this thread uses ``bernoulli_into`` (a training
    forward). Inside ``bernoulli_kernel()`` this only sets a thread-local flag."""
    with bernoulli_kernel():
        was, _state.on = getattr(_state, "on", False), True
        try:
            yield
        finally:
            _state.on = was
