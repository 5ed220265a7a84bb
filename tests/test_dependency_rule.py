"""DESIGN.md: the core never imports front-end libraries; `import workbench` stays light."""

import subprocess
import sys

FRONT_END = ["IPython", "ipywidgets", "jupyter_server", "papermill", "nbconvert"]


def modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True, timeout=300)
    return set(out.stdout.split())


def test_core_does_not_import_front_ends():
    mods = modules_after("import workbench.engine.run, workbench.config, workbench.runs, workbench.data, "
                         "workbench.api, workbench.cli, workbench.tasks.text_classification")
    assert "workbench.engine.run" in mods
    leaked = [m for m in FRONT_END if m in mods]
    assert not leaked, leaked


def test_import_workbench_is_light():
    mods = modules_after("import workbench")
    assert "torch" not in mods and "transformers" not in mods
