"""Run a benchmark suite side by side and write JSON plus the table in docs/benchmarks.md.

    python -m benchmarks.run [--suite cpu|gpu|smoke] [--out FILE] [--repeats 3]

Each (workload, variant, repeat) runs in its own process. Repeats are interleaved: every round
runs each workload's variants once, in an order rotated from round to round, so a slow spell on
a shared machine hits all variants alike. Medians are reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import corpus, models, workloads
from .measure import gpu_peak, load_average, machine, training_flops

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"


def work_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_BENCH_DIR", Path(tempfile.gettempdir()) / "workbench-bench"))


def prepare(items: list[workloads.Workload], root: Path) -> dict[str, Path]:
    """Write each workload's data and model once; returns the spec file of each workload."""
    specs = {}
    for w in items:
        spec = w.to_dict()
        spec["model_path"] = models.build(w.model, root / "models")
        spec["data"] = corpus.build(w.corpus, root / "data" / f"{w.corpus}-{w.n_train}-{w.n_eval}",
                                    w.n_train, w.n_eval)
        path = root / "specs" / f"{w.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
        specs[w.name] = path
    return specs


def run_child(spec: Path, variant: str, logs: Path, timeout: float) -> dict:
    from .variants import env_for_child

    out = logs / f"{spec.stem}-{variant}-{time.time_ns()}.json"
    log = out.with_suffix(".log")
    # the child's temporary files (checkpoints, saved models: gigabytes for a 1B model) go to a
    # folder of its own, removed when it ends, so a long suite does not fill the disk
    tmp = Path(tempfile.mkdtemp(prefix=f"{spec.stem}-{variant}-", dir=logs.parent))
    env = env_for_child()
    env.update(TMPDIR=str(tmp), TEMP=str(tmp), TMP=str(tmp))
    with open(log, "w", encoding="utf-8") as f:
        try:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.child", str(spec), variant, str(out)],
                                  cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if rc == 0 and out.exists():
        return json.loads(out.read_text(encoding="utf-8"))
    tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
    return {"workload": spec.stem, "variant": variant, "error": f"exit {rc}", "log_tail": tail}


# ---- summary ------------------------------------------------------------------------------------

def window_stats(rec: dict, peak: float | None) -> dict:
    """Throughput over the timed window (steps warmup+1 .. warmup+steps)."""
    w, n = rec["warmup"], rec["steps"]
    batches = rec["batches"][w:w + n]
    secs = rec["window_seconds"]
    real = sum(b["real"] for b in batches)
    padded = sum(b["padded"] for b in batches)
    examples = sum(b["examples"] for b in batches)
    out = {"step_seconds": secs / n, "tokens_per_second": real / secs, "samples_per_second": examples / secs,
           "padded_tokens_per_second": padded / secs, "pad_fraction": 1 - real / padded if padded else 0.0}
    if peak:
        flops = training_flops(rec["shape"], batches, lora=rec["shape"]["trainable_params"] < rec["shape"]["params"])
        out["mfu"] = flops["flops_6n"] / secs / peak
        if "flops_lora" in flops:
            out["mfu_lora"] = flops["flops_lora"] / secs / peak
    return out


def phase_split(rec: dict) -> dict:
    p = dict(rec["phases"])
    split = {"import": p.get("import", 0.0), "load": p.get("load", 0.0), "tokenize": p.get("tokenize", 0.0),
             "train": p.get("train_total", 0.0), "eval": p.get("eval", 0.0),
             "checkpoint": p.get("checkpoint", 0.0), "save": p.get("save", 0.0),
             "callbacks": p.get("callbacks", 0.0)}
    split["other"] = max(rec["wall_seconds"] - sum(split.values()), 0.0)
    return split


def median(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def round_ratios(windows: dict[str, dict[tuple, dict]], num: str, den: str, field: str) -> list[float]:
    """``field`` of variant ``num`` over that of ``den``, round by round (sorted): the runs of one round
    ran back to back, so each ratio is free of the load drifting between rounds."""
    a, b = windows.get(num, {}), windows.get(den, {})
    return sorted(a[k][field] / b[k][field] for k in a.keys() & b.keys() if a[k].get(field) and b[k].get(field))


def step_by_step_ratio(num: list[dict], den: list[dict]) -> float | None:
    """Step time of ``num`` over ``den`` when both trained on the same batches in the same order: each
    timed step's median over the runs of a variant, summed. A burst of load from outside slows a
    few steps of one run; the median over runs leaves those out, a ratio of whole windows does not."""
    def per_step(rs):
        times = [r.get("step_times") for r in rs]
        if not times or None in times or len({len(t) for t in times}) != 1:
            return None
        return [statistics.median(col) for col in zip(*times)]

    batches = {json.dumps([b["rows"] for b in r["batches"]]) for r in num + den}
    a, b = per_step(num), per_step(den)
    if len(batches) != 1 or a is None or b is None or len(a) != len(b):
        return None
    return sum(a) / sum(b)


def summarize(records: list[dict], peak: float | None) -> dict:
    ok = [r for r in records if "error" not in r]
    by: dict[tuple, list] = {}
    for r in ok:
        r["window"] = window_stats(r, peak if r["device"] == "cuda" else None)
        r["split"] = phase_split(r)
        by.setdefault((r["workload"], r["variant"]), []).append(r)
    table = {}
    for (wl, var), rs in by.items():
        keys = rs[0]["window"].keys()
        row = {k: median([r["window"][k] for r in rs]) for k in keys}
        row["repeats"] = len(rs)
        row["tokens_per_second_range"] = [min(r["window"]["tokens_per_second"] for r in rs),
                                          max(r["window"]["tokens_per_second"] for r in rs)]
        row["wall_seconds"] = median([r["wall_seconds"] for r in rs])
        row["run_train_seconds"] = median([r.get("run_train_seconds") for r in rs])
        row["split"] = {k: median([r["split"][k] for r in rs]) for k in rs[0]["split"]}
        row["metric"] = {"name": rs[0]["metric"]["name"], "value": median([r["metric"]["value"] for r in rs])}
        row["memory"] = {k: median([r["memory"].get(k) for r in rs]) for k in rs[0]["memory"]}
        row["precision"] = rs[0]["precision"]
        row["steps"] = rs[0]["steps"]
        row["batch_signature"] = [b["real"] for b in rs[0]["batches"][:8]]
        table.setdefault(wl, {})[var] = row
    rounds: dict[str, dict[str, dict]] = {}
    for (wl, var), rs in by.items():
        rounds.setdefault(wl, {})[var] = {(r.get("call", 0), r.get("repeat", 0)): r["window"] for r in rs}
    ratios = {}
    for wl, rows in table.items():
        r = {}
        for base in ("B0", "B1"):
            if "P" in rows and base in rows:
                r[f"P/{base} tokens/s"] = rows["P"]["tokens_per_second"] / rows[base]["tokens_per_second"]
                r[f"P/{base} tokens/s per round"] = round_ratios(rounds[wl], "P", base, "tokens_per_second")
        if "P" in rows and "P+compile" in rows:
            r["P+compile/P tokens/s"] = rows["P+compile"]["tokens_per_second"] / rows["P"]["tokens_per_second"]
        if "P" in rows and "B2" in rows:
            r["P/B2 step time"] = rows["P"]["step_seconds"] / rows["B2"]["step_seconds"]
            r["P/B2 step time per round"] = round_ratios(rounds[wl], "P", "B2", "step_seconds")
            r["P and B2 same batches"] = rows["P"]["batch_signature"] == rows["B2"]["batch_signature"]
            r["P/B2 step time, step by step"] = step_by_step_ratio(by[(wl, "P")], by[(wl, "B2")])
        if "P" in rows:
            s, wall = rows["P"]["split"], rows["P"]["wall_seconds"]
            r["P callbacks share of wall"] = s["callbacks"] / wall
            r["P checkpoint share of wall"] = s["checkpoint"] / wall
        ratios[wl] = r
    failures = [{k: r[k] for k in ("workload", "variant", "error", "log_tail")} for r in records if "error" in r]
    return {"table": table, "ratios": ratios, "failures": failures}


# ---- main ---------------------------------------------------------------------------------------

def wait_for_quiet(threshold: float, max_wait: float) -> list | None:
    """Wait (up to ``max_wait`` s) until the 1-minute load average is below ``threshold``."""
    start = time.monotonic()
    while True:
        load = load_average()
        if load is None or load[0] < threshold or time.monotonic() - start > max_wait:
            return load
        print(f"load average {load[0]:.2f} >= {threshold}; waiting", file=sys.stderr, flush=True)
        time.sleep(30)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="cpu", choices=sorted(workloads.SUITES))
    p.add_argument("--out", default=None, help="JSON results file (default: benchmarks/results/<suite>.json)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workloads", default=None, help="comma-separated subset of the suite's workloads")
    p.add_argument("--variants", default=None, help="comma-separated subset of B0,B1,B2,P")
    p.add_argument("--markdown", default=str(DOCS), help="markdown file whose suite section is rewritten ('' for none)")
    p.add_argument("--wait-load", type=float, default=None, help="wait until the 1-min load average is below this")
    p.add_argument("--wait-max", type=float, default=2400.0, help="give up waiting for a quiet machine after this")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per run")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for all runs: a run is not started when the runs so far say it would end after "
                   "this (for a machine lent for a fixed time); the report counts the repeats that ran")
    p.add_argument("--magic", default=None, help="workload to run once more as a %%%%finetune cell under papermill, "
                   "for the notebook display's cost (default: the suite's first classification workload; '' for none)")
    a = p.parse_args(argv)

    items = workloads.get(a.suite, a.workloads.split(",") if a.workloads else None)
    out = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / f"{a.suite}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.json")
    only = a.variants.split(",") if a.variants else None
    if only:
        items = [w for w in items if any(v in only for v in w.variants)]
        if not items:
            p.error(f"--variants {a.variants}: no workload of the {a.suite} suite"
                    f"{' (' + a.workloads + ')' if a.workloads else ''} has any of these variants; "
                    f"known: {', '.join(sorted({v for w in workloads.get(a.suite, None) for v in w.variants}))}")
    root = work_dir()
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"preparing data and models under {root}", file=sys.stderr, flush=True)
    specs = prepare(items, root)
    load_start = wait_for_quiet(a.wait_load, a.wait_max) if a.wait_load else load_average()
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    records = []
    took: dict[tuple, float] = {}  # (workload, variant) -> seconds of its last run
    skipped = []
    for rep in range(a.repeats):
        for w in items:
            variants = [v for v in w.variants if not only or v in only]
            k = rep % len(variants)
            for v in variants[k:] + variants[:k]:  # rotate the order every round
                if a.budget is not None:
                    # this run's last time, else the longest of its workload's runs so far (a
                    # compiled run of one model says nothing about another model's plain run)
                    guess = took.get((w.name, v), max((t for (n, _), t in took.items() if n == w.name),
                                                      default=0.0))
                    if time.monotonic() - t0 + guess > a.budget:
                        skipped.append({"workload": w.name, "variant": v, "round": rep + 1})
                        print(f"round {rep + 1}/{a.repeats}: {w.name} {v} skipped: it would end after the "
                              f"{a.budget:.0f}-s budget", file=sys.stderr, flush=True)
                        continue
                print(f"round {rep + 1}/{a.repeats}: {w.name} {v}", file=sys.stderr, flush=True)
                started_run = time.monotonic()
                rec = run_child(specs[w.name], v, logs, a.timeout)
                took[(w.name, v)] = time.monotonic() - started_run
                rec["repeat"] = rep
                records.append(rec)
                partial.write_text(json.dumps(records, default=str), encoding="utf-8")  # survives a cut-off
                if "error" in rec:
                    print(f"  failed: {rec['error']}: {' | '.join(rec['log_tail'][-3:])}", file=sys.stderr)
    magic = None
    if skipped:
        print(f"{len(skipped)} run(s) skipped for the budget", file=sys.stderr)
    name = a.magic if a.magic is not None else next((w.name for w in items if w.task == "text-classification"), "")
    if name and name in specs:
        print(f"notebook: {name} through %%finetune under papermill", file=sys.stderr, flush=True)
        magic = run_child(specs[name], "P-magic", logs, a.timeout)
    info = machine()
    peak = gpu_peak(info.get("gpu"))
    result = {"suite": a.suite, "started": started.isoformat(timespec="seconds"),
              "seconds": round(time.monotonic() - t0, 1), "load_start": load_start, "load_end": load_average(),
              "machine": info, "peak_flops": peak, "repeats": a.repeats,
              "workloads": [w.to_dict() for w in items], **summarize(records, peak), "magic": magic,
              "budget": a.budget, "skipped": skipped,
              "records": records}
    out.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    partial.unlink(missing_ok=True)
    print(f"wrote {out}", file=sys.stderr)
    if a.markdown:
        from .report import write_section

        write_section(Path(a.markdown), a.suite, result)
        print(f"updated {a.markdown}", file=sys.stderr)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
