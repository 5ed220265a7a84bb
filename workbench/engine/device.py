"""Device and precision choice, and the facts about the machine a run records."""

from __future__ import annotations

import os
import platform
from functools import lru_cache


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls run ~4x fp32 there; elsewhere bf16 on CPU is a slowdown."""
    flags = cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def choose_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def choose_precision(requested: str, device: str) -> str:
    import torch

    if requested != "auto":
        if requested == "fp16" and device == "cpu":
            return "bf16" if cpu_has_fast_bf16() else "fp32"
        return requested
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def hardware() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_bf16": cpu_has_fast_bf16(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def versions() -> dict:
    from importlib import metadata

    out = {}
    for pkg in ("workbench", "torch", "transformers", "accelerate", "datasets", "evaluate", "peft", "tokenizers",
                "scikit-learn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def launched_processes() -> int:
    """How many processes a launcher (torchrun, accelerate launch) started for this run: its
    WORLD_SIZE, 1 for a run started on its own."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def is_main_process() -> bool:
    """Whether this process reports a run: always, except the other processes of a multi-process launch."""
    return launched_processes() == 1 or os.environ.get("RANK", "0") == "0"
