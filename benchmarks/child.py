"""One variant of one workload in a fresh process: ``python -m benchmarks.child SPEC.json VARIANT OUT.json``."""

from __future__ import annotations

import json
import os
import sys
import time

# The Trainer scripts and the hand-written loop run with oneDNN's own kernel cache size, as a script
# that does not import workbench has it (the harness itself imports workbench, which sets a larger
# one for the processes it starts; see workbench/_onednn.py). It is read when torch builds its first
# kernel, so before any import.
ONEDNN_DEFAULT_CACHE = "1024"


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    spec_path, variant, out_path = (argv or sys.argv[1:])[:3]
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    if not variant.startswith("P"):
        os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = ONEDNN_DEFAULT_CACHE
    # the libraries every variant needs, timed as the import phase (workbench's own for P)
    import datasets  # noqa: F401
    import torch  # noqa: F401
    from transformers import Trainer  # noqa: F401

    from .variants import VARIANTS

    if variant.startswith("P"):
        import workbench.engine.run  # noqa: F401
        from workbench import tasks

        tasks.get(spec["task"])

    imported = time.perf_counter() - t0
    record = VARIANTS[variant](spec)
    record["onednn_cache"] = os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    if "phases" in record:
        record["phases"]["import"] = imported
        record["wall_seconds"] += imported
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(record, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
