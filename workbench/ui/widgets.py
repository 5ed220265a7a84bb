"""Live progress as ipywidgets, for runs on a training thread.

The thread that trains must not print or display: output from a thread lands in whichever cell
the kernel is busy with. Setting widget traits is safe from any thread (ipywidgets sends the
change over the comm), so ``WidgetProgress`` draws the same HTML, chart and confusion matrices as
``NotebookProgress`` into ``HTML`` widgets that the main thread displayed beforehand.
"""

from __future__ import annotations

from typing import Any

from .live import CHART_PLACEHOLDER, LiveView


class WidgetProgress(LiveView):
    """Progress bar, stats, evaluations and outcome, curves (SVG) and confusion matrices as widgets."""

    def __init__(self, interval: float = 0.2, chart_interval: float = 3.0, chart_budget: float = 0.004,
                 confusion: bool = True, summary: bool = True):
        import ipywidgets as w

        super().__init__(interval, chart_interval, chart_budget, confusion, summary)
        self.html = w.HTML(value="")
        self.chart_note = w.HTML(value=CHART_PLACEHOLDER)
        self.chart = w.HTML(value="", layout=w.Layout(display="none", max_width="820px"))
        self.extra = w.HTML(value="", layout=w.Layout(display="none"))
        self.box = w.VBox([self.html, self.chart_note, self.chart, self.extra])

    def put_html(self, text: str) -> None:
        self.html.value = text

    def put_chart(self, tag: str) -> None:
        self.chart.value = tag
        self.chart.layout.display = ""
        self.chart_note.layout.display = "none"

    def put_extra(self, text: str) -> None:
        self.extra.value = text
        self.extra.layout.display = ""

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)

    def widget(self) -> Any:
        return self.box
