"""LoRA / IA3 through peft for every task: what trains, what is saved, and loading it back."""

import json

import numpy as np
import pytest
from safetensors import safe_open

from workbench import finetune
from workbench.config import resolve
from workbench.errors import ConfigError
from workbench.tasks import get

from builders import make_texts, tiny_config


def lora_config(model, data, runs, **lora):
    cfg = tiny_config(model, data, runs, epochs=4, learning_rate=2e-2)
    cfg["lora"] = {"enabled": True, "r": 8, "alpha": 16, **lora}
    return cfg


def test_merged_lora_trains_a_small_part_and_saves_a_plain_model(tiny_bert, clf_csv, tmp_path):
    run = finetune(lora_config(tiny_bert, clf_csv, tmp_path), progress=False)
    params = run.info["parameters"]
    assert run.status == "completed" and params["trainable"] < params["total"] / 3
    model_dir = run.dir / "model"
    assert not (model_dir / "adapter_config.json").exists()
    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not any("lora_" in k for k in keys) and any(k.startswith("classifier") for k in keys)
    assert run.evaluation["finetuned"]["accuracy"] > run.evaluation["baselines"]["majority_class"]["accuracy"]
    assert run.predict("match goal team player coach league score")["label"] in {"money", "sport", "tech"}


def test_adapter_only_save_loads_back_with_the_same_predictions(tiny_bert, clf_csv, tmp_path):
    import logging

    cfg = lora_config(tiny_bert, clf_csv, tmp_path, merge=False)
    run = finetune(cfg, progress=False)
    reports: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: reports.append(record.getMessage())
    logging.getLogger("transformers").addHandler(handler)
    model_dir = run.dir / "model"
    assert (model_dir / "adapter_model.safetensors").exists() and not (model_dir / "model.safetensors").exists()
    assert json.loads((model_dir / "config.json").read_text())["id2label"] == {"0": "money", "1": "sport", "2": "tech"}
    # the same test split, predicted by the reloaded base model + adapter, gives the recorded accuracy
    c = resolve(inline=cfg)
    test = get(c.task)(c).load_data().test
    try:
        preds = run.predict(test["text"].tolist(), max_length=64)
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    accuracy = float(np.mean([p["label"] == y for p, y in zip(preds, test["label"])]))
    assert accuracy == pytest.approx(run.evaluation["finetuned"]["accuracy"])
    # the base model's fresh head is replaced by the adapter's trained one: no MISSING report for it
    assert not [r for r in reports if "MISSING" in r]


def test_ia3_on_token_classification(tmp_path):
    from builders import build_tiny_bert, make_ner_sentences, ner_vocab, write_conll

    model = build_tiny_bert(tmp_path / "bert", ner_vocab())
    conll = write_conll(tmp_path / "ner.conll", make_ner_sentences(120))
    cfg = lora_config(model, conll, tmp_path / "runs", method="ia3")
    cfg["task"] = "token-classification"
    run = finetune(cfg, progress=False)
    params = run.info["parameters"]
    assert run.status == "completed" and params["trainable"] < params["total"] / 2
    assert run.predict("bob visited paris .") is not None


def test_lora_on_a_causal_lm_and_on_a_masked_lm_without_its_head(tiny_gpt2, tiny_bert, tmp_path):
    path = tmp_path / "domain.txt"
    path.write_text("\n".join(t for t, _ in make_texts(120)) + "\n")
    cfg = lora_config(tiny_gpt2, path, tmp_path / "runs")
    cfg["task"] = "causal-lm"
    run = finetune(cfg, progress=False)
    assert run.status == "completed" and run.evaluation["finetuned"]["perplexity"] < run.evaluation["baseline"]["perplexity"]
    cfg = lora_config(tiny_bert, path, tmp_path / "runs")
    cfg["task"] = "masked-lm"
    run = finetune(cfg, progress=False)
    # the head the checkpoint lacks is trained in full next to the adapters
    task = get("masked-lm")(resolve(inline=cfg))
    task.load_data()
    task.load_model()
    assert task.peft_modules_to_save == ["cls.predictions.transform"]
    assert run.status == "completed"


def test_unknown_target_modules_name_the_real_layers(tiny_bert, clf_csv, tmp_path):
    with pytest.raises(ConfigError, match=r"lora: .*\. Set lora.target_modules to some of.*query") as e:
        finetune(lora_config(tiny_bert, clf_csv, tmp_path, target_modules=["q_proj"]), progress=False)
    offered = str(e.value).rsplit("linear layers: ", 1)[1]
    assert "classifier" not in offered and "dense" in offered  # the head is trained in full, not adapted


def test_attaching_adapters_shows_users_no_library_rename_warning(tiny_bert):
    import warnings

    from transformers import AutoModelForSequenceClassification

    from workbench.engine.peft_support import wrap_with_peft

    cfg = resolve(inline={"model": str(tiny_bert), "lora": {"enabled": True}})
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert), num_labels=2)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        wrapped = wrap_with_peft(cfg, get("text-classification")(cfg), model)
    assert hasattr(wrapped, "peft_config")
    assert not [w for w in seen if "is_gradient_checkpointing" in str(w.message)]
