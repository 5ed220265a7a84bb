"""Room for the CPU matmul kernels that dynamically padded batches need, set before torch makes any.

On a CPU, torch runs bf16 matmuls through oneDNN, which builds (JIT-compiles) a kernel for every
new problem shape, about 0.5 to 3 ms each on a 2-core Xeon with AMX, and keeps the last 1,024 in
an LRU cache. With dynamic padding every sequence length is a new set of shapes: the linear
layers' forward and two backward products (about 8 kernels per length for a BERT, counted in
oneDNN's log), and with eager attention (``engine/attention.py``) six batched attention products
more. Past about 70 distinct lengths the cache overflows, the least recently used kernels are dropped while they are still in
use, and from then on most steps rebuild their kernels (oneDNN's verbose log reports a
``create:cache_miss`` per rebuild). Training steps of a MiniLM-sized BERT (6 layers, 384 wide,
batch 16, bf16) over the 113 lengths 16 to 128, one step each, three passes: 46 s per pass with
1,024 kernels, 35 s with 4,096 (and a lower peak resident memory: 3.8 against 4.9 GB); a 2-layer,
32-wide BERT over 61 lengths took 1.9 s per pass with 1,024 against 1.0 s with 8,192.

oneDNN reads its cache size (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``) once, when torch builds its
first kernel, and torch does not expose oneDNN's call that changes it later, so this is set when
workbench is imported (a value already in the environment is kept). A notebook that ran bf16
matmuls before importing workbench keeps oneDNN's default until its kernel restarts. The Jupyter
server extension removes workbench's value again (``release_for_children``), so that only kernels
that import workbench have it.
"""

from __future__ import annotations

import os

CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
# MiniLM over 3 epochs at max_length 256 (242 lengths) built 2,865 kernels, so 4,096 covers the
# default max_length of 128 with room to spare; 8,192 was no faster there, and each cached kernel
# holds memory
CACHE_CAPACITY = 4096


# whether this process's value is workbench's (not the user's)
set_here = False


def reserve_kernel_cache() -> None:
    global set_here
    if CACHE_VARIABLE not in os.environ:
        os.environ[CACHE_VARIABLE] = str(CACHE_CAPACITY)
        set_here = True


def release_for_children() -> None:
    """Leave oneDNN's default to processes started from here (a Jupyter server's kernels): a
    notebook that imports workbench gets the larger cache itself, and one that does not keeps its
    own setting."""
    global set_here
    if set_here:
        os.environ.pop(CACHE_VARIABLE, None)
        set_here = False
