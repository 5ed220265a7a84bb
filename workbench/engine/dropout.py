"""Dropout masks from a fast generator on CPUs where torch draws them one number at a time.

On a CPU, torch draws Bernoulli masks (``bernoulli_``: every dropout, including the attention
dropout inside SDPA) with MKL's vectorised generator only on Intel processors; elsewhere (AMD
EPYC/Ryzen, ARM) each element costs one Mersenne-Twister draw. On an AMD EPYC that was about a
fifth of a MiniLM training step at batch 16 x 128 tokens (a torch.profiler trace of the benchmark's
BBC News workload: 20 masks per step, 6 of them 16 x 12 x 128 x 128 attention masks). torch has no
switch for that generator, so while a training forward runs, ``FastBernoulli`` (a
``TorchDispatchMode``, below autograd: gradients are untouched) answers CPU ``bernoulli_(p)`` calls
with numpy's PCG64 instead: 16 bits per element, so p is exact to 1/65,536, from a seed that torch's
own seeded generator gives each call, which keeps runs reproducible from ``train.seed``. Masks of
fewer than ``NATIVE_BELOW`` elements, and every other operation, pass through unchanged.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .device import cpu_vendor


# Below this many elements torch's own draw is quicker than numpy's fixed cost per call (on the
# AMD EPYC here: 25 us against 52 us at 4,096 elements, 97 us against 79 us at 16,384).
NATIVE_BELOW = 8192


def slow_cpu_bernoulli() -> bool:
    """True where torch's CPU ``bernoulli_`` draws one random number per element (not an Intel CPU)."""
    return cpu_vendor() != "GenuineIntel"


def bernoulli_draws(shape: Any, p: float) -> Any:
    """A bool tensor of ``shape``, True with probability ``p`` per element."""
    import math

    import numpy as np
    import torch

    seed = int(torch.randint(0, 2**62, (1,), dtype=torch.int64))
    rng = np.random.Generator(np.random.PCG64(seed))
    draws = rng.integers(-32768, 32767, size=math.prod(shape), dtype=np.int16, endpoint=True)
    return torch.from_numpy(draws).view(tuple(shape)) < round(p * 65536) - 32768


def fast_bernoulli() -> Any:
    """A context manager under which CPU ``tensor.bernoulli_(p)`` uses ``bernoulli_draws``."""
    return _mode()()


@lru_cache(maxsize=1)
def _mode() -> type:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    target = torch.ops.aten.bernoulli_.float

    class FastBernoulli(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is target and args[0].device.type == "cpu" and kwargs.get("generator") is None \
                    and args[0].numel() >= NATIVE_BELOW:
                out = args[0]
                p = args[1] if len(args) > 1 else kwargs.get("p", 0.5)
                return out.copy_(bernoulli_draws(out.shape, float(p)))
            return func(*args, **kwargs)

    return FastBernoulli
