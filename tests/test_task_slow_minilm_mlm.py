"""The real bundled MiniLM adapted to BBC News text: held-out perplexity must drop below the baseline."""

import pytest

from workbench import finetune


@pytest.mark.slow
def test_minilm_masked_lm_on_bbc_news_lowers_perplexity(tmp_path):
    run = finetune({
        "task": "masked-lm", "model": "minilm", "runs_dir": str(tmp_path),
        "data": {"train": "bbc-news", "max_train_samples": 48, "max_eval_samples": 12},
        "train": {"max_steps": 12, "max_length": 128, "batch_size": 8, "eval_batch_size": 16,
                  "learning_rate": 2.0e-4, "eval_strategy": "no"},
    }, progress=False)
    ev = run.evaluation
    assert run.status == "completed"
    # all-MiniLM-L6-v2 ships without its masked-LM head: the baseline trains one on the frozen encoder
    assert set(ev["baselines"]) == {"base_model", "frozen_encoder_trained_head"}
    assert ev["finetuned"]["perplexity"] < ev["baseline"]["perplexity"] < ev["baselines"]["base_model"]["perplexity"]
    assert run.predict("The striker scored twice as the club won the [MASK] final.")[0][0]["token"]
