"""The labextension's TypeScript unit tests (jest), run as part of the Python suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[2] / "extension"


@pytest.mark.timeout(300)
def test_jest_suite_passes():
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    jlpm = shutil.which("jlpm", path=path)
    assert jlpm, "jlpm not found: it comes with jupyterlab (pip install -e '.[test]')"
    if not (EXTENSION / "node_modules" / ".bin" / "jest").exists():
        pytest.fail("extension/node_modules is missing: `make test` installs it (or `cd extension && jlpm install`)")
    result = subprocess.run([jlpm, "jest", "--ci", "--silent"], cwd=EXTENSION, capture_output=True, text=True,
                            env={**os.environ, "PATH": path, "CI": "true"}, timeout=280)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    assert "Tests:" in report and "failed" not in report.split("Tests:")[1].splitlines()[0], report[-3000:]
