"""One variant of one workload in a fresh process: ``python -m benchmarks.child SPEC.json VARIANT OUT.json``."""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    spec_path, variant, out_path = (argv or sys.argv[1:])[:3]
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
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
    if "phases" in record:
        record["phases"]["import"] = imported
        record["wall_seconds"] += imported
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(record, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
