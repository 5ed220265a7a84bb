"""Side-by-side speed harness: workbench against plain Trainer scripts and a hand-written loop.

``python -m benchmarks.run --suite cpu`` measures; ``python -m benchmarks.tta`` times how long a run
takes to reach a target accuracy. Results land in ``docs/benchmarks.md``.
"""
