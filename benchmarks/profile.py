"""Where a variant's training steps spend their time: torch.profiler over its timed steps.

    python -m benchmarks.profile WORKLOAD [--suite cpu|gpu|smoke] [--variant P] [--steps 5] [--out DIR]

Runs one variant of one workload in this process, exactly as ``benchmarks.run`` does (same spec,
same code), with ``--steps`` timed steps after the workload's warm-up steps, and profiles those steps
only. It prints and writes to ``DIR/<workload>-<variant>.md`` the operators by self time (GPU time
on a GPU, host time otherwise) and writes ``DIR/<workload>-<variant>.json`` with the step time and,
on a GPU, the share of it the GPU spent in kernels: a low share with a short step says the GPU waits
for the host (Python, kernel launches, synchronisations), the usual reason for a low MFU on small
models. ``--trace`` also writes a Chrome trace (chrome://tracing or Perfetto).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import measure, run, variants, workloads


class ProfiledSteps:
    """Starts ``torch.profiler`` at the end of step ``start`` and stops it at the end of step ``stop``,
    hooked into the harness's step clock (every variant stamps each step's end there)."""

    def __init__(self, start: int, stop: int, cuda: bool):
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        self.prof = profile(activities=acts)
        self.start, self.stop, self.cuda = start, stop, cuda
        self.wall: float | None = None
        self._t0 = 0.0

    def step_end(self, step: int) -> None:
        if step not in (self.start, self.stop):
            return
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        if step == self.start:
            self.prof.__enter__()
            self._t0 = time.perf_counter()
        elif self.wall is None and self._t0:
            self.wall = time.perf_counter() - self._t0
            self.prof.__exit__(None, None, None)


def profile_variant(spec: dict, variant: str, steps: int, trace: Path | None = None) -> dict:
    """Run ``variant`` on ``spec`` with ``steps`` timed steps, profiling them; returns the summary, the
    operator table and each operator's number of calls."""
    from torch.autograd import DeviceType

    spec = {**spec, "steps": steps}
    cuda = variants.device() == "cuda"
    hook = ProfiledSteps(spec["warmup"], spec["warmup"] + steps, cuda)
    original = measure.Clock.step_end

    def step_end(self, step):
        original(self, step)
        hook.step_end(step)

    measure.Clock.step_end = step_end
    try:
        record = variants.VARIANTS[variant](spec)
    finally:
        measure.Clock.step_end = original
    if hook.wall is None:
        raise SystemExit(f"{spec['name']} {variant}: the run ended before step {hook.stop}; nothing was profiled")
    events = hook.prof.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    table = events.table(sort_by=key, row_limit=30)
    # GPU time: the rows of device events only (kineto also reports each kernel's time on the CPU
    # operator that launched it; torch's own table total counts the same way)
    kernel_us = sum(e.self_device_time_total for e in events if e.device_type != DeviceType.CPU) if cuda else None
    host_us = sum(e.self_cpu_time_total for e in events)
    if trace is not None:
        hook.prof.export_chrome_trace(str(trace))
    step_s = hook.wall / steps
    summary = {"workload": spec["name"], "variant": variant, "device": record.get("device"),
               "precision": record.get("precision"), "steps": steps, "step_seconds": round(step_s, 6),
               "host_op_seconds_per_step": round(host_us / 1e6 / steps, 6),
               "gpu_kernel_seconds_per_step": None if kernel_us is None else round(kernel_us / 1e6 / steps, 6),
               "gpu_busy_share": None if kernel_us is None else round(kernel_us / 1e6 / hook.wall, 4),
               "sorted_by": key}
    return {"summary": summary, "table": table, "calls": {e.key: e.count for e in events}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.splitlines()[0])
    p.add_argument("workload")
    p.add_argument("--suite", default=None, help="the suite that has the workload (default: the first that does)")
    p.add_argument("--variant", default="P", help="B0, B1, B2, P or P+compile")
    p.add_argument("--steps", type=int, default=5, help="timed steps to profile (after the workload's warm-up)")
    p.add_argument("--out", default="benchmarks/results/profiles", help="folder for the table and the summary")
    p.add_argument("--trace", action="store_true", help="also write a Chrome trace")
    a = p.parse_args(argv)
    suites = [a.suite] if a.suite else list(workloads.SUITES)
    found = [w for s in suites for w in workloads.SUITES.get(s, []) if w.name == a.workload]
    if not found:
        known = sorted({w.name for s in suites for w in workloads.SUITES.get(s, [])})
        p.error(f"no workload {a.workload!r}{' in the ' + a.suite + ' suite' if a.suite else ''}; known: {', '.join(known)}")
    w = found[0]
    if a.variant not in w.variants:
        p.error(f"{w.name} has no variant {a.variant!r}; it has {', '.join(w.variants)}")
    if a.steps < 1:
        p.error("--steps must be at least 1")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{w.name}-{a.variant}"
    spec = json.loads(run.prepare([w], run.work_dir())[w.name].read_text(encoding="utf-8"))
    result = profile_variant(spec, a.variant, a.steps, out / f"{stem}.trace.json" if a.trace else None)
    s = result["summary"]
    head = (f"# {w.name} {a.variant}: {s['steps']} steps on {s['device']} ({s['precision']}), "
            f"{s['step_seconds'] * 1000:.1f} ms per step")
    if s["gpu_busy_share"] is not None:
        head += f", GPU kernels {s['gpu_kernel_seconds_per_step'] * 1000:.1f} ms of it ({s['gpu_busy_share']:.0%})"
    text = f"{head}\n\n```\n{result['table']}\n```\n"
    (out / f"{stem}.md").write_text(text, encoding="utf-8")
    (out / f"{stem}.json").write_text(json.dumps(s, indent=1), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
