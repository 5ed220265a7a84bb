"""The four ways of training one workload, each run in its own process by ``benchmarks.child``.

* B0 — a naive Trainer script as many notebooks write it: pad every text to max_length, fp32,
  Trainer defaults otherwise (random batches, per-step NaN check, tqdm), no packing for LM.
* B1 — a tuned Trainer script: dynamic padding, length-grouped batches (packed blocks for LM, as
  the transformers language-modelling examples do), bf16 where the hardware has it, fused AdamW,
  SDPA attention, no per-step NaN sync, throttled logging, 4x eval batch.
* B2 — a minimal hand-written PyTorch loop over the same batches as workbench: autocast,
  fused AdamW, linear warmup schedule, gradient clipping; nothing else.
* P — workbench with its defaults, through ``workbench.finetune``.

All share the hyperparameters in ``workloads.py`` and are measured by ``measure.py``.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from . import corpus
from .measure import Clock, CountingCollator, Phases, instrument_trainer

WEIGHT_DECAY = 0.01
WARMUP_RATIO = 0.06
NO_DECAY = ("bias", "LayerNorm.weight", "layernorm", "norm.weight", "ln_")


# ---- shared helpers -----------------------------------------------------------------------------

def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def fast_bf16() -> bool:
    """What a careful script checks before turning bf16 on."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def label_ids(labels: list) -> tuple[list[int], list]:
    names = sorted(set(labels))
    index = {v: i for i, v in enumerate(names)}
    return [index[v] for v in labels], names


def pack(rows: list[list[int]], block: int) -> list[list[int]]:
    """Concatenate tokenized texts and cut the stream into ``block``-token pieces (last one kept)."""
    stream = [t for row in rows for t in row]
    return [stream[i:i + block] for i in range(0, len(stream), block)]


def model_class(task: str):
    import transformers

    return {"text-classification": transformers.AutoModelForSequenceClassification,
            "masked-lm": transformers.AutoModelForMaskedLM,
            "causal-lm": transformers.AutoModelForCausalLM}[task]


def load_model(spec: dict, model_path: str, n_labels: int, attn: str | None):
    kw: dict[str, Any] = {"use_safetensors": True}
    if attn:
        kw["attn_implementation"] = attn
    if spec["task"] == "text-classification":
        kw["num_labels"] = n_labels
    model = model_class(spec["task"]).from_pretrained(model_path, **kw)
    if spec.get("lora"):
        import peft

        lora = spec["lora"]
        model = peft.get_peft_model(model, peft.LoraConfig(
            r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=0.05, target_modules=lora["target_modules"],
            task_type="CAUSAL_LM"))
    return model


def collator(spec: dict, tok: Any, multiple_of: int | None):
    from transformers import DataCollatorForLanguageModeling, DataCollatorWithPadding

    if spec["task"] == "text-classification":
        return DataCollatorWithPadding(tok, pad_to_multiple_of=multiple_of)
    return DataCollatorForLanguageModeling(tok, mlm=spec["task"] == "masked-lm", mlm_probability=0.15,
                                           pad_to_multiple_of=multiple_of)


def datasets_for(spec: dict, tok: Any, mode: str) -> tuple[Any, Any, list]:
    """Train and eval datasets: ``mode`` "padded" (pad to max_length), "dynamic" (no padding) or
    "packed" (LM only: blocks of max_length tokens)."""
    import datasets

    lm = spec["task"] != "text-classification"
    out = []
    names: list = []
    for split in ("train", "eval"):
        texts, labels = corpus.read(spec["data"][split], label_column=None if lm else "label")
        if mode == "padded":
            enc = tok(texts, padding="max_length", truncation=True, max_length=spec["max_length"])
            cols = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        elif mode == "packed" and lm:
            ids = pack(tok(texts)["input_ids"], spec["max_length"])
            cols = {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]}
        else:
            enc = tok(texts, truncation=True, max_length=spec["max_length"])
            cols = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        if not lm:
            cols["labels"], names = label_ids(labels)
        cols["length"] = [sum(m) for m in cols["attention_mask"]]
        out.append(datasets.Dataset.from_dict(cols))
    return out[0], out[1], names


def accuracy_metrics(eval_pred) -> dict:
    import numpy as np

    preds = np.asarray(eval_pred.predictions)
    if preds.ndim > 1:
        preds = preds.argmax(-1)
    return {"accuracy": float((preds == np.asarray(eval_pred.label_ids)).mean())}


def metric_from_eval(spec: dict, metrics: dict) -> dict:
    if spec["task"] == "text-classification":
        return {"name": "accuracy", "value": metrics.get("eval_accuracy")}
    loss = metrics.get("eval_loss")
    return {"name": "perplexity", "value": math.exp(min(loss, 700)) if loss is not None else None}


def result(spec: dict, variant: str, phases: Phases, clock: Clock, counter: CountingCollator, model: Any,
           precision: str, metric: dict, dev: str, wall: float) -> dict:
    from .measure import model_shape, peak_memory

    return {"workload": spec["name"], "variant": variant, "device": dev, "precision": precision,
            "warmup": clock.warmup, "steps": clock.steps, "window_seconds": clock.window(),
            "step_times": clock.durations(),
            "batches": counter.train_batches(clock.warmup + clock.steps), "phases": phases.seconds,
            "phase_calls": phases.calls,
            "wall_seconds": wall, "metric": metric, "memory": peak_memory(dev == "cuda"),
            "shape": model_shape(model)}


# ---- B0 and B1: Trainer scripts -----------------------------------------------------------------

def trainer_script(spec: dict, tuned: bool) -> dict:
    import torch
    from transformers import AutoTokenizer, Trainer, TrainingArguments, set_seed

    t0 = time.perf_counter()
    dev = device()
    phases = Phases()
    steps = spec["warmup"] + (spec["steps"] if tuned else spec["b0_steps"])
    clock = Clock(spec["warmup"], steps - spec["warmup"], cuda=dev == "cuda")
    set_seed(42)
    with phases("load"):
        tok = AutoTokenizer.from_pretrained(spec["model_path"])
    lm = spec["task"] != "text-classification"
    with phases("tokenize"):
        train, evals, names = datasets_for(spec, tok, ("packed" if lm else "dynamic") if tuned else "padded")
    with phases("load"):
        model = load_model(spec, spec["model_path"], len(names), "sdpa" if tuned else None)
    bf16 = tuned and fast_bf16()
    counter = CountingCollator(collator(spec, tok, 8 if tuned and dev == "cuda" else None), tok.pad_token_id)
    common = dict(output_dir=tempfile.mkdtemp(prefix="bench-"), max_steps=steps, seed=42, report_to="none",
                  per_device_train_batch_size=spec["batch_size"], learning_rate=spec["learning_rate"],
                  weight_decay=WEIGHT_DECAY, warmup_steps=WARMUP_RATIO, save_strategy="no",
                  use_cpu=dev == "cpu")
    if tuned:
        args = TrainingArguments(**common, bf16=bf16, tf32=dev == "cuda" or None,
                                 train_sampling_strategy="group_by_length", length_column_name="length",
                                 optim="adamw_torch_fused", logging_nan_inf_filter=False, logging_steps=50,
                                 disable_tqdm=True, per_device_eval_batch_size=4 * spec["batch_size"],
                                 dataloader_num_workers=2 if dev == "cuda" else 0,
                                 dataloader_pin_memory=dev == "cuda")
    else:
        args = TrainingArguments(**common)
    keep = ["input_ids", "attention_mask", "labels"] if not lm else ["input_ids", "attention_mask"]
    trainer = Trainer(model=model, args=args, train_dataset=train.select_columns(keep + ["length"]),
                      eval_dataset=evals.select_columns(keep), processing_class=tok, data_collator=counter,
                      compute_metrics=accuracy_metrics if not lm else None,
                      preprocess_logits_for_metrics=(lambda logits, labels: logits.argmax(-1))
                      if tuned and not lm else None)
    with instrument_trainer(phases, clock):
        with phases("train_total"):
            trainer.train()
        metrics = trainer.evaluate()
    with phases("save"):
        trainer.save_model(tempfile.mkdtemp(prefix="bench-save-"))
    if dev == "cuda":
        torch.cuda.synchronize()
    return result(spec, "B1" if tuned else "B0", phases, clock, counter, model, "bf16" if bf16 else "fp32",
                  metric_from_eval(spec, metrics), dev, time.perf_counter() - t0)


def run_b0(spec: dict) -> dict:
    return trainer_script(spec, tuned=False)


def run_b1(spec: dict) -> dict:
    return trainer_script(spec, tuned=True)


# ---- B2: a hand-written loop --------------------------------------------------------------------

def run_b2(spec: dict) -> dict:
    import torch
    from torch.utils.data import BatchSampler, DataLoader
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup, set_seed

    from workbench.engine.batching import GroupedLengthSampler

    t0 = time.perf_counter()
    dev = device()
    phases = Phases()
    steps = spec["warmup"] + spec["steps"]
    clock = Clock(spec["warmup"], spec["steps"], cuda=dev == "cuda")
    set_seed(42)
    with phases("load"):
        tok = AutoTokenizer.from_pretrained(spec["model_path"])
    lm = spec["task"] != "text-classification"
    with phases("tokenize"):
        train, evals, names = datasets_for(spec, tok, "packed" if lm else "dynamic")
    with phases("load"):
        model = load_model(spec, spec["model_path"], len(names), "sdpa").to(dev)
    bf16 = fast_bf16()
    counter = CountingCollator(collator(spec, tok, 8 if dev == "cuda" else None), tok.pad_token_id)
    keep = ["input_ids", "attention_mask"] + ([] if lm else ["labels"])
    # the same batches as workbench: its length-grouped sampler, drawn after the same seeding
    set_seed(42)
    sampler = GroupedLengthSampler(spec["batch_size"], lengths=list(train["length"]))
    loader = DataLoader(train.select_columns(keep), batch_sampler=BatchSampler(sampler, spec["batch_size"], False),
                        collate_fn=counter)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in params if not any(k in n for k in NO_DECAY)], "weight_decay": WEIGHT_DECAY},
              {"params": [p for n, p in params if any(k in n for k in NO_DECAY)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=spec["learning_rate"], fused=True)
    sched = get_linear_schedule_with_warmup(opt, math.ceil(WARMUP_RATIO * steps), steps)
    amp = torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16)
    trainable = [p for _, p in params]
    model.train()
    with phases("train_total"):
        step = 0
        while step < steps:
            for batch in loader:
                batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
                with amp:
                    loss = model(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                clock.step_end(step)
                if step == steps:
                    break
    with phases("eval"):
        metric = loop_eval(spec, model, evals.select_columns(keep), counter.collate, dev, bf16)
    with phases("save"):
        model.save_pretrained(tempfile.mkdtemp(prefix="bench-save-"), safe_serialization=True)
    if dev == "cuda":
        torch.cuda.synchronize()
    return result(spec, "B2", phases, clock, counter, model, "bf16" if bf16 else "fp32", metric, dev,
                  time.perf_counter() - t0)


def loop_eval(spec: dict, model: Any, data: Any, collate: Any, dev: str, bf16: bool) -> dict:
    import torch
    from torch.utils.data import DataLoader

    model.eval()
    right = total = 0
    nll = 0.0
    with torch.inference_mode(), torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
        for batch in DataLoader(data, batch_size=4 * spec["batch_size"], collate_fn=collate):
            batch = {k: v.to(dev) for k, v in batch.items()}
            out = model(**batch)
            if spec["task"] == "text-classification":
                right += int((out.logits.argmax(-1) == batch["labels"]).sum())
                total += len(batch["labels"])
            else:
                n = int((batch["labels"] != -100).sum())
                nll += float(out.loss) * n
                total += n
    if spec["task"] == "text-classification":
        return {"name": "accuracy", "value": right / max(total, 1)}
    return {"name": "perplexity", "value": math.exp(min(nll / max(total, 1), 700))}


# ---- P: workbench -------------------------------------------------------------------------------

def workbench_config(spec: dict, runs_dir: str) -> dict:
    lm = spec["task"] != "text-classification"
    cfg: dict = {"task": spec["task"], "model": spec["model_path"], "runs_dir": runs_dir, "baseline": False,
                 "name": f"bench-{spec['name']}",
                 "data": {"train": spec["data"]["train"], "validation": spec["data"]["eval"],
                          "test": spec["data"]["eval"], "text_column": "text",
                          # one held-out file serves as both (every variant scores the same rows): not leakage here
                          "overlap": "warn"},
                 # evaluated once after training, on the test split, as the other variants are (a validation
                 # pass at the last step as well would count twice in the evaluation column)
                 "train": {"max_steps": spec["warmup"] + spec["steps"], "batch_size": spec["batch_size"],
                           "eval_strategy": "no",
                           "max_length": spec["max_length"], "learning_rate": spec["learning_rate"],
                           "weight_decay": WEIGHT_DECAY, "warmup_ratio": WARMUP_RATIO, "seed": 42}}
    if not lm:
        cfg["data"]["label_column"] = "label"
    if spec.get("lora"):
        lora = spec["lora"]
        cfg["lora"] = {"enabled": True, "r": lora["r"], "alpha": lora["alpha"], "dropout": 0.05,
                       "target_modules": lora["target_modules"]}
    return cfg


def instrument_workbench(spec: dict, phases: Phases, holder: dict) -> list:
    """Time workbench's phases and count its batches, by wrapping (not changing) its functions."""
    from transformers import Trainer

    import workbench.engine.run as engine
    from workbench import tasks

    task_cls = tasks.get(spec["task"])
    original = task_cls.collator

    def counting_collator(self, tok):
        holder["counter"] = CountingCollator(original(self, tok), tok.pad_token_id)
        return holder["counter"]

    task_cls.collator = counting_collator
    return [lambda: setattr(task_cls, "collator", original),
            phases.wrap(task_cls, "load_data", "tokenize"), phases.wrap(task_cls, "tokenize", "tokenize"),
            phases.wrap(task_cls, "load_model", "load"), phases.wrap(engine, "load_tokenizer", "load"),
            phases.wrap(engine, "_save_model", "save"), phases.wrap(Trainer, "train", "train_total")]


def run_p(spec: dict, compile: bool = False) -> dict:
    import torch

    from workbench import finetune

    t0 = time.perf_counter()
    dev = device()
    phases = Phases()
    clock = Clock(spec["warmup"], spec["steps"], cuda=dev == "cuda")
    holder: dict = {}
    undo = instrument_workbench(spec, phases, holder)
    runs_dir = tempfile.mkdtemp(prefix="bench-runs-")
    try:
        with instrument_trainer(phases, clock):
            cfg = workbench_config(spec, runs_dir)
            if compile:
                cfg["train"]["torch_compile"] = True
            run = finetune(cfg)  # defaults: console progress on, as a user has it
    finally:
        for u in undo:
            u()
    if dev == "cuda":
        torch.cuda.synchronize()
    info = run.info
    main = run.evaluation.get("main_metric")
    from transformers import AutoConfig

    model = _shape_model(spec, run.dir / "model", AutoConfig)
    rec = result(spec, "P+compile" if compile else "P", phases, clock, holder["counter"], model,
                 info.get("precision", "?"), {"name": main, "value": run.metrics.get(main)}, dev,
                 time.perf_counter() - t0)
    rec["run_train_seconds"] = info.get("train_seconds")
    return rec


MAGIC_SETUP = """\
import json, time
import workbench.ui.live as live
views = []
_init = live.LiveView.__init__
def _register(self, *a, **kw):
    _init(self, *a, **kw)
    views.append(self)
live.LiveView.__init__ = _register
%load_ext workbench
"""
MAGIC_REPORT = """\
info = json.load(open(run.dir / "run.json"))
json.dump({"ui_seconds": sum(v.ui_seconds for v in views), "train_seconds": info.get("train_seconds"),
           "elapsed_seconds": info.get("elapsed_seconds"), "status": info.get("status")}, open(OUT, "w"))
"""


def run_magic(spec: dict) -> dict:
    """P once more, as a notebook user runs it: a ``%%finetune`` cell executed by papermill.

    Measures the notebook display's own time (``ui_seconds``) against the run's training time.
    """
    import nbformat
    import papermill
    import yaml

    cfg = workbench_config(spec, tempfile.mkdtemp(prefix="bench-runs-"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-magic-"))
    out = tmp / "magic.json"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(MAGIC_SETUP + f"OUT = {str(out)!r}"),
                nbformat.v4.new_code_cell("%%finetune --output run\n" + yaml.safe_dump(cfg, sort_keys=False)),
                nbformat.v4.new_code_cell(MAGIC_REPORT)]
    nbformat.write(nb, str(tmp / "in.ipynb"))
    t0 = time.perf_counter()
    papermill.execute_notebook(str(tmp / "in.ipynb"), str(tmp / "out.ipynb"), kernel_name="python3",
                               progress_bar=False, cwd=str(tmp))
    wall = time.perf_counter() - t0
    import json

    rec = json.loads(out.read_text(encoding="utf-8"))
    return {"workload": spec["name"], "variant": "P-magic", "notebook_seconds": wall, **rec,
            "ui_share_of_run": rec["ui_seconds"] / rec["elapsed_seconds"] if rec.get("elapsed_seconds") else None}


def _shape_model(spec: dict, model_dir: Path, auto_config: Any):
    """The trained model, rebuilt on the meta device just to count its shape (no weights read)."""
    import torch

    config = auto_config.from_pretrained(str(model_dir))
    with torch.device("meta"):
        model = model_class(spec["task"]).from_config(config)
    if spec.get("lora"):
        import peft

        lora = spec["lora"]
        model = peft.get_peft_model(model, peft.LoraConfig(r=lora["r"], lora_alpha=lora["alpha"],
                                                           target_modules=lora["target_modules"],
                                                           task_type="CAUSAL_LM"))
    return model


VARIANTS = {"B0": run_b0, "B1": run_b1, "B2": run_b2, "P": run_p, "P+compile": lambda spec: run_p(spec, compile=True),
            "P-magic": run_magic}


def env_for_child() -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               HF_HUB_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1")
    return env
