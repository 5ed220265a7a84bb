"""What the notebook's live display costs next to training, measured inside a real Jupyter kernel.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.ui_overhead [--samples 800] [--max-length 128]

Runs MiniLM on BBC News twice in one papermill-executed notebook: once on the cell's thread with
``NotebookProgress`` (display_id outputs, as %%finetune and the templates use it) and once on a
training thread with ``WidgetProgress`` (as the panel and ``%%finetune --background`` use it).
Each view times itself (``ui_seconds``: every event it handled, every HTML and chart redraw);
the figure reported is that time over the run's training time. Results go to docs/notebook.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

CELL = """
import json, time
from workbench import resolve
from workbench.engine.run import execute
from workbench.ui.live import NotebookProgress
from workbench.ui.widgets import WidgetProgress
from workbench.ui.background import BackgroundRun
from IPython.display import display

cfg = resolve(inline={{"model": "minilm", "data": {{"train": "bbc-news", "max_train_samples": {samples}}},
                      "train": {{"epochs": 1, "max_length": {max_length}, "batch_size": 16, "learning_rate": 1e-4,
                                "logging_steps": 10}}, "runs_dir": {runs!r}}})
results = {{}}
view = NotebookProgress(confusion=True)
run_dir = execute(cfg, sinks=[view])
info = run_dir.read_info()
results["NotebookProgress (cell thread)"] = dict(ui=view.ui_seconds, train=info["train_seconds"],
                                                 html=view.html_updates, charts=view.chart_updates)
view = WidgetProgress()
display(view.box)
job = BackgroundRun(cfg, sinks=[view]).start().wait()
info = job.info
results["WidgetProgress (training thread)"] = dict(ui=view.ui_seconds, train=info["train_seconds"],
                                                   html=view.html_updates, charts=view.chart_updates)
print("RESULTS " + json.dumps(results))
"""


def main() -> None:
    import nbformat
    import papermill

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=800, help="training texts (max_train_samples)")
    p.add_argument("--max-length", type=int, default=128)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="workbench-ui-overhead-"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL.format(samples=args.samples, max_length=args.max_length,
                                                      runs=str(work / "runs")))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(work / "in.ipynb"))
    papermill.execute_notebook(str(work / "in.ipynb"), str(work / "out.ipynb"), kernel_name="python3",
                               cwd=str(work), progress_bar=False)
    out = nbformat.read(str(work / "out.ipynb"), as_version=4)
    text = "".join(o.get("text", "") for o in out.cells[0].outputs if o.get("output_type") == "stream")
    results = json.loads(text.split("RESULTS ", 1)[1].splitlines()[0])
    print(f"MiniLM, BBC News, {args.samples} training texts, max_length {args.max_length}, 1 epoch "
          f"(notebook: {work / 'out.ipynb'})")
    print(f"{'view':34}{'training s':>12}{'UI s':>8}{'UI share':>10}{'HTML':>7}{'charts':>8}")
    for name, r in results.items():
        print(f"{name:34}{r['train']:>12.1f}{r['ui']:>8.2f}{r['ui'] / r['train']:>10.2%}{r['html']:>7}"
              f"{r['charts']:>8}")


if __name__ == "__main__":
    main()
