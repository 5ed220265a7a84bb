"""A folder to carry to a GPU machine that has torch and transformers but no network.

    python -m benchmarks.kit [DIR] [--python-version 3.12] [--no-wheels]   # here, with PyPI reachable
    bash benchmarks/gpu_run.sh [BUDGET_SECONDS]                            # there, from a checkout

``DIR`` (default ``.gpu``, ignored by git) gets:

- ``whl/``: wheels of the Python libraries such a machine usually lacks (datasets, evaluate, peft,
  accelerate and datasets' dill and multiprocess), at the versions installed here, downloaded for the
  GPU machine's Python with ``pip download`` (dependencies are not resolved: the GPU image already has
  pyarrow, pandas, numpy, fsspec and the rest);
- ``bench/``: the GPU and smoke suites' data and MiniLM's tokenizer, so the random-weight models are
  built there from their configs (``WORKBENCH_BENCH_DIR`` points there on the GPU machine).

``benchmarks/gpu_run.sh`` installs the wheels into a private folder, then runs the GPU tests, the loss
microbenchmark and the GPU suite within a time budget, and writes everything to ``$OUT``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from pathlib import Path

from . import corpus, models, workloads

ROOT = Path(__file__).resolve().parent.parent
# what the lent GPU machines' image lacked (it has torch, transformers, huggingface_hub, numpy,
# pandas, pyarrow, fsspec, ...): the libraries workbench needs beyond those, and datasets' own two
WHEELS = ("datasets", "evaluate", "peft", "accelerate", "dill", "multiprocess")


def pins(packages: tuple[str, ...] = WHEELS) -> list[str]:
    """``name==version`` for each package, at the version installed here (the one the CPU suite and the
    tests ran with); a package missing here is an error that says how to install it."""
    out = []
    for name in packages:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit(f"{name} is not installed in this Python ({sys.executable}); install the "
                             "project first (make install-test) or name the packages with --packages") from None
    return out


def download_command(dest: Path, python_version: str, packages: tuple[str, ...] = WHEELS) -> list[str]:
    """The ``pip download`` call for the wheels: binary only, for the target Python, without dependencies."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--python-version", python_version, "--dest", str(dest), *pins(packages)]


def prepare_bench(root: Path, suites: tuple[str, ...] = ("gpu", "smoke")) -> list[Path]:
    """The suites' data and the tokenizer under ``root``; the models are left to the GPU machine (a
    1B-parameter random-weight model is quicker to build there than to carry)."""
    made = []
    for suite in suites:
        for w in workloads.SUITES[suite]:
            paths = corpus.build(w.corpus, root / "data" / f"{w.corpus}-{w.n_train}-{w.n_eval}", w.n_train, w.n_eval)
            made.extend(Path(p) for p in paths.values())
    made.append(models.tokenizer_dir(root / "models"))
    return sorted(set(made))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.kit", description=__doc__.splitlines()[0])
    p.add_argument("dir", nargs="?", default=str(ROOT / ".gpu"), help="the folder to fill (default: .gpu)")
    p.add_argument("--python-version", default="3.12", help="the GPU machine's Python (major.minor)")
    p.add_argument("--packages", default=",".join(WHEELS), help="comma-separated wheels to download")
    p.add_argument("--no-wheels", action="store_true", help="only the bench folder (no network)")
    a = p.parse_args(argv)
    kit = Path(a.dir)
    packages = tuple(x for x in a.packages.split(",") if x)
    if not a.no_wheels:
        whl = kit / "whl"
        whl.mkdir(parents=True, exist_ok=True)
        cmd = download_command(whl, a.python_version, packages)
        print(" ".join(cmd), file=sys.stderr, flush=True)
        if subprocess.run(cmd).returncode != 0:
            raise SystemExit(f"pip download failed (above); the wheels are needed in {whl} on a machine without "
                             "network, or run with --no-wheels where the GPU machine already has them")
    print(f"preparing the GPU and smoke suites' data under {kit / 'bench'}", file=sys.stderr, flush=True)
    prepare_bench(kit / "bench")
    print(f"ready: {kit}. On the GPU machine, from a checkout with {kit} in it: bash benchmarks/gpu_run.sh",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
