"""Live progress and charts, fed with synthetic events on a fake clock (no training, fractions of a second)."""

import base64
import json
import math
import re
import struct
import xml.etree.ElementTree as ET

import pytest

from workbench import plots
from workbench.events import CheckpointSaved, Evaluation, Phase, RunFailed, RunFinished, RunStarted, Step
from workbench.runs import RunDir, atomic_write_json
from workbench.ui import live
from workbench.ui.live import LiveState, NotebookProgress

PNG = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}"


def svg_of(img_html: str) -> ET.Element:
    """The SVG inside the live chart's <img> data URI, parsed (fails on malformed XML)."""
    data = re.search(r"src='data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)'", img_html).group(1)
    return ET.fromstring(base64.b64decode(data))


def polylines(svg: ET.Element) -> list[list[tuple[float, float]]]:
    return [[tuple(map(float, pt.split(","))) for pt in line.get("points").split()]
            for line in svg.iter(f"{SVG_NS}polyline")]


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    return struct.unpack(">II", data[16:24])


class FakeClock:
    """Stands in for the time module inside workbench.ui.live: monotonic() advances only when told."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    perf_counter = staticmethod(__import__("time").perf_counter)


class Handle:
    def __init__(self, obj):
        self.objects = [obj]

    def update(self, obj):
        self.objects.append(obj)


class FakeDisplay:
    """Records what NotebookProgress displays and how often each output is updated."""

    def __init__(self):
        self.handles = []

    def __call__(self, obj):
        self.handles.append(Handle(obj))
        return self.handles[-1]


def started(run_dir: RunDir, total=100, model="tiny", task="text-classification"):
    return RunStarted(run_id=run_dir.id, run_dir=str(run_dir.path), task=task, model=model, total_steps=total,
                      num_train=800, device="cpu", precision="fp32", main_metric="accuracy")


def step(i, total=100, loss=True):
    return Step(step=i, total_steps=total, epoch=i / 50, loss=2.0 / (1 + i / 10) if loss else None,
                learning_rate=5e-5 * (1 - i / total) if loss else None, grad_norm=None, samples_per_second=40.0,
                tokens_per_second=5000.0, elapsed=i * 0.5, eta=(total - i) * 0.5)


def evaluation(i, acc):
    return Evaluation(step=i, epoch=i / 50, split="validation",
                      metrics={"loss": 1.0 / (1 + i / 20), "accuracy": acc, "runtime": 0.3})


def eval_json(run_dir: RunDir):
    atomic_write_json(run_dir.eval_json, {
        "split": "test", "num_examples": 20, "main_metric": "accuracy", "greater_is_better": True,
        "finetuned": {"accuracy": 0.9, "f1_macro": 0.88}, "baseline": {"accuracy": 0.6, "f1_macro": 0.5},
        "delta": {"accuracy": 0.3, "f1_macro": 0.38}, "baseline_method": "linear probe",
        "confusion_matrix": {"labels": ["a", "b"], "finetuned": [[9, 1], [1, 9]], "baseline": [[6, 4], [4, 6]]}})


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(live, "time", c)
    return c


@pytest.fixture
def run_dir(tmp_path):
    return RunDir.create(tmp_path, "live", "text-classification")


# ---- charts --------------------------------------------------------------------------------------

def records():
    out = [{"event": "started", "main_metric": "accuracy"}]
    out += [step(i).to_record() for i in range(5, 101, 5)]
    out += [evaluation(i, 0.5 + i / 400).to_record() for i in (50, 100)]
    out.append({"event": "step", "step": 105, "loss": None, "nonfinite": True})  # a NaN written as null
    return out


def test_curve_series_reads_metrics_jsonl_records():
    series = plots.curve_series(records())
    xs, ys = series["train loss"]
    assert xs[0] == 5 and xs[-1] == 100 and len(xs) == 20  # the null loss is skipped
    assert series["validation accuracy"] == ([50.0, 100.0], [0.625, 0.75])
    assert series["validation loss"][0] == [50.0, 100.0]
    assert all(math.isfinite(y) for _, ys in series.values() for y in ys)


def test_curves_png_one_run_overlay_and_empty():
    one = plots.curves_png({"run": records()})
    two = plots.curves_png({"a": records(), "b": records()[:8]})
    empty = plots.curves_png({"run": []})
    for png in (one, two, empty):
        width, height = png_size(png)
        assert width > 500 and height > 200
    assert one != two != empty


def test_many_runs_with_long_names_share_one_legend_inside_the_figure():
    """Ten runs named as experiments are: a legend inside the loss axes covered the curves and ran off
    the figure's left edge. One legend below the panels names each run once, cut in the middle."""
    names = [f"customer-support-ticket-routing-experiment-{i}-lr-sweep-with-a-long-name" for i in range(10)]
    fig = plots.curves_figure({n: records() for n in names})
    fig.canvas.draw()
    assert not any(ax.get_legend() for ax in fig.axes)
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[-2:] == ["train", "validation"] and len(texts) == 12
    assert all(len(t) <= 46 and "…" in t for t in texts[:10]) and len(set(texts[:10])) == 10
    box, page = legend.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0
    assert all(box.y1 <= ax.get_window_extent().y0 for ax in fig.axes)  # below the panels, over no curve
    one = plots.curves_figure({"run": records()})
    assert not one.legends and [t.get_text() for t in one.axes[0].get_legend().get_texts()] == ["train",
                                                                                               "validation"]


def test_runs_with_different_main_metrics_get_a_panel_each(monkeypatch):
    """A classifier's accuracy (0.6) and a language model's perplexity (70) on one axis would draw
    the accuracy as a flat line at zero: each metric gets its own panel and its own runs."""
    lm = [{"event": "started", "main_metric": "perplexity"}] + [
        {"event": "eval", "step": i, "metrics": {"loss": 4.2, "perplexity": 70.0 - i / 10}} for i in (50, 100)]
    drawn = {}
    original = plots._draw_curves

    def spy(ax_loss, metric_axes, records_by_run):
        original(ax_loss, metric_axes, records_by_run)
        drawn.update({m: [(line.get_label(), list(line.get_ydata())) for line in ax.lines]
                      for m, ax in metric_axes.items()})

    monkeypatch.setattr(plots, "_draw_curves", spy)
    same = plots.curves_png({"a": records(), "b": records()})
    assert list(drawn) == ["accuracy"] and [label for label, _ in drawn["accuracy"]] == ["a", "b"]
    drawn.clear()
    mixed = plots.curves_png({"clf": records(), "mlm": lm})
    assert list(drawn) == ["accuracy", "perplexity"]
    assert drawn["accuracy"] == [("clf", [0.625, 0.75])] and drawn["perplexity"] == [("mlm", [65.0, 60.0])]
    assert png_size(mixed)[0] == png_size(same)[0] * 3 // 2  # a third panel of the same width


def test_confusion_png_with_and_without_baseline(run_dir):
    eval_json(run_dir)
    ev = run_dir.read_eval()
    single, both = plots.confusion_png(ev), plots.confusion_png(ev, with_baseline=True)
    assert png_size(both)[0] > 1.6 * png_size(single)[0]
    with pytest.raises(ValueError, match="no confusion matrix"):
        plots.confusion_png({"finetuned": {"f1": 0.5}})


# ---- live display --------------------------------------------------------------------------------

def test_html_updates_are_throttled_to_five_per_second(clock, run_dir):
    shown = FakeDisplay()
    view = NotebookProgress(display=shown, chart_budget=0)
    view(started(run_dir, total=1000))
    for i in range(1, 1001):  # 1000 steps over 10 s of (fake) time
        clock.now += 0.01
        view(step(i, total=1000, loss=i % 10 == 0))
    html, chart = shown.handles
    assert len(html.objects) <= 10 * 5 + 1  # at most 5 a second, plus the first
    assert len(html.objects) >= 10 * 4  # and it does keep up
    assert len(chart.objects) - 1 <= 10 / 3 + 1  # the chart every 3 s at most
    assert view.ui_seconds > 0


def test_chart_redraws_slow_down_to_stay_within_the_budget(clock, run_dir, monkeypatch):
    import time

    def slow_svg(self):
        time.sleep(0.02)
        return "<svg xmlns='http://www.w3.org/2000/svg'/>"

    monkeypatch.setattr(LiveState, "chart_svg", slow_svg)
    view = NotebookProgress(display=FakeDisplay(), chart_interval=1.0, chart_budget=0.005)
    view(started(run_dir, total=400))
    for i in range(1, 401):  # 40 s of fake time; a 20 ms chart may be drawn every 4 s at most
        clock.now += 0.1
        view(step(i, total=400))
    assert 5 <= view.chart_updates <= 40 / 4 + 1


def test_final_state_is_progress_curves_and_metrics_against_baseline(clock, run_dir):
    shown = FakeDisplay()
    view = NotebookProgress(display=shown, confusion=True)
    view(Phase("loading data", "train.csv"))
    view(started(run_dir, total=100, model="<b>model</b>"))
    for i in range(1, 101):
        clock.now += 0.05
        view(step(i, loss=i % 10 == 0))
        if i in (50, 100):
            view(evaluation(i, 0.5 + i / 400))
    view(CheckpointSaved(step=100, path=str(run_dir.checkpoints / "checkpoint-100")))
    eval_json(run_dir)
    view(RunFinished(status="completed", metrics={"accuracy": 0.9}, baseline={"accuracy": 0.6}, elapsed=60.0,
                     train_seconds=50.0))
    html, chart, confusion = shown.handles
    final = html.objects[-1].data
    assert "completed" in final and "step 100/100" in final and "100%" in final and "ETA" not in final
    assert "&lt;b&gt;model&lt;/b&gt;" in final and "<b>model</b>" not in final  # user strings are escaped
    assert "Test metrics" in final and "0.9000" in final and "0.6000" in final and "+0.3000" in final
    assert "linear probe" in final and run_dir.id in final
    assert "val accuracy" in final and "0.7500" in final  # the evaluations table
    points = polylines(svg_of(chart.objects[-1].data))
    assert [len(p) for p in points] == [10, 2, 2]  # train loss every 10 steps, validation loss, accuracy
    assert "alt='training loss and validation metric" in chart.objects[-1].data
    assert "wb-confusion" in confusion.objects[0].data and ">9<" in confusion.objects[0].data


def test_notices_stay_in_view_while_stages_replace_each_other():
    state = LiveState()
    state.update(Phase("loading data", "train.csv"))
    state.update(Phase("data warning", "3 texts appear more than once", notice=True))
    state.update(Phase("adjusted", "train.max_length: 256 -> 128", notice=True))
    state.update(Phase("tokenizing", "1,000 texts"))
    assert state.phase == "tokenizing: 1,000 texts"
    assert state.warnings == ["data warning: 3 texts appear more than once", "adjusted: train.max_length: 256 -> 128"]
    html = state.progress_html(True)
    assert "3 texts appear more than once" in html and "tokenizing" in html


def test_summary_off_leaves_the_metrics_to_the_caller(run_dir):
    shown = FakeDisplay()
    view = NotebookProgress(display=shown, summary=False)
    view(started(run_dir))
    eval_json(run_dir)
    view(RunFinished(status="completed", metrics={"accuracy": 0.9}, baseline={}, elapsed=1.0, train_seconds=1.0))
    final = shown.handles[0].objects[-1].data
    assert "completed" in final and "Test metrics" not in final and run_dir.id in final
    assert len(shown.handles[1].objects) == 1  # no steps logged: the chart placeholder stays


def test_failure_and_interruption_are_shown_with_what_to_do(run_dir):
    shown = FakeDisplay()
    view = NotebookProgress(display=shown)
    view(Phase("loading data", "x.csv"))
    view(RunFailed(status="failed", error="data.label_column: no column 'lbl' <here>"))
    final = shown.handles[0].objects[-1].data
    assert "Failed:" in final and "no column &#x27;lbl&#x27; &lt;here&gt;" in final
    # failed before training: the reason alone, no empty progress bar and stats, no promise of curves
    assert "step 0/" not in final and "train loss" not in final
    assert len(shown.handles) == 1  # and no output left empty where the curves would have been

    shown = FakeDisplay()
    view = NotebookProgress(display=shown)
    view(started(run_dir))
    view(step(7))
    ckpt = run_dir.checkpoints / "checkpoint-8"
    run_dir.update_info(status="interrupted", resume_from=str(ckpt))
    view(RunFailed(status="interrupted", error="stopped on request"))
    final = shown.handles[0].objects[-1].data
    assert "Stopped" in final and "step 7" in final and f"train.resume_from={ckpt}" in final


def test_widget_progress_draws_the_same_state_into_widgets(clock, run_dir):
    from workbench.ui.widgets import WidgetProgress

    view = WidgetProgress()
    assert view.chart.layout.display == "none"
    view(started(run_dir))
    for i in range(1, 101):
        clock.now += 0.05
        view(step(i, loss=i % 10 == 0))
    eval_json(run_dir)
    view(RunFinished(status="completed", metrics={"accuracy": 0.9}, baseline={"accuracy": 0.6}, elapsed=6.0,
                     train_seconds=5.0))
    assert "completed" in view.html.value and "+0.3000" in view.html.value
    assert polylines(svg_of(view.chart.value)) and view.chart.layout.display == ""
    assert "wb-confusion" in view.extra.value and view.chart_note.layout.display == "none"


def test_metrics_jsonl_lines_and_live_records_agree(run_dir):
    """The live chart and a chart drawn later from metrics.jsonl use the same records."""
    from workbench.events import Emitter, MetricsWriter

    view = NotebookProgress(display=FakeDisplay())
    emit = Emitter([MetricsWriter(run_dir), view])
    emit(started(run_dir))
    for i in range(1, 21):
        emit(step(i, loss=i % 5 == 0))
    emit(evaluation(20, 0.8))
    on_disk = [json.loads(line) for line in run_dir.metrics_jsonl.read_text().splitlines()]
    assert plots.curve_series(on_disk) == plots.curve_series(view.state.records)


def test_live_chart_svg_draws_every_series_in_its_panel():
    from workbench.ui import charts

    svg = ET.fromstring(charts.curves_svg(records()))
    series = plots.curve_series(records())
    lines = polylines(svg)
    assert [len(p) for p in lines] == [len(series[k][0]) for k in ("train loss", "validation loss",
                                                                    "validation accuracy")]
    (x_train, y_train), (x_val, _), (x_acc, y_acc) = (list(zip(*p)) for p in lines)
    middle = charts.WIDTH / 2
    assert max(x_train + x_val) < middle < min(x_acc)  # loss on the left, the metric on the right
    assert all(a < b for a, b in zip(x_train, x_train[1:]))  # steps run left to right
    assert y_train[0] < y_train[-1]  # the loss falls: SVG's y grows downwards
    assert y_acc[0] > y_acc[-1]  # the accuracy rises
    texts = [t.text for t in svg.iter(f"{SVG_NS}text")]
    assert "loss" in texts and "validation accuracy" in texts and "train" in texts and "validation" in texts
    empty = ET.fromstring(charts.curves_svg([]))
    assert not polylines(empty) and [t.text for t in empty.iter(f"{SVG_NS}text")].count("no values yet") == 2


def test_live_chart_escapes_names_thins_long_runs_and_rounds_ticks():
    from workbench.ui import charts

    odd = [{"event": "started", "main_metric": "f1<&>'"}, *records()]
    odd += [{"event": "eval", "step": 120, "metrics": {"f1<&>'": 0.5}}, {"event": "eval", "step": 130,
                                                                        "metrics": {"f1<&>'": 0.6}}]
    titles = [t.text for t in ET.fromstring(charts.curves_svg(odd)).iter(f"{SVG_NS}text")]
    assert "validation f1<&>'" in titles  # escaped in the XML, the same text once parsed
    long = [{"event": "step", "step": i, "loss": 1.0 + (i % 7 == 0)} for i in range(1, 20_001)]
    train = polylines(ET.fromstring(charts.curves_svg(long)))[0]
    assert len(train) <= 2 * charts.WIDTH  # at most two points per pixel column
    assert {round(y, 1) for _, y in train} == {round(y, 1) for _, y in polylines(ET.fromstring(
        charts.curves_svg(long[:50])))[0]}  # both levels kept: spikes are not thinned away
    assert charts.nice_ticks(0.51, 0.76) == [0.55, 0.6, 0.65, 0.7, 0.75]
    assert charts.nice_ticks(1, 500, 6) == [100, 200, 300, 400, 500]
    ticks = charts.nice_ticks(0.0, 1.0)
    assert [charts._tick_label(t, ticks) for t in ticks] == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    img = charts.svg_img("<svg/>", "a 'chart' <x>")
    assert img.startswith("<img src='data:image/svg+xml;base64,") and "alt='a &#x27;chart&#x27; &lt;x&gt;'" in img


def test_confusion_html_shades_rows_and_escapes_labels(run_dir):
    from workbench.ui import charts

    eval_json(run_dir)
    ev = run_dir.read_eval()
    single, both = charts.confusion_html(ev), charts.confusion_html(ev, with_baseline=True)
    assert single.count("<table") == 1 and both.count("<table") == 2
    assert "fine-tuned</b> (accuracy" in both and "baseline</b> (accuracy" in both
    weird = {"confusion_matrix": {"labels": ["<script>", "b"], "finetuned": [[3, 1], [0, 4]]}}
    page = charts.confusion_html(weird)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert f"background-color:{charts.blues(0.75)};color:white" in page  # 3 of 4 in the row: dark, white ink
    assert f"background-color:{charts.blues(0.25)};color:#222" in page
    assert charts.blues(0.0) == "#f7fbff" and charts.blues(1.0) == "#08306b"
    with pytest.raises(ValueError, match="no confusion matrix"):
        charts.confusion_html({"finetuned": {"f1": 0.5}})


def test_the_live_display_never_imports_matplotlib(run_dir):
    """Its fixed cost (import, first figure) alone would exceed the display's 1 % budget on short runs."""
    import subprocess
    import sys

    code = f"""
import sys, json
from workbench.ui.live import NotebookProgress
from workbench.ui.widgets import WidgetProgress
from workbench.events import RunStarted, Step, Evaluation, RunFinished
from workbench.runs import RunDir
from pathlib import Path
rd = RunDir(Path({str(run_dir.path)!r}))
for view in (NotebookProgress(display=lambda obj: type("H", (), {{"update": lambda self, o: None}})(),
                              confusion=True), WidgetProgress()):
    view(RunStarted(run_id=rd.id, run_dir=str(rd.path), task="text-classification", model="m", total_steps=20,
                    num_train=8, device="cpu", precision="fp32", main_metric="accuracy"))
    for i in range(1, 21):
        view(Step(step=i, total_steps=20, epoch=i / 10, loss=1 / i, learning_rate=1e-4, grad_norm=None,
                  samples_per_second=8.0, tokens_per_second=800.0, elapsed=i, eta=20 - i))
    view(Evaluation(step=20, epoch=2.0, split="validation", metrics={{"loss": 0.5, "accuracy": 0.8}}))
    view(RunFinished(status="completed", metrics={{"accuracy": 0.9}}, baseline={{"accuracy": 0.6}}, elapsed=3.0,
                     train_seconds=2.0))
    assert view.chart_updates >= 1
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("matplotlib", "PIL"))))
"""
    eval_json(run_dir)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []



def test_comparing_runs_of_different_tasks_keeps_their_metrics_apart(tmp_path):
    """%finetune_compare on a classifier and a masked LM: both report "accuracy", of texts and of
    masked tokens; they get a row each, labelled with the task, and the task is shown."""
    from workbench.ui.compare import compare_html

    def made(name, task):
        rd = RunDir.create(tmp_path, name, task)
        rd.update_info(task=task, name=name, status="completed")
        return rd

    clf = made("clf", "text-classification")
    eval_json(clf)
    mlm = made("mlm", "masked-lm")
    atomic_write_json(mlm.eval_json, {"main_metric": "perplexity", "num_examples": 9, "example_unit": "blocks of 64 tokens",
                                      "finetuned": {"perplexity": 70.5, "accuracy": 0.0274},
                                      "baseline": {"perplexity": 90.0, "accuracy": 0.01}})
    def table(html):  # row label -> its cells (styled() puts an inline style on every cell)
        return {label: re.findall(r"<td[^>]*>(.*?)</td>", rest)
                for label, rest in re.findall(r"<tr><td[^>]*>([^<]*)</td>(.*?)</tr>", html)}

    cells = table(compare_html([clf, mlm]))
    assert cells["task"] == ["text-classification", "masked-lm"]
    assert "accuracy" not in cells
    assert cells["accuracy (text-classification)"][0].startswith("<b>0.9000</b>")
    assert cells["accuracy (text-classification)"][1] == "<b></b>"
    assert cells["accuracy (masked-lm)"][0] == "<b></b>"
    assert cells["accuracy (masked-lm)"][1].startswith("<b>0.0274</b>")
    # runs of one task share their rows, with no task row
    other = made("clf2", "text-classification")
    eval_json(other)
    same = table(compare_html([clf, other]))
    assert "task" not in same and "accuracy" in same and "f1_macro" in same


def test_runs_sharing_a_name_are_told_apart_and_one_run_named_twice_is_shown_once(tmp_path, monkeypatch):
    """A named cell re-run with one setting changed gives two runs of one name: columns and curves
    use their ids then. `latest` and the id of the same run name it once."""
    from workbench.ui import compare

    first = RunDir.create(tmp_path, "p1", "text-classification")
    second = RunDir.create(tmp_path, "p1", "text-classification")
    for rd in (first, second):
        rd.update_info(name="p1", task="text-classification", status="completed")
        eval_json(rd)
    drawn = []
    monkeypatch.setattr("workbench.plots.curves_png", lambda runs, **kw: drawn.append(list(runs)) or b"png")
    html = compare.compare_html([first, second, RunDir(second.path)])
    assert html.count(f">{first.id}</th>") == 1 and html.count(f">{second.id}</th>") == 1 and ">p1</th>" not in html
    compare.compare_png([first, second, RunDir(second.path)])
    assert drawn == [[first.id, second.id]]


def test_muted_text_follows_the_theme(run_dir):
    """Headers, captions and notes use JupyterLab's muted text colour (light on the dark theme), with
    the light theme's grey as the fallback where no theme is loaded (an exported page)."""
    from workbench.ui.charts import confusion_html
    from workbench.ui.live import styled

    eval_json(run_dir)
    for html in (styled("<table class='x'><tr><th>loss</th></tr></table>"),
                 confusion_html(run_dir.read_eval(), with_baseline=True)):
        assert "color:#555" not in html and "color:#666" not in html
        assert "color:var(--jp-ui-font-color2,#555)" in html


def test_a_background_cell_leaves_plain_html_of_its_final_state(clock, run_dir):
    """Once a --background run ends, its Stop button and widget view give way to HTML, which a saved
    notebook keeps (widget views need their kernel)."""
    import ipywidgets as w

    from workbench.magics import _SettleWhenDone
    from workbench.ui.widgets import WidgetProgress

    class Handle:
        def __init__(self):
            self.shown = []

        def update(self, obj):
            self.shown.append(obj)

    view = WidgetProgress(summary=True)
    stop = w.Button(description="Stop")
    settle = _SettleWhenDone(view, stop)
    settle.handle = Handle()
    events = [started(run_dir, total=20)] + [step(i, total=20) for i in range(1, 21)] + [evaluation(20, 0.8)]
    for event in events:
        clock.now += 0.5
        view(event)
        settle(event)
    assert settle.handle.shown == [] and not stop.disabled  # still training: the widgets stay
    eval_json(run_dir)
    for event in (RunFinished(status="completed", metrics={"accuracy": 0.9}, baseline={"accuracy": 0.6},
                              elapsed=10.0, train_seconds=9.0),) * 2:
        view(event)
        settle(event)
    assert stop.disabled and len(settle.handle.shown) == 1  # once
    final = settle.handle.shown[0].data
    assert "completed" in final and "step 20/20" in final
    assert "<img" in final and "wb-confusion" in final  # the curves and the confusion matrices


def test_a_run_that_fails_before_training_shows_what_it_was_and_leaves_no_empty_output(run_dir):
    """finetune() in a cell gets its events only: a run that fails loading its data says no blank task
    and model ("new run · on ·"), and no chart output is left empty (nbconvert keeps it as an empty
    output); a front end that named the run (``describe``) gets its id, task and model in the header."""
    from types import SimpleNamespace

    shown = FakeDisplay()
    view = NotebookProgress(display=shown)
    view(Phase("loading data", "x.csv"))
    view(RunFailed(status="failed", error="data.label_column: no column 'queue'"))
    final = shown.handles[0].objects[-1].data
    assert "<code></code>" not in final and " on " not in final and "&middot;  " not in final
    assert "new run</b> &middot; <span" in final and "no column" in final
    assert len(shown.handles) == 1 and all(h.objects[-1].data for h in shown.handles)

    shown = FakeDisplay()
    view = NotebookProgress(display=shown)
    view.state.describe(run_dir, SimpleNamespace(task="text-classification", model="/m/bert"))
    view(RunFailed(status="failed", error="no column"))
    final = shown.handles[0].objects[-1].data
    assert f"<b>{run_dir.id}</b> &middot; text-classification on <code>/m/bert</code>" in final
    assert len(shown.handles) == 1

    # failed once training began, before a step was logged: the curves' place says so, rather than empty
    shown = FakeDisplay()
    view = NotebookProgress(display=shown)
    view(started(run_dir))
    assert "curves appear" in shown.handles[1].objects[-1].data
    view(RunFailed(status="failed", error="CUDA out of memory"))
    assert len(shown.handles) == 2 and "No curves" in shown.handles[1].objects[-1].data


def test_finetune_names_the_run_task_and_model_in_its_view_when_the_data_fails(tmp_path, tiny_bert, clf_csv):
    """finetune() makes the run folder inside execute(): the view still learns the run, task and model
    before the data is read."""
    from workbench import finetune
    from workbench.errors import DataError

    from builders import tiny_config

    shown = FakeDisplay()
    view = NotebookProgress(display=shown)
    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs")
    cfg["data"]["label_column"] = "queue"
    with pytest.raises(DataError, match="no column 'queue'"):
        finetune(cfg, sinks=[view], progress=False)
    final = shown.handles[0].objects[-1].data
    run_id = next((tmp_path / "runs").iterdir()).name
    assert f"<b>{run_id}</b> &middot; text-classification on <code>{tiny_bert}</code>" in final
