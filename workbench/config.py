"""The one run description, and the one way every front end builds it.

``resolve()`` layers: defaults -> config file -> inline YAML -> ``key=value`` overrides.
Every field carries help text (``field(metadata={"help": ...})``) so the CLI, the widget
panel and the docs are generated from the same place. YAML is read with ``safe_load`` only.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import hashlib
import json
import math
import os
import re
import shlex
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

TASKS = ("text-classification", "token-classification", "masked-lm", "causal-lm")


def _f(default: Any, help: str, choices: tuple | None = None, **kw):
    meta = {"help": help}
    if choices:
        meta["choices"] = choices
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class DataConfig:
    train: Any = _f("bbc-news", "Training data: bundled alias (bbc-news), file path or glob (csv, tsv, json, "
                    "jsonl, parquet, txt, conll), a folder of text files per label, a hub dataset id, or in "
                    "Python a pandas DataFrame / datasets.Dataset.")
    validation: Any = _f(None, "Validation data (same forms as train). Split off train when absent.")
    test: Any = _f(None, "Test data (same forms as train). Split off train when absent.")
    text_column: str = _f("text", "Column holding the input text.")
    label_column: str = _f("label", "Column holding the target (a class, a list of classes, a number, or tags).")
    tokens_column: str = _f("tokens", "Token classification: column holding the list of words.")
    tags_column: str = _f("tags", "Token classification: column holding the list of tags.")
    prompt_column: str = _f("prompt", "Causal LM: column holding the prompt (loss is not taken on it).")
    response_column: str = _f("response", "Causal LM: column holding the response.")
    validation_size: float = _f(0.1, "Fraction of train split off for validation when no validation data is given.")
    test_size: float = _f(0.1, "Fraction of train split off for testing when no test data is given.")
    max_train_samples: int | None = _f(None, "Use at most this many training rows (stratified sample), for quick runs.")
    max_eval_samples: int | None = _f(None, "Use at most this many validation and test rows each.")
    duplicates: str = _f("warn", "Exact duplicate texts inside a split: warn, error, or drop (keeps the first).",
                         choices=("warn", "error", "drop"))
    overlap: str = _f("error", "Texts found in both train and an evaluation split, or in both validation and "
                      "test (leakage): error, warn, or drop (removes them from the evaluation split; from test "
                      "for validation and test).", choices=("error", "warn", "drop"))
    augment: str = _f("none", "Text classification: add altered copies of the training texts: none, or eda "
                      "(random word swaps and deletions, Wei & Zou 2019). Validation and test stay as given.",
                      choices=("none", "eda"))
    augment_copies: int = _f(1, "With augment: altered copies made of each training text.")
    augment_rate: float = _f(0.1, "With augment: the share of a text's words swapped, and the chance each is dropped.")


@dataclass
class TrainConfig:
    epochs: float = _f(3.0, "Number of passes over the training data.")
    max_steps: int | None = _f(None, "Stop after this many optimizer steps (overrides epochs).")
    learning_rate: float = _f(5e-5, "Peak learning rate.")
    batch_size: int = _f(16, "Training batch size per device.")
    eval_batch_size: int | None = _f(None, "Evaluation batch size (default: 4 x batch_size).")
    gradient_accumulation_steps: int = _f(1, "Accumulate gradients over this many batches per optimizer step.")
    max_length: int = _f(256, "Maximum tokens per example; longer inputs are truncated (and reported).")
    weight_decay: float = _f(0.01, "AdamW weight decay (not applied to biases and LayerNorm).")
    lr_scheduler: str = _f("linear", "Learning-rate schedule.",
                           choices=("linear", "cosine", "constant", "constant_with_warmup", "polynomial"))
    warmup_ratio: float = _f(0.06, "Fraction of steps for linear warmup.")
    seed: int = _f(42, "Seed for splits, initialisation and data order.")
    precision: str = _f("auto", "auto picks bf16 where the CPU or GPU supports it, else fp16 on GPU, fp32 on CPU.",
                        choices=("auto", "bf16", "fp16", "fp32"))
    group_by_length: bool = _f(True, "Batch texts of similar length together (removes most padding).")
    eval_strategy: str = _f("epoch", "When to evaluate on the validation split.", choices=("epoch", "steps", "no"))
    eval_steps: int | None = _f(None, "Evaluate every N steps when eval_strategy is steps.")
    logging_steps: int = _f(10, "Log loss and learning rate every N steps.")
    early_stopping_patience: int | None = _f(None, "Stop after N evaluations without improvement.")
    metric_for_best_model: str | None = _f(None, "Validation metric that selects the best checkpoint "
                                           "(default: the task's main metric); a loss, perplexity or error "
                                           "counts as better when lower.")
    save_checkpoints: bool = _f(True, "Keep resumable checkpoints under checkpoints/: the best and the last, or "
                                "without evaluations the last two (one per epoch).")
    resume_from: str | None = _f(None, "Continue an interrupted run: a checkpoint folder, or a run directory or id "
                                 "(its latest complete checkpoint), or 'latest' (the newest stopped run of this "
                                 "task and model, else the newest completed one). Use the same settings as that run.")
    freeze: str | None = _f(None, "Freeze parameters: 'embeddings', 'layers:N' (embeddings and the first N "
                             "layers), or 'all-but-head'.")
    torch_compile: bool = _f(False, "Compile the model with torch.compile: pays off only on long GPU runs, "
                              "since batches of a new length compile again (see docs/benchmarks.md).")
    find_unused_parameters: bool = _f(False, "Launches of several processes (torchrun, accelerate launch): look for "
                                      "trainable parameters the loss did not use at every step. Only models with "
                                      "such parameters need it; it costs a pass over the autograd graph per step.")


@dataclass
class LoraConfig:
    enabled: bool = _f(False, "Train low-rank adapters (peft) instead of all weights.")
    method: str = _f("lora", "PEFT method.", choices=("lora", "ia3"))
    r: int = _f(8, "LoRA rank.")
    alpha: int = _f(16, "LoRA scaling alpha.")
    dropout: float = _f(0.05, "Dropout on the LoRA path.")
    target_modules: list | None = _f(None, "Module names to adapt (default: peft's choice for the architecture).")
    merge: bool = _f(True, "Merge the adapters into the saved model (else save adapter weights only).")


@dataclass
class RunConfig:
    task: str = _f("text-classification", "What to train.", choices=TASKS)
    model: str = _f("minilm", "Bundled alias (minilm), hub id, or local folder with safetensors weights.")
    name: str | None = _f(None, "A short name for the run (part of its directory name).")
    runs_dir: str = _f("runs", "Folder holding run directories (env WORKBENCH_RUNS_DIR overrides the default).")
    baseline: bool = _f(True, "Evaluate the base model on the same test split for comparison.")
    trust_remote_code: bool = _f(False, "Allow model code from the hub (needs model_revision pinned).")
    model_revision: str | None = _f(None, "Hub revision (commit) to load.")
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Where the data comes from."})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "Optimisation settings."})
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "Parameter-efficient fine-tuning."})
    task_options: dict = _f({}, "Task-specific options (`workbench train --help` lists each task's, with defaults).")

    # ---- views -----------------------------------------------------------------------------
    def to_dict(self, portable: bool = True) -> dict:
        """Nested dict; with ``portable`` in-memory data objects become a short description."""
        out = dataclasses.asdict(self) if portable is False else _asdict_portable(self)
        return out

    def to_yaml(self, comments: bool = False) -> str:
        """The config as YAML; with ``comments`` each key carries its help (and choices) as a comment."""
        text = yaml.safe_dump(_readable(self.to_dict()), sort_keys=False, allow_unicode=True)
        return _with_help_comments(text) if comments else text

    def diff(self, other: "RunConfig | None" = None) -> dict:
        """Flat ``{dotted.key: value}`` of fields that differ from ``other`` (default: the defaults)."""
        a = flatten(self.to_dict())
        b = flatten((other or RunConfig()).to_dict())
        return {k: v for k, v in a.items() if b.get(k, object()) != v}

    def to_magic(self) -> str:
        """The run as a ``%%finetune`` cell (only what differs from the defaults)."""
        body = yaml.safe_dump(_readable(unflatten(self.diff())), sort_keys=False, allow_unicode=True) \
            if self.diff() else ""
        return "%%finetune\n" + body

    def to_cli(self, config_path: str | None = None) -> str:
        parts = ["workbench", "train"]
        if config_path:
            parts.append(config_path)
        for k, v in self.diff().items():
            parts.append(f"{k}={_scalar_text(v)}")
        return " ".join(shlex.quote(p) for p in parts)

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]

    def no_cli_reason(self) -> str | None:
        """Why this run has no ``workbench train`` form (its data are tables in a notebook), with the way
        to get one; None when it has one."""
        held = self.in_memory_data()
        if not held:
            return None
        first = next(iter(held))
        fields = ", ".join(f"data.{k}" for k in held)
        return (f"{fields} {'is a table' if len(held) == 1 else 'are tables'} made in this notebook, which the "
                f"command line cannot read. Save {'it' if len(held) == 1 else 'each'} to a file first "
                f"(df.to_csv('{first}.csv', index=False)) and use data.{first}={first}.csv.")

    def in_memory_data(self) -> dict:
        """Data fields that hold Python objects rather than references (DataFrames, Datasets)."""
        return {k: getattr(self.data, k) for k in ("train", "validation", "test")
                if getattr(self.data, k) is not None and not isinstance(getattr(self.data, k), str)}


def _with_help_comments(text: str) -> str:
    """``key: value  # help [choices]`` for every key of ``text`` (YAML of a RunConfig: top-level keys and
    one level of sections) that the schema documents; the YAML reads back the same."""
    import re

    docs = {s["key"]: s for s in schema()}
    out, section = [], ""
    for line in text.splitlines():
        m = re.match(r"^( *)([A-Za-z_][A-Za-z0-9_]*):", line)
        if m:
            key = m.group(2) if not m.group(1) else f"{section}.{m.group(2)}"
            if not m.group(1):
                section = m.group(2)
            doc = docs.get(key)
            if doc and doc["help"]:
                choices = f" [{'|'.join(doc['choices'])}]" if doc.get("choices") else ""
                line = f"{line}  # {doc['help']}{choices}"
        out.append(line)
    return "\n".join(out) + "\n"


def _readable(v: Any) -> Any:
    """Whole-number floats as integers (``epochs: 3``, not ``3.0``) in what people read and copy;
    the float fields read them back as the same floats."""
    if isinstance(v, dict):
        return {k: _readable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_readable(x) for x in v]
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return int(v)
    return v


def _scalar_text(v: Any) -> str:
    if isinstance(v, str):
        return v
    return yaml.safe_dump(_readable(v), default_flow_style=True).strip().removesuffix("...").strip()


def describe_object(obj: Any) -> str:
    """A stable, readable stand-in for an in-memory data object in config.yaml."""
    kind = type(obj).__name__
    n = getattr(obj, "shape", None) or (len(obj) if hasattr(obj, "__len__") else "?")
    return f"<in-memory {kind} {n}>"


def is_stand_in(value: Any) -> bool:
    """Whether ``value`` is ``describe_object``'s text for data that was held in memory."""
    return isinstance(value, str) and value.startswith("<in-memory ") and value.endswith(">")


def _asdict_portable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _asdict_portable(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, (list, tuple)):
        return [_asdict_portable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): _asdict_portable(v) for k, v in obj.items()}
    return describe_object(obj)


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and key != "task_options":
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def unflatten(d: dict) -> dict:
    out: dict = {}
    for k, v in d.items():
        node = out
        *parents, leaf = k.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


# ---- schema helpers ---------------------------------------------------------------------------

def schema(cls: type = RunConfig, prefix: str = "") -> list[dict]:
    """Flat list of every leaf field: key, type, default, help, choices (for CLI help and the panel)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        t = hints[f.name]
        key = prefix + f.name
        if dataclasses.is_dataclass(t):
            out.extend(schema(t, key + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append({"key": key, "type": t, "default": default, "help": f.metadata.get("help", ""),
                    "choices": f.metadata.get("choices")})
    return out


def _all_keys() -> list[str]:
    keys = []
    for s in schema():
        keys.append(s["key"])
    return keys + ["data", "train", "lora"]


# what Trainer scripts, the transformers examples and other tools call these settings: too far from
# workbench's names for a spelling match ("lr" and "train.learning_rate"), so looked up by name
_SYNONYMS = {
    "lr": "train.learning_rate", "num_train_epochs": "train.epochs", "num_epochs": "train.epochs",
    "n_epochs": "train.epochs", "per_device_train_batch_size": "train.batch_size",
    "train_batch_size": "train.batch_size", "bs": "train.batch_size", "batch": "train.batch_size",
    "per_device_eval_batch_size": "train.eval_batch_size", "max_seq_length": "train.max_length",
    "max_seq_len": "train.max_length", "max_len": "train.max_length", "seq_len": "train.max_length",
    "model_max_length": "train.max_length", "wd": "train.weight_decay", "warmup": "train.warmup_ratio",
    "warmup_steps": "train.warmup_ratio", "grad_accum": "train.gradient_accumulation_steps",
    "gradient_accumulation": "train.gradient_accumulation_steps", "scheduler": "train.lr_scheduler",
    "lr_scheduler_type": "train.lr_scheduler", "evaluation_strategy": "train.eval_strategy",
    "eval_every": "train.eval_steps", "fp16": "train.precision", "bf16": "train.precision",
    "patience": "train.early_stopping_patience", "early_stopping": "train.early_stopping_patience",
    "resume_from_checkpoint": "train.resume_from", "save_strategy": "train.save_checkpoints",
    "model_name_or_path": "model", "model_name": "model", "output_dir": "runs_dir",
    "train_file": "data.train", "validation_file": "data.validation", "eval_file": "data.validation",
    "test_file": "data.test", "text": "data.text_column", "label": "data.label_column",
    "use_lora": "lora.enabled", "peft": "lora.enabled", "lora_r": "lora.r", "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
}


def _suggest(key: str, candidates: list[str]) -> str:
    leaf = key.rsplit(".", 1)[-1]
    if _SYNONYMS.get(leaf) in candidates and _SYNONYMS[leaf] != key:
        return f" Did you mean '{_SYNONYMS[leaf]}'?"
    # a section's own name is no answer for a key inside it ("train.lr" is not "train")
    candidates = [c for c in candidates if not key.startswith(c + ".")]
    by_case = [c for c in candidates if c.lower() == key.lower()]
    if by_case:  # keys are lower case: TRAIN.EPOCHS is train.epochs
        return f" Did you mean '{by_case[0]}'? Keys are lower case."
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    if not close:
        # also try the last component alone ("epoch" -> "train.epochs")
        by_leaf = {c.rsplit(".", 1)[-1]: c for c in candidates}
        close = [by_leaf[m] for m in difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6)]
    return f" Did you mean '{close[0]}'?" if close else ""


def _coerce(value: Any, tp: Any, key: str, choices: tuple | None) -> Any:
    """Check ``value`` against the annotation ``tp``; accept YAML's usual spellings (5e-5 as text)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, choices)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"{key}: expected true or false, got {value!r}.")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}.")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}.")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}.")
        number = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{key}: expected a number, got {value!r}.")
        if not math.isfinite(number):  # an epoch count of inf passed every range check, then broke the step count
            raise ConfigError(f"{key}: {number!r} is not a finite number; give an ordinary number (inf and nan "
                              "are no settings).")
        return number
    if tp is str:
        if isinstance(value, bool):
            # YAML 1.1 (PyYAML) reads an unquoted no/off/yes/on as a boolean: give a choice among
            # those words back its word ("eval_strategy: no")
            words = [w for w in (("no", "off", "false") if not value else ("yes", "on", "true")) if w in (choices or ())]
            if words:
                return words[0]
            raise ConfigError(f"{key}: expected text, got {value!r} (YAML reads an unquoted yes/no/on/off/true/"
                              "false as a boolean: quote the text).")
        if isinstance(value, datetime.date):  # where its spelling is gone (a dict, a YAML merge key)
            raise ConfigError(f"{key}: expected text, got the date {value} (YAML reads an unquoted date as a date): "
                              f"quote it, {key.rsplit('.', 1)[-1]}: \"{value}\".")
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{key}: expected text, got {value!r}.")
        value = str(value)
        if choices and value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}.{_suggest(value, list(choices))}")
        return value
    if tp is list or origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}.")
        return list(value)
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}.")
        return dict(value)
    return value


def _build(cls: type, raw: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name: f for f in fields(cls)}
    kwargs = {}
    for k, v in raw.items():
        key = prefix + str(k)
        if k not in names:
            raise ConfigError(f"Unknown config key '{key}'.{_suggest(key, _all_keys())}")
        t = hints[k]
        if dataclasses.is_dataclass(t):
            if v is None:
                continue
            if not isinstance(v, dict):
                raise ConfigError(f"{key}: expected a mapping of its fields, got {v!r}.")
            kwargs[k] = _build(t, v, key + ".")
        else:
            kwargs[k] = _coerce(v, t, key, names[k].metadata.get("choices"))
    return cls(**kwargs)


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "task_options":
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _takes_text(tp: Any) -> bool:
    """Whether a field of type ``tp`` holds text (or nothing): names, columns, paths, the data references."""
    if tp is str or tp is Any:
        return True
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return {a for a in typing.get_args(tp) if a is not type(None)} == {str}
    return False


def _text_keys() -> set[str]:
    return {s["key"] for s in schema() if _takes_text(s["type"])}


# what YAML makes of an unquoted 007, 0x1F, 1.50 or 2024-01-01: a number or a date, its spelling gone
_SPELLING_LOST = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")


def _text_as_written(node: Any, data: Any, text_keys: set[str], prefix: str = "") -> None:
    """In ``data``, what YAML made of ``node``: each text setting written unquoted as a number or a date
    gets back the text as written (``name: 007`` is '007', not 7; ``name: 2024-01-01`` is no date)."""
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
        return
    last = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}  # a repeated key: the last wins
    for name, value in last.items():
        key = prefix + name
        if name not in data:
            continue
        if key in ("data", "train", "lora"):
            _text_as_written(value, data[name], text_keys, key + ".")
        elif key in text_keys and isinstance(value, yaml.ScalarNode) and value.style is None \
                and value.tag in _SPELLING_LOST:
            data[name] = value.value


def _load_yaml_text(text: str, where: str) -> dict:
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
        _text_as_written(node, data, _text_keys())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"Invalid YAML in {where}{loc}: {problem}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a YAML mapping of config keys (like 'task: text-classification'), "
                          f"got {type(data).__name__}.")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``train.learning_rate=3e-5`` -> ("train.learning_rate", 3e-5); the value is a YAML scalar."""
    if "=" not in text:
        raise ConfigError(f"Override '{text}' must look like key=value (for example train.epochs=2).")
    key, _, value = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"Override '{text}' has no key before '='.")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    if parsed in (None, "") and value.strip() not in ("", "null", "Null", "NULL", "~", "''", '""'):
        # a YAML indicator on its own (| > & !) reads as an empty block, anchor or tag: the user meant the text
        parsed = value.strip()
    elif key in _text_keys() and parsed is not None and not isinstance(parsed, bool) and not _quoted(value):
        # a text setting takes the text as typed: name=007 is '007' (YAML: 7), data.label_column=010 is '010'
        # (YAML 1.1: octal 8), name=2024-01-01 is no date. null, a quoted text and the YAML words for true and
        # false (eval_strategy=no) read as in a config file.
        parsed = value
    return key, parsed


def _quoted(value: str) -> bool:
    v = value.strip()
    return len(v) >= 2 and v[0] == v[-1] and v[0] in "'\""


def _as_mapping(source: Any, where: str) -> dict:
    if source is None:
        return {}
    if isinstance(source, RunConfig):
        return source.to_dict(portable=False)
    if isinstance(source, dict):
        return source
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and
                                     (source.strip().endswith((".yaml", ".yml", ".json")) or _is_file(source))):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"Config file not found: {path}.")
        return _load_yaml_text(path.read_text(encoding="utf-8"), str(path))
    if isinstance(source, str):
        if where == "the config file" and source.strip() and "\n" not in source.strip():
            # one word where a config file goes, and no file of that name: a typo in a path or in key=value
            try:
                data = yaml.safe_load(source)
            except yaml.YAMLError:
                data = None
            if not isinstance(data, dict):
                raise ConfigError(config_file_problem(source) or f"Config file not found: {source}.")
        return _load_yaml_text(source, where)
    raise ConfigError(f"{where}: expected a dict, YAML text, a path or a RunConfig, got {type(source).__name__}.")


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # a name too long for the system, a NUL byte
        return False


def config_file_problem(item: str) -> str | None:
    """Why ``item``, a word given where the config file goes (not key=value), is no config file: the
    setting it looks like (``train.epochs:2``), a folder, or no such file; None for an existing file."""
    if _is_file(item):
        return None
    m = re.fullmatch(r"\s*([A-Za-z_][\w.]*)\s*:\s*(.*)", item, re.S)
    if m and (m.group(1) in _all_keys() or m.group(1).startswith("task_options.")):
        meant = f"{m.group(1)}={m.group(2).strip() or 'VALUE'}"
        return f"'{item}' is neither a config file nor a key=value setting (did you mean {meant}?)."
    try:
        folder = Path(item).is_dir()
    except (OSError, ValueError):
        folder = False
    if folder:
        return f"config file '{item}' is a folder; give the YAML file itself (a run's folder holds its config.yaml)."
    return (f"config file '{item}' not found. Give the path of an existing YAML file, or settings as key=value "
            "(train.epochs=2).")


def resolve(file: Any = None, inline: Any = None, overrides: list[str] | dict | None = None,
            objects: dict | None = None) -> RunConfig:
    """Build a RunConfig: defaults -> ``file`` -> ``inline`` -> ``overrides``.

    ``file``/``inline`` may be a path, YAML text, a dict or a RunConfig. ``overrides`` are
    ``key=value`` strings (or a flat dict of dotted keys). ``objects`` resolves values written
    ``$name`` to Python objects (a DataFrame or a run id in a notebook namespace).
    """
    merged: dict = {}
    merged = _deep_merge(merged, _as_mapping(file, "the config file"))
    merged = _deep_merge(merged, _as_mapping(inline, "the inline config"))
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in (overrides or []))
    for key, value in items:
        if key.startswith("task_options.") and len(key) > len("task_options."):
            # one task option on top of the others (the task checks the name: options differ per task)
            merged = dict(merged, task_options={**(merged.get("task_options") or {}),
                                                key[len("task_options."):]: value})
            continue
        if key not in _all_keys():
            raise ConfigError(f"Unknown config key '{key}'.{_suggest(key, _all_keys())}")
        merged = _deep_merge(merged, unflatten({key: value}))
    if merged.get("runs_dir") is None:  # unset, or None as the templates' parameter says by default
        merged.pop("runs_dir", None)
        if os.environ.get("WORKBENCH_RUNS_DIR"):
            merged["runs_dir"] = os.environ["WORKBENCH_RUNS_DIR"]
    if objects is not None:
        merged = _substitute_objects(merged, objects)
    cfg = _build(RunConfig, merged)
    _check(cfg)
    return cfg


def _substitute_objects(merged: dict, objects: dict, where: str = "") -> dict:
    """Each value written ``$name`` (or ``${name}``), in any field, replaced by the notebook's variable:
    a DataFrame for a data split, a run id for train.resume_from. A Run object stands for its folder."""
    out = {}
    for key, v in merged.items():
        field_name = f"{where}{key}"
        if isinstance(v, dict):
            out[key] = _substitute_objects(v, objects, f"{field_name}.")
            continue
        m = re.fullmatch(r"\$\{?([A-Za-z_]\w*)\}?", v) if isinstance(v, str) else None
        if m is None:
            out[key] = v
            continue
        if m.group(1) not in objects:
            raise ConfigError(f"{field_name}: no variable named '{m.group(1)}' in the notebook namespace.")
        value = objects[m.group(1)]
        if not field_name.startswith("data.") and hasattr(value, "dir") and hasattr(value, "id"):
            value = str(value.dir)  # a Run (train.resume_from: $run)
        out[key] = value
    return out


def value_at(cfg: RunConfig, key: str) -> Any:
    """The value of a dotted key (``train.learning_rate``, ``task_options.tags``) of a resolved config;
    a task option that is not set reads as None (the task's default applies)."""
    value: Any = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part)
    return value


def ignored_keys(cfg: RunConfig) -> dict[str, tuple[str, str]]:
    """The keys whose value this config does not use, whatever it is: ``{key: (why, the key that
    decides it)}``."""
    out = {}
    if not cfg.lora.enabled:
        for f in dataclasses.fields(LoraConfig):
            if f.name != "enabled":
                out[f"lora.{f.name}"] = ("lora.enabled is false", "lora.enabled")
    else:
        out["train.freeze"] = ("with lora.enabled the base weights are frozen already and the adapters go into "
                               "every target layer", "lora.enabled")
    if cfg.train.lr_scheduler == "constant":
        out["train.warmup_ratio"] = ("lr_scheduler constant has no warmup (constant_with_warmup has one)",
                                     "train.lr_scheduler")
    if cfg.train.eval_strategy != "steps":
        out["train.eval_steps"] = (f"train.eval_strategy is {cfg.train.eval_strategy}, not steps",
                                   "train.eval_strategy")
    return out


def unused_settings(cfg: RunConfig) -> dict[str, tuple[str, str]]:
    """Settings given that this config does not use (``ignored_keys`` that hold a value of their own: a
    LoRA field off its default, a freeze, a warmup or eval_steps at all). A run says so, rather than
    train as if they mattered, and a search refuses to vary them."""
    defaults = {f"lora.{f.name}": f.default for f in dataclasses.fields(LoraConfig)}

    def given(key: str) -> bool:
        value = value_at(cfg, key)
        return value != defaults[key] if key in defaults else bool(value)

    return {k: v for k, v in ignored_keys(cfg).items() if given(k)}


def _check(cfg: RunConfig) -> None:
    t = cfg.train
    lo = cfg.lora
    if not isinstance(cfg.model, str) or not cfg.model.strip():
        raise ConfigError("model: empty. Give a bundled alias (minilm), a local model folder, or a hub id.")
    if not str(cfg.runs_dir).strip():  # Path("") is the working folder: runs would land among its files
        raise ConfigError("runs_dir: empty. Give the folder for run directories (the default is runs), or leave "
                          "runs_dir out.")
    if isinstance(cfg.data.train, str) and not cfg.data.train.strip():
        raise ConfigError("data.train: empty. Give a file, a folder, bbc-news, or $name of a DataFrame in the notebook.")
    for key, value, ok, allowed in (
        ("train.epochs", t.epochs, t.epochs > 0, "above 0"),
        ("train.learning_rate", t.learning_rate, 0 < t.learning_rate < 1, "between 0 and 1"),
        ("train.batch_size", t.batch_size, t.batch_size >= 1, "at least 1"),
        ("train.max_length", t.max_length, t.max_length >= 8, "at least 8"),
        ("train.gradient_accumulation_steps", t.gradient_accumulation_steps, t.gradient_accumulation_steps >= 1,
         "at least 1"),
        ("train.logging_steps", t.logging_steps, t.logging_steps >= 1, "at least 1"),
        ("train.warmup_ratio", t.warmup_ratio, 0 <= t.warmup_ratio < 1, "from 0 up to (not including) 1"),
        ("train.weight_decay", t.weight_decay, t.weight_decay >= 0, "0 or more"),
        ("data.validation_size", cfg.data.validation_size, 0 < cfg.data.validation_size < 1, "between 0 and 1"),
        ("data.test_size", cfg.data.test_size, 0 < cfg.data.test_size < 1, "between 0 and 1"),
        ("data.augment_copies", cfg.data.augment_copies, 1 <= cfg.data.augment_copies <= 20, "from 1 to 20"),
        ("data.augment_rate", cfg.data.augment_rate, 0 < cfg.data.augment_rate < 0.5, "above 0 and below 0.5"),
        ("lora.r", lo.r, lo.r >= 1, "at least 1"),
        ("lora.alpha", lo.alpha, lo.alpha > 0, "above 0"),
        ("lora.dropout", lo.dropout, 0 <= lo.dropout < 1, "from 0 up to (not including) 1"),
    ):
        if not ok:
            raise ConfigError(f"{key}: {value!r} is out of range; it must be {allowed}.")
    d = cfg.data
    if d.validation is None and d.test is None and 0 < d.validation_size < 1 and 0 < d.test_size < 1 \
            and d.validation_size + d.test_size >= 1:
        # both split off data.train: the validation share is taken of the whole, after the test share
        raise ConfigError(f"data.validation_size {d.validation_size:g} and data.test_size {d.test_size:g} add up to "
                          f"{d.validation_size + d.test_size:g}: both are shares of data.train, so nothing would be "
                          "left to train on. Keep their sum below 1 (the defaults are 0.1 each), or give "
                          "data.validation or data.test files.")
    # counts that may be left unset; 0 is no way to say "all" or "none" here, so it is refused as well
    for key, value in (("train.max_steps", t.max_steps), ("train.eval_batch_size", t.eval_batch_size),
                       ("train.eval_steps", t.eval_steps), ("train.early_stopping_patience", t.early_stopping_patience),
                       ("data.max_train_samples", cfg.data.max_train_samples),
                       ("data.max_eval_samples", cfg.data.max_eval_samples)):
        if value is not None and value < 1:
            raise ConfigError(f"{key}: {value!r} must be at least 1 (or null).")
    if t.freeze is not None:
        f = t.freeze
        if not (f in ("embeddings", "all-but-head") or (f.startswith("layers:") and f[7:].isdigit())):
            raise ConfigError(f"train.freeze: {f!r} must be 'embeddings', 'layers:N' or 'all-but-head'.")
    if cfg.trust_remote_code and not cfg.model_revision:
        raise ConfigError("trust_remote_code: true needs model_revision pinned to a commit, so the code you "
                          "run is the code you reviewed.")
    from . import tasks

    tasks.get(cfg.task)(cfg)  # the task checks its task_options (names, choices, ranges): here, before any run
    if t.eval_strategy == "steps" and not t.eval_steps:
        raise ConfigError("train.eval_steps must be set when train.eval_strategy is 'steps'.")
    if cfg.data.augment != "none" and cfg.task != "text-classification":
        raise ConfigError(f"data.augment: {cfg.data.augment} applies to text-classification; a {cfg.task} run "
                          "takes augment: none (word swaps would break tag alignment or the text itself).")
    if t.early_stopping_patience and (t.eval_strategy == "no" or not t.save_checkpoints):
        raise ConfigError("train.early_stopping_patience needs evaluations to compare and the best checkpoint to "
                          "return to: set train.eval_strategy to epoch or steps and train.save_checkpoints: true "
                          "(or leave early_stopping_patience unset).")
