"""Parameter-efficient fine-tuning through ``peft``: wrap the model, and load a saved adapter back.

peft picks the layers to adapt for known architectures (``target_modules`` overrides it) and, for
classification tasks, keeps the new head fully trainable. A task can name further modules to train
in full (``peft_modules_to_save``), such as a masked-LM head missing from the base checkpoint.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError, ModelError


def _peft():
    try:
        import peft
    except ImportError:
        raise ConfigError("lora.enabled: true needs the peft package: pip install 'workbench[peft]'.") from None
    return peft


def peft_config(cfg: Any, task: Any, model: Any = None):
    """The ``peft`` config for ``cfg.lora`` and the task (its ``peft_task_type`` and modules to save)."""
    peft = _peft()
    lora = cfg.lora
    common = {"task_type": getattr(task, "peft_task_type", None), "target_modules": lora.target_modules,
              "modules_to_save": getattr(task, "peft_modules_to_save", None)}
    # GPT-2 style Conv1D layers store weights transposed; peft needs to know (else it warns and flips it)
    transposed = model is not None and any(type(m).__name__ == "Conv1D" for m in model.modules())
    if lora.method == "ia3":
        return peft.IA3Config(fan_in_fan_out=transposed, **common)
    return peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, fan_in_fan_out=transposed,
                           **common)


@contextmanager
def _quiet_peft_probe() -> Iterator[None]:
    """peft asks the model for ``is_gradient_checkpointing``, which transformers 5 answers with a
    FutureWarning about its own rename: a message for peft's authors, not for workbench's users."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing. is deprecated", category=FutureWarning)
        yield


# the module names of transformers' task heads, which peft trains in full rather than adapts
_HEAD_NAMES = {"classifier", "pre_classifier", "score", "lm_head", "cls", "qa_outputs", "vocab_projector",
               "vocab_transform"}


def wrap_with_peft(cfg: Any, task: Any, model: Any):
    """Return ``model`` with adapters attached; only the adapters (and the task head) stay trainable."""
    peft = _peft()
    config = peft_config(cfg, task, model)
    try:
        with _quiet_peft_probe():
            wrapped = peft.get_peft_model(model, config)
    except ValueError as e:  # peft names the modules it could not find or does not know defaults for
        # the layers an adapter can go on: the body's, as the task's head is trained in full anyway
        head = set(getattr(task, "peft_modules_to_save", None) or []) | _HEAD_NAMES
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ in
                        ("Linear", "Conv1D") and not head & set(n.split("."))})
        reason = str(e).splitlines()[0].strip()
        raise ConfigError(f"lora: {reason}{'' if reason.endswith(('.', '!', '?')) else '.'} Set "
                          f"lora.target_modules to some of the model's linear layers: {', '.join(names[:20])}.") \
            from None
    return wrapped


def is_adapter_dir(model_dir: Path) -> bool:
    return (Path(model_dir) / "adapter_config.json").is_file()


def load_adapter_model(auto_class: Any, model_dir: Path):
    """Rebuild a model saved as adapter weights only: base model + head config + adapter.

    The run saves the base model's config (labels, problem type) next to the adapter, so the head
    is rebuilt with the right shape before the adapter and the trained head weights are loaded.
    """
    from transformers import AutoConfig

    peft = _peft()
    from ..models import resolve_model

    model_dir = Path(model_dir)
    adapter = json.loads((model_dir / "adapter_config.json").read_text(encoding="utf-8"))
    info_path = model_dir / "workbench.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    saved = adapter.get("base_model_name_or_path")
    # the absolute folder the run loaded from, else the alias or hub id it was given
    base_ref = saved if saved and Path(saved).is_dir() else info.get("base_model") or saved
    if not base_ref:
        raise ModelError(f"{model_dir}: the adapter does not say which base model it belongs to.")
    base_path = resolve_model(base_ref)
    config = AutoConfig.from_pretrained(str(model_dir)) if (model_dir / "config.json").is_file() else None
    kwargs = {"config": config} if config is not None else {}
    # the base model's task head is new here (transformers reports it MISSING; Run.predict loads inside
    # quiet_libraries); the adapter holds the trained head (modules_to_save) and puts it in place next
    base = auto_class.from_pretrained(base_path, use_safetensors=True, **kwargs)
    with _quiet_peft_probe():
        return peft.PeftModel.from_pretrained(base, str(model_dir))
