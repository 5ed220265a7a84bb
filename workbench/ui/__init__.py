"""Notebook front ends: live progress (``live``), the control panel (``panel``), run comparison (``compare``).

Import-light: ipywidgets and matplotlib load when a panel or a chart is first built.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Panel", "RunComparison", "NotebookProgress", "LiveState"]


def __getattr__(name: str) -> Any:
    if name == "Panel":
        from .panel import Panel

        return Panel
    if name == "RunComparison":
        from .compare import RunComparison

        return RunComparison
    if name in ("NotebookProgress", "LiveState"):
        from . import live

        return getattr(live, name)
    raise AttributeError(f"module 'workbench.ui' has no attribute {name!r}")
