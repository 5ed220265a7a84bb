"""Markdown for docs/benchmarks.md: one section per suite, rewritten in place between markers."""

from __future__ import annotations

import statistics
from pathlib import Path

VARIANT_NAMES = {"B0": "B0 naive Trainer", "B1": "B1 tuned Trainer", "B2": "B2 hand loop", "P": "P workbench",
                 "P+compile": "P + torch.compile"}
# (ratio key, target text, check)
TARGETS = [
    ("P/B0 tokens/s", "≥ 4× on CPU, ≥ 3× on GPU (long-tailed text)", None),
    ("P/B1 tokens/s", "≥ 1.0×", lambda v: v >= 1.0),
    ("P/B2 step time", "≤ 1.05×", lambda v: v <= 1.05),
    ("P callbacks share of wall", "≤ 1 %", lambda v: v <= 0.01),
    ("P checkpoint share of wall", "≤ 5 %", lambda v: v <= 0.05),
]


def write_section(path: Path, name: str, result_or_text: dict | str) -> None:
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    inner = result_or_text if isinstance(result_or_text, str) else render(result_or_text)
    body = f"{begin}\n{inner.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + body + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def long_tailed(workload: dict) -> bool:
    """Whether the P/B0 target applies: as recorded, or for result files written before the field
    existed, as the suites define the workload of that name."""
    if "long_tailed" in workload:
        return workload["long_tailed"]
    from .workloads import SUITES

    defined = {w.name: w.long_tailed for suite in SUITES.values() for w in suite}
    return defined.get(workload["name"], True)


def _n(v, digits: int = 0) -> str:
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def machine_line(result: dict) -> str:
    m = result["machine"]
    parts = [m.get("cpu", "?"), f"{m.get('cpu_count')} cores ({m.get('torch_threads')} torch threads)"]
    if m.get("cpu_bf16"):
        parts.append("CPU bf16: " + ", ".join(m["cpu_bf16"]))
    if m.get("gpu"):
        parts.append(f"GPU: {m['gpu']} ({m.get('gpu_memory_gb')} GB, CUDA {m.get('cuda')})")
        if m.get("nvidia_smi"):
            parts.append(f"nvidia-smi: {m['nvidia_smi']}")
    parts.append(f"{m.get('memory_gb')} GB RAM, torch {m.get('torch')}, transformers {m.get('transformers')}, "
                 f"Python {m.get('python')}")
    return "; ".join(parts)


def render(result: dict) -> str:
    lines = [
        f"Measured {result['started']} by `python -m benchmarks.run --suite {result['suite']}`"
        f"{' in ' + str(result['calls']) + ' calls' if result.get('calls', 1) > 1 else ''} "
        f"({'up to ' if result.get('skipped') else ''}{result['repeats']} interleaved repeats, medians; "
        f"{result['seconds'] / 60:.1f} min in all).",
        "",
        f"Machine: {machine_line(result)}.",
        f"Load average (1, 5, 15 min) at start: {result.get('load_start')}; at end: {result.get('load_end')}.",
        "",
    ]
    gpu = bool(result.get("peak_flops"))
    for w in result["workloads"]:
        rows = result["table"].get(w["name"], {})
        lines += [f"#### {w['name']}: {w['description']}", "",
                  f"max_length {w['max_length']}, batch {w['batch_size']}, learning rate {w['learning_rate']}, "
                  f"{w['n_train']} training rows; {w['warmup']} untimed steps, then {w['steps']} timed "
                  f"(B0: {w['b0_steps']}).", ""]
        head = ("| variant | precision | real tokens/s (range) | samples/s | padding | s/step |"
                + (" MFU |" if gpu else "") + " peak memory | metric | wall s: import / load / tokenize / train / "
                "eval / checkpoint / save / callbacks |")
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for v in w["variants"]:
            r = rows.get(v)
            if r is None:
                lines.append(f"| {VARIANT_NAMES.get(v, v)} | failed or not run |" + " |" * (head.count("|") - 3))
                continue
            s = r["split"]
            mem = r["memory"].get("gpu_max_allocated_mb") or r["memory"].get("cpu_max_rss_mb")
            metric = r["metric"]
            mfu = ""
            if gpu:
                mfu = f" {_pct(r.get('mfu'))}" + (f" (LoRA work: {_pct(r.get('mfu_lora'))})" if r.get("mfu_lora") else "") + " |"
            lo, hi = r["tokens_per_second_range"]
            runs = "" if r.get("repeats", result["repeats"]) >= result["repeats"] else \
                f" ({r['repeats']} of {result['repeats']} runs)"
            lines.append(
                f"| {VARIANT_NAMES.get(v, v)}{runs} | {r['precision']} | {_n(r['tokens_per_second'])} ({_n(lo)}–{_n(hi)}) | "
                f"{_n(r['samples_per_second'], 1)} | {_pct(r['pad_fraction'])} | {r['step_seconds']:.3f} |{mfu} "
                f"{_n(mem)} MB | {metric['name']} {_n(metric['value'], 3)} | "
                f"{s['import']:.1f} / {s['load']:.1f} / {s['tokenize']:.1f} / {s['train']:.1f} / {s['eval']:.1f} / "
                f"{s['checkpoint']:.1f} / {s['save']:.1f} / {s['callbacks']:.2f} |")
        lines.append("")
    lines += ["#### Ratios against the targets", "",
              "| workload | " + " | ".join(f"{k} (target {t})" for k, t, _ in TARGETS) + " | P and B2 same batches |",
              "|---|" + "---|" * (len(TARGETS) + 1)]
    for w in result["workloads"]:
        r = result["ratios"].get(w["name"], {})
        cells = []
        for key, _, ok in TARGETS:
            v = r.get(key)
            if v is None:
                cells.append("–")
                continue
            text = _pct(v) if "share" in key else f"{v:.2f}×"
            if key == "P/B0 tokens/s":
                if not long_tailed(w):
                    cells.append(f"{text} (no target: not long-tailed text)")
                    continue
                ok = (lambda x: x >= 3.0) if gpu else (lambda x: x >= 4.0)
            per_round = r.get(f"{key} per round") or []
            spread = (f" (per round {min(per_round):.2f}–{max(per_round):.2f}, median "
                      f"{statistics.median(per_round):.2f})" if len(per_round) > 1 else "")
            cells.append(f"{text} {'met' if ok(v) else 'not met'}{spread}")
        same = r.get("P and B2 same batches")
        lines.append(f"| {w['name']} | " + " | ".join(cells) + f" | {'yes' if same else ('no' if same is False else '–')} |")
    paired = [(w["name"], result["ratios"].get(w["name"], {}).get("P/B2 step time, step by step"))
              for w in result["workloads"]]
    paired = [(n, v) for n, v in paired if v is not None]
    if paired:
        lines += ["", "P/B2 step time, step by step (P and B2 train on the same batches in the same order; each "
                      "timed step's median over the runs, summed, which leaves out bursts of outside load that "
                      "slow single steps of single runs): " + ", ".join(f"{n} {v:.2f}×" for n, v in paired) + "."]
    magic = result.get("magic")
    if magic and "error" not in magic:
        p_row = result["table"].get(magic["workload"], {}).get("P", {})
        lines += ["", f"Through the notebook front end ({magic['workload']} as a `%%finetune` cell executed by "
                      f"papermill, once): the live display (HTML progress and SVG chart, updated in place) spent "
                      f"{magic['ui_seconds']:.3f} s of the run's {magic['elapsed_seconds']:.1f} s "
                      f"({_pct(magic['ui_share_of_run'])}; target ≤ 1 %). Training took "
                      f"{magic['train_seconds']:.1f} s there and {_n(p_row.get('run_train_seconds'), 1)} s (median) "
                      f"through the Python API; the whole notebook, kernel start included, "
                      f"{magic['notebook_seconds']:.1f} s."]
    elif magic:
        lines += ["", f"The `%%finetune` notebook run failed: {magic['error']} ({' | '.join(magic['log_tail'][-2:])})"]
    never = list(dict.fromkeys(f"{x['workload']} {x['variant']}" for x in result.get("skipped", [])
                               if x["variant"] not in result["table"].get(x["workload"], {})))
    if result.get("skipped"):
        lines += ["", "Runs were left out to stay within the time budget (`--budget`) of the call: rows marked "
                      "(k of n runs) have fewer runs than asked" + (", and these have none: " + ", ".join(never)
                                                                     if never else "") + "."]
    if result.get("failures"):
        lines += ["", "Runs that failed:", ""]
        for f in result["failures"]:
            lines.append(f"- {f['workload']} {f['variant']}: {f['error']} ({' | '.join(f['log_tail'][-2:])})")
    return "\n".join(lines)


def merge(results: list[dict]) -> dict:
    """One result from several calls of the same suite (e.g. one GPU call per workload): the runs of
    all calls are summarized together, so a workload measured in two calls gets one row per variant."""
    from .run import summarize

    out = dict(results[0])
    # a round is a repeat within one call: runs of different calls are not paired with each other
    records = [{**x, "call": i} for i, r in enumerate(results) for x in r.get("records", [])]
    out["records"] = records
    out.update(summarize(records, next((r["peak_flops"] for r in results if r.get("peak_flops")), None)))
    seen: set[str] = set()
    out["workloads"] = [w for r in results for w in r.get("workloads", [])
                        if not (w["name"] in seen or seen.add(w["name"]))]
    out["skipped"] = [x for r in results for x in r.get("skipped", [])]
    out["repeats"] = max(r.get("repeats", 1) for r in results)
    out["calls"] = sum(r.get("calls", 1) for r in results)
    out["seconds"] = sum(r["seconds"] for r in results)
    out["load_end"] = results[-1].get("load_end")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.report SUITE RESULT.json [...]``: rewrite the suite's section of docs/benchmarks.md."""
    import json
    import sys

    from .run import DOCS

    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print(main.__doc__, file=sys.stderr)
        return 2
    results = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args[1:]]
    write_section(DOCS, args[0], merge(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
