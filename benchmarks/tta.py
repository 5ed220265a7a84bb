"""Time to a target accuracy: MiniLM on BBC News, workbench defaults against a plain Trainer script.

    python -m benchmarks.tta [--target 0.95] [--eval-steps 10] [--variants P,B0] [--set train.batch_size=32 ...]

Both train on the same rows (workbench's own seeded, stratified split of ``bbc-news``, written to
CSV), with the demo's settings (max_length 128, batch 16, learning rate 1e-4, one epoch) and
validation accuracy measured every ``--eval-steps`` steps. Reported: training seconds (evaluation
pauses excluded) and wall seconds from process start until validation accuracy first reaches the
target. Each variant runs in its own process, one after the other.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEMO = {"max_length": 128, "batch_size": 16, "learning_rate": 1e-4, "epochs": 1.0, "seed": 42}


def write_splits(dest: Path) -> dict[str, str]:
    """workbench's own split of bbc-news (the demo's), as CSV files both variants read."""
    from workbench.config import resolve
    from workbench.tasks import get

    cfg = resolve(inline={"data": {"train": "bbc-news"}})
    splits = get("text-classification")(cfg).load_data()
    dest.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in splits.items():
        paths[name] = str(dest / f"{name}.csv")
        with open(paths[name], "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(zip(frame["text"], frame["label"]))
    return paths


class Timeline:
    """Training seconds (evaluation excluded) and wall seconds at each validation evaluation."""

    def __init__(self, t_process: float):
        self.t_process = t_process
        self.t_train: float | None = None
        self.eval_seconds = 0.0
        self.points: list[dict] = []

    def install(self):
        from transformers import Trainer
        from transformers.trainer_callback import CallbackHandler

        timeline = self
        evaluate, call_event = Trainer.evaluate, CallbackHandler.call_event

        def timed_evaluate(trainer, *a, **kw):
            start = time.perf_counter()
            metrics = evaluate(trainer, *a, **kw)
            end = time.perf_counter()
            if timeline.t_train is not None and kw.get("metric_key_prefix", "eval") == "eval":
                acc = next((v for k, v in metrics.items() if k.endswith("_accuracy")), None)
                timeline.points.append({"step": trainer.state.global_step, "accuracy": acc,
                                        "train_seconds": start - timeline.t_train - timeline.eval_seconds,
                                        "wall_seconds": end - timeline.t_process})
                timeline.eval_seconds += end - start
            return metrics

        def on_event(handler, event, *a, **kw):
            if event == "on_train_begin" and timeline.t_train is None:
                timeline.t_train = time.perf_counter()
            return call_event(handler, event, *a, **kw)

        Trainer.evaluate, CallbackHandler.call_event = timed_evaluate, on_event

    def first_reaching(self, target: float) -> dict | None:
        return next((p for p in self.points if p["accuracy"] is not None and p["accuracy"] >= target), None)


def run_workbench(paths: dict, settings: dict, eval_steps: int, timeline: Timeline) -> dict:
    from workbench import finetune

    cfg = {"task": "text-classification", "model": "minilm", "baseline": False, "name": "tta",
           "runs_dir": tempfile.mkdtemp(prefix="tta-runs-"),
           "data": {"train": paths["train"], "validation": paths["validation"], "test": paths["test"]},
           "train": {**settings, "eval_strategy": "steps", "eval_steps": eval_steps, "save_checkpoints": False}}
    run = finetune(cfg)
    return {"test_accuracy": run.metrics.get("accuracy"), "precision": run.info.get("precision")}


def run_plain(paths: dict, settings: dict, eval_steps: int, timeline: Timeline) -> dict:
    """The plain Trainer script: pad to max_length, fp32, Trainer defaults, same hyperparameters."""
    import datasets
    import numpy as np
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from .models import minilm_path

    tok = AutoTokenizer.from_pretrained(minilm_path())

    def load(split: str, names: list | None = None):
        with open(paths[split], newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        names = names or sorted({r["label"] for r in rows})
        enc = tok([r["text"] for r in rows], padding="max_length", truncation=True, max_length=settings["max_length"])
        return datasets.Dataset.from_dict({**enc, "labels": [names.index(r["label"]) for r in rows]}), names

    train, names = load("train")
    validation, _ = load("validation", names)
    test, _ = load("test", names)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=len(names))
    args = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="tta-plain-"), report_to="none",
                             per_device_train_batch_size=settings["batch_size"],
                             learning_rate=settings["learning_rate"], num_train_epochs=settings["epochs"],
                             seed=settings["seed"], weight_decay=0.01, warmup_steps=0.06, eval_strategy="steps",
                             eval_steps=eval_steps, save_strategy="no", use_cpu=True)

    def accuracy(p):
        return {"accuracy": float((np.asarray(p.predictions).argmax(-1) == p.label_ids).mean())}

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=validation, processing_class=tok,
                      compute_metrics=accuracy)
    trainer.train()
    test_metrics = trainer.evaluate(test, metric_key_prefix="test")
    return {"test_accuracy": test_metrics["test_accuracy"], "precision": "fp32"}


def child(variant: str, spec_path: str, out_path: str) -> int:
    t0 = time.perf_counter()
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    timeline = Timeline(t0)
    timeline.install()
    fn = run_workbench if variant == "P" else run_plain
    res = fn(spec["paths"], spec["settings"], spec["eval_steps"], timeline)
    hit = timeline.first_reaching(spec["target"])
    Path(out_path).write_text(json.dumps({"variant": variant, **res, "points": timeline.points,
                                          "reached": hit, "wall_seconds": time.perf_counter() - t0}),
                              encoding="utf-8")
    return 0


def render(result: dict) -> str:
    s = result["settings"]
    lines = [f"Measured {result['started']} by `python -m benchmarks.tta` on the CPU machine described above "
             f"(load average at start {result['load_start']}, at end {result['load_end']}).",
             "",
             f"MiniLM on BBC News (workbench's seeded split: {result['sizes']}), max_length {s['max_length']}, "
             f"batch {s['batch_size']}, learning rate {s['learning_rate']}, {s['epochs']:g} epoch, validation "
             f"accuracy every {result['eval_steps']} steps. Target: validation accuracy ≥ {result['target']}.",
             "",
             "| variant | precision | training s to target (evaluation excluded) | wall s to target (from process "
             "start) | at step | test accuracy after the epoch | total wall s |",
             "|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        hit = r.get("reached")
        name = {"P": "P workbench defaults", "B0": "plain Trainer script"}.get(r["variant"], r["variant"])
        lines.append(f"| {name} | {r.get('precision')} | {hit['train_seconds']:.0f} | {hit['wall_seconds']:.0f} | "
                     f"{hit['step']} | {r['test_accuracy']:.3f} | {r['wall_seconds']:.0f} |" if hit else
                     f"| {name} | {r.get('precision')} | not reached | not reached | – | "
                     f"{r.get('test_accuracy', float('nan')):.3f} | {r['wall_seconds']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child(*argv[1:4])
    p = argparse.ArgumentParser(prog="python -m benchmarks.tta", description=__doc__.splitlines()[0])
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--eval-steps", type=int, default=10)
    p.add_argument("--variants", default="P,B0")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="change a demo setting (both variants)")
    p.add_argument("--out", default=None)
    p.add_argument("--markdown", default=None, help="write the table into this file's 'tta' section")
    a = p.parse_args(argv)

    from .measure import load_average
    from .run import ROOT, work_dir
    from .variants import env_for_child

    settings = dict(DEMO)
    for item in a.set:
        key, value = item.split("=", 1)
        settings[key.removeprefix("train.")] = type(DEMO[key.removeprefix("train.")])(value)
    root = work_dir() / "tta"
    paths = write_splits(root / "data")
    spec = root / "spec.json"
    spec.write_text(json.dumps({"paths": paths, "settings": settings, "eval_steps": a.eval_steps,
                                "target": a.target}), encoding="utf-8")
    import datetime as dt

    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    load_start = load_average()
    runs = []
    for variant in a.variants.split(","):
        out = root / f"{variant}.json"
        print(f"time to accuracy: {variant}", file=sys.stderr, flush=True)
        with open(root / f"{variant}.log", "w", encoding="utf-8") as log:
            subprocess.run([sys.executable, "-m", "benchmarks.tta", "--child", variant, str(spec), str(out)],
                           cwd=ROOT, env=env_for_child(), stdout=log, stderr=subprocess.STDOUT, check=True)
        runs.append(json.loads(out.read_text(encoding="utf-8")))
    sizes = {}
    for k, v in paths.items():
        with open(v, newline="", encoding="utf-8") as f:
            sizes[k] = sum(1 for _ in csv.DictReader(f))
    result = {"started": started, "load_start": load_start, "load_end": load_average(), "settings": settings,
              "eval_steps": a.eval_steps, "target": a.target, "sizes": sizes, "runs": runs}
    out = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / "tta.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(render(result))
    if a.markdown:
        from .report import write_section

        write_section(Path(a.markdown), "tta", render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
