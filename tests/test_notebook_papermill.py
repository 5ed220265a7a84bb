"""A notebook that uses %%finetune, executed by papermill and exported with nbconvert: the record.

The live display must leave its final state (progress, curves, metrics against the baseline) as
plain HTML and PNG outputs: no widget state, no scripts, nothing fetched from the network.
"""

import base64
import re

import nbformat
import pytest
import yaml

from builders import tiny_config


@pytest.fixture(scope="module")
def executed(tiny_bert, clf_csv, tmp_path_factory):
    import papermill

    work = tmp_path_factory.mktemp("notebook")
    runs = work / "runs"
    body = yaml.safe_dump(tiny_config(tiny_bert, clf_csv, runs, epochs=2), sort_keys=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tiny run"),
        nbformat.v4.new_code_cell("%load_ext workbench"),
        nbformat.v4.new_code_cell("%%finetune --name paper -o run --background\n" + body),
        nbformat.v4.new_code_cell("print(run.status, round(run.metrics['accuracy'], 4))"),
        nbformat.v4.new_code_cell(f"%finetune_runs {runs}"),
        # from code: the same live view in the cell (not console lines on stderr), and a search's trials
        # as one table updated in place
        nbformat.v4.new_code_cell("from workbench import finetune, search\n"
                                  f"cfg = {tiny_config(tiny_bert, clf_csv, runs, max_steps=4)!r}\n"
                                  "code_run = finetune(cfg)"),
        nbformat.v4.new_code_cell("cfg['train'].update(eval_strategy='steps', eval_steps=2)\n"
                                  "result = search(cfg, {'train.learning_rate': [1e-3, 1e-2]}, trials=2)"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source, output = work / "in.ipynb", work / "out.ipynb"
    nbformat.write(nb, str(source))
    papermill.execute_notebook(str(source), str(output), kernel_name="python3", cwd=str(work), progress_bar=False,
                               log_output=False)
    return nbformat.read(str(output), as_version=4), runs


def outputs_of(nb, index):
    return nb.cells[index].outputs


def test_the_cell_blocked_until_the_run_ended(executed):
    nb, runs = executed
    printed = "".join(o.get("text", "") for o in outputs_of(nb, 3))
    status, accuracy = printed.split()
    assert status == "completed" and 0.0 <= float(accuracy) <= 1.0  # --background blocks under papermill


def test_outputs_are_the_final_state_as_plain_html(executed):
    nb, _ = executed
    outs = outputs_of(nb, 2)
    kinds = [sorted(o.get("data", {})) for o in outs]
    assert not any("application/vnd.jupyter.widget-view+json" in k for k in kinds)
    assert "widgets" not in nb.metadata
    progress = outs[0]["data"]["text/html"]
    assert "completed" in progress and "100%" in progress and "val accuracy" in progress
    chart, confusion = (o["data"]["text/html"] for o in outs[1:3])
    svg = re.search(r"src='data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)'", chart).group(1)
    assert b"<polyline" in base64.b64decode(svg)  # the curves, drawn
    assert "wb-confusion" in confusion and "fine-tuned" in confusion  # then the confusion matrices
    summary = [o for o in outs if o.get("output_type") == "execute_result"][0]["data"]["text/html"]
    assert "wb-metrics" in summary and "fine-tuned" in summary and "baseline" in summary
    assert not any(o.get("output_type") == "stream" and o.get("name") == "stderr" for o in outs)


def test_nbconvert_html_shows_metrics_and_curves_without_scripts_or_network(executed):
    from nbconvert import HTMLExporter

    from workbench.report import export_html

    nb, runs = executed
    plain, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)  # `jupyter nbconvert --to html`
    for html in (plain, export_html(nb)):
        assert "wb-metrics" in html and "metric (test)" in html
        assert re.search(r"<img[^>]+src=[\"']data:image/svg\+xml;base64,", html) and "wb-confusion" in html
        assert "widget-state" not in html and "widget-view" not in html
        assert "completed" in html and "paper" in html
    assert not re.search(r"<script[^>]+src=[\"']?https?:", export_html(nb))
    # plain nbconvert adds its template's require.js and MathJax tags; nothing of ours loads a script
    assert all("require" in s or "mathjax" in s for s in re.findall(r"<script[^>]+src=[^>]+>", plain))


def test_finetune_and_search_from_code_show_html_in_the_cell(executed):
    nb, _ = executed
    for index in (5, 6):
        assert not any(o.get("output_type") == "stream" and o.get("name") == "stderr" for o in outputs_of(nb, index))
    progress = outputs_of(nb, 5)[0]["data"]["text/html"]
    assert "wb-progress" in progress and "completed" in progress and "fine-tuned against the baseline" in progress
    # the confusion matrices too, as %%finetune shows them
    assert any("wb-confusion" in o.get("data", {}).get("text/html", "") for o in outputs_of(nb, 5))
    (table,) = [o["data"]["text/html"] for o in outputs_of(nb, 6) if "text/html" in o.get("data", {})]
    assert "2 of 2 trials ended" in table and table.count("step 4/4") == 2 and table.count("completed") == 2
    assert "best val accuracy" in table
