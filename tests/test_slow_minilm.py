"""The real bundled MiniLM on the bundled BBC News corpus, through `workbench demo` exactly as
`make demo` runs it: the issue's accuracy target, far above the majority class, and level with the
strong linear-probe baseline."""

import json

import pytest

from workbench import cli
from workbench.api import Run
from workbench.runs import list_runs

# One test article is 0.45 accuracy points of the 221. MiniLM is a sentence-embedding model, so a
# logistic regression on its frozen mean-pooled embeddings is already strong on news topics (0.973);
# fine-tuned runs measured 0.982 and 0.986 with the demo's one epoch, and 0.959 with two epochs and
# 0.957 on a 1,000-article subset. The fine-tuned model is held to the probe within this many articles.
PROBE_MARGIN_ARTICLES = 3


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_on_bbc_news_reaches_the_target_and_matches_the_baselines(tmp_path, capsys):
    assert cli.main(["demo", f"runs_dir={tmp_path}", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "Run directory:" in out
    [info] = list_runs(tmp_path)
    run = Run(tmp_path / info["id"])
    ev = json.loads((run.dir / "eval.json").read_text())
    assert run.status == "completed"
    assert ev["num_examples"] == 221
    tuned, probe = ev["finetuned"]["accuracy"], ev["baseline"]["accuracy"]
    assert tuned >= 0.95, ev
    assert tuned > ev["baselines"]["majority_class"]["accuracy"] + 0.5
    assert tuned >= probe - PROBE_MARGIN_ARTICLES / ev["num_examples"] - 1e-9, ev
    assert run.predict("The striker scored twice as the club won the cup final.")["label"] == "sports"
