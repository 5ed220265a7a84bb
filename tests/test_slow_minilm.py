"""The real bundled MiniLM on a BBC News subset: it must beat the base-model baselines."""

import pytest

from workbench import finetune


@pytest.mark.slow
def test_minilm_on_bbc_news_beats_the_baseline(tmp_path):
    run = finetune({
        "model": "minilm", "runs_dir": str(tmp_path),
        "data": {"train": "bbc-news", "max_train_samples": 1000, "max_eval_samples": 300},
        "train": {"epochs": 2, "max_length": 128, "learning_rate": 1.0e-4, "batch_size": 16},
    }, progress=False)
    ev = run.evaluation
    assert run.status == "completed"
    assert ev["finetuned"]["accuracy"] >= 0.9
    assert ev["finetuned"]["accuracy"] > ev["baselines"]["majority_class"]["accuracy"] + 0.5
    assert ev["finetuned"]["f1_macro"] > ev["baseline"]["f1_macro"], ev
    assert run.predict("The striker scored twice as the club won the cup final.")["label"] == "sports"
