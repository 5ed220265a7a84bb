"""Where bundled files live, in a source checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """Template notebooks: ``workbench/templates`` in a wheel, ``templates/`` in a checkout."""
    installed = PACKAGE_DIR / "templates"
    if installed.is_dir():
        return installed
    return PACKAGE_DIR.parent / "templates"


def list_templates() -> list[Path]:
    return sorted(templates_dir().glob("*.ipynb"))
