"""workbench: fine-tune pretrained Transformers on your domain, from notebooks, the CLI or Python.

Import-light on purpose: torch and transformers load only when a run starts.
"""

from __future__ import annotations

from typing import Any

from ._onednn import reserve_kernel_cache
from ._version import __version__

reserve_kernel_cache()  # before torch builds its first CPU matmul kernel (see _onednn)

__all__ = ["__version__", "finetune", "search", "Run", "resolve", "RunConfig", "panel", "load_ipython_extension"]


def __getattr__(name: str) -> Any:
    if name in ("finetune", "Run"):
        from . import api

        return getattr(api, name)
    if name == "search":
        from .tuning import search

        return search
    if name in ("resolve", "RunConfig"):
        from . import config

        return getattr(config, name)
    if name == "panel":  # workbench.panel() is the widget control panel, workbench.ui.Panel
        from .ui.panel import Panel

        return Panel
    if name == "ui":  # workbench.ui.Panel(...) after a plain `import workbench`, as the docs write it
        from importlib import import_module

        return import_module(".ui", __name__)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext workbench`` registers %%finetune, %finetune_runs and %finetune_compare."""
    from .magics import load_ipython_extension as _load

    _load(ipython)
