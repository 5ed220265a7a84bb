"""jupyter_server extension: the runs directory and template notebooks over authenticated JSON routes.

Enabled by the wheel's ``etc/jupyter/jupyter_server_config.d/workbench.json``; by hand with
``jupyter server extension enable workbench.server``. Configure with ``c.WorkbenchServer.runs_dir``.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "workbench.server"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from .handlers import setup_handlers

    setup_handlers(server_app)
