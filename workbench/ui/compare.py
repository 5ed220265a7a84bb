"""Past runs side by side: a runs table, a comparison (metrics, config differences, overlaid curves),
and ``RunComparison``, a widget that lists the runs directory and overlays the chosen runs.

The HTML and PNG builders are plain functions of run directories, shared by ``%finetune_runs``,
``%finetune_compare`` and the widget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..render import (MUTED, fmt, fmt_delta, fmt_parameters, fmt_seconds, fmt_setting_values, metric_rows,
                      setting_differences)
from ..runs import RunDir, default_runs_dir, list_runs, validation_text
from .live import STATUS_COLORS, esc, run_dir_link, styled


def _status(status: Any) -> str:
    color = STATUS_COLORS.get(str(status), "#555")
    return f"<span style='color:{color}'><b>{esc(status)}</b></span>"


def runs_table_html(rows: list[dict], root: Path | str | None = None) -> str:
    """One row per run (newest first): name, task, model, status, main metric against the baseline."""
    if not rows:
        return f"<div>No runs under <code>{esc(root if root is not None else default_runs_dir())}</code> yet.</div>"
    body = []
    for r in rows:
        value, base = r.get("value"), r.get("baseline")
        metric = ""
        if isinstance(value, (int, float)):
            metric = f"{esc(r.get('main_metric'))} <b>{fmt(value)}</b>"
            if isinstance(base, (int, float)):
                metric += f" (baseline {fmt(base)}, {fmt_delta(value - base)})"
        else:
            # no test metrics yet (running) or ever (stopped, failed): the latest validation value
            parts = []
            if r.get("status") == "running" and isinstance(r.get("progress"), dict):
                p = r["progress"]
                parts.append(f"step {esc(p.get('step'))}/{esc(p.get('total_steps'))}")
            if text := validation_text(r):
                parts.append(esc(text))
            if r.get("error") and r.get("status") != "running":
                parts.append(f"<span style='color:#c62828'>{esc(str(r['error'])[:120])}</span>")
            metric = " · ".join(parts)
        body.append(f"<tr><td>{run_dir_link(r['path'])}</td><td>{esc(r.get('name') or '')}</td>"
                    f"<td>{esc(r.get('task') or '')}</td><td>{esc(_short(r.get('model')))}</td>"
                    f"<td>{_status(r.get('status'))}</td><td>{metric}</td>"
                    f"<td>{esc((r.get('created_at') or '')[:16].replace('T', ' '))}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("run", "name", "task", "model", "status", "metric", "created"))
    return styled(f"<table class='wb-runs'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _short(model: Any) -> str:
    text = "" if model is None else str(model)
    return text if len(text) <= 40 else "…" + text[-39:]


def _label(rd: RunDir, info: dict) -> str:
    return str(info.get("name") or rd.id)


def _distinct(run_dirs: list[RunDir]) -> list[RunDir]:
    """Each run once (``latest`` and its id name the same run), in the order given."""
    seen: set = set()
    out = []
    for rd in run_dirs:
        key = Path(rd.path).resolve()
        if key not in seen:
            seen.add(key)
            out.append(rd)
    return out


def _labels(run_dirs: list[RunDir], infos: list[dict]) -> list[str]:
    """A label per run: its name, or its id where runs share a name (a cell re-run with one setting
    changed keeps its --name), so no two columns or curves read alike."""
    names = [_label(rd, info) for rd, info in zip(run_dirs, infos)]
    return [name if names.count(name) == 1 else rd.id for name, rd in zip(names, run_dirs)]


def compare_html(run_dirs: list[RunDir]) -> str:
    """Test metrics of several runs side by side (baseline beside each), and the settings that differ."""
    run_dirs = _distinct(run_dirs)
    infos = [_safe_info(rd) for rd in run_dirs]
    evals = [rd.read_eval() or {} for rd in run_dirs]
    labels = _labels(run_dirs, infos)
    head = "<th>metric (test)</th>" + "".join(f"<th>{esc(lab)}</th>" for lab in labels)
    tasks = [i.get("task") for i in infos]
    rows = ["<tr><td>status</td>" + "".join(f"<td>{_status(i.get('status'))}</td>" for i in infos) + "</tr>"]
    if len(set(tasks)) > 1:
        rows.append("<tr><td>task</td>" + "".join(f"<td>{esc(t)}</td>" for t in tasks) + "</tr>")
    for label, k, task in metric_rows(list(zip(tasks, evals))):
        cells = []
        for t, ev in zip(tasks, evals):
            v = (ev.get("finetuned") or {}).get(k) if t == task else None
            b = (ev.get("baseline") or {}).get(k) if t == task else None
            cells.append(f"<td><b>{fmt(v)}</b>" + (f" <span style='color:{MUTED}'>(baseline {fmt(b)})</span>"
                                                   if isinstance(b, (int, float)) else "") + "</td>")
        rows.append(f"<tr><td>{esc(label)}</td>{''.join(cells)}</tr>")
    rows.append("<tr><td>training time (s)</td>"
                + "".join(f"<td>{fmt_seconds(i.get('train_seconds'))}</td>" for i in infos) + "</tr>")
    # what sets LoRA and frozen runs apart from full fine-tuning, and what they cost
    rows.append("<tr><td>trainable parameters</td>"
                + "".join(f"<td>{esc(fmt_parameters(i.get('parameters')))}</td>" for i in infos) + "</tr>")
    table = f"<table class='wb-compare'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return styled(table + config_diff_html(run_dirs, labels))


def config_diff_html(run_dirs: list[RunDir], labels: list[str]) -> str:
    """The config keys whose values differ between the runs (what the comparison is about); a cell of a
    run that does not use the setting (lora.r with LoRA off) says so instead of showing a value."""
    differ, unused = setting_differences(run_dirs, skip=("name",))
    if not differ:
        return f"<div style='color:{MUTED}'>Same settings in every run.</div>"
    head = "<th>setting</th>" + "".join(f"<th>{esc(lab)}</th>" for lab in labels)
    rows = []
    for k, per_run in differ.items():
        cells = [f"<td style='color:{MUTED}' title='{esc(why)}'>not used</td>" if why else
                 f"<td style='color:{MUTED}'>{esc(text)}</td>" if v is None else f"<td>{esc(text)}</td>"
                 for v, text, why in zip(per_run, fmt_setting_values(per_run), unused[k])]
        rows.append(f"<tr><td>{esc(k)}</td>{''.join(cells)}</tr>")
    notes = [f"{k} in {', '.join(lab for lab, why in zip(labels, whys) if why)}: {next(w for w in whys if w)}"
             for k, whys in unused.items() if k in differ and any(whys)]
    note = (f"<div style='color:{MUTED}'>Not used by a run, so no difference there: {esc('; '.join(notes))}.</div>"
            if notes else "")
    return (f"<div><b>Settings that differ</b></div><table class='wb-compare'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{note}")


def compare_png(run_dirs: list[RunDir]) -> bytes:
    """Loss and validation metric curves of the runs, overlaid."""
    from ..plots import curves_png

    run_dirs = _distinct(run_dirs)
    labels = _labels(run_dirs, [_safe_info(rd) for rd in run_dirs])
    return curves_png({label: rd.read_metrics(0)[0] for label, rd in zip(labels, run_dirs)})


def _safe_info(rd: RunDir) -> dict:
    try:
        return rd.read_info()
    except Exception:  # a broken run directory is shown as such, not raised from a display
        return {"status": "unknown"}


class RunComparison:
    """Lists the runs directory; the selected runs are compared side by side with overlaid curves."""

    def __init__(self, runs_dir: str | Path | None = None, selected: int = 3):
        import ipywidgets as w

        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.selected = selected
        self.select = w.SelectMultiple(options=[], rows=6, description="runs",
                                       layout=w.Layout(width="100%"), style={"description_width": "48px"})
        self.refresh_button = w.Button(description="Refresh", icon="refresh", tooltip="read the runs directory again")
        self.table = w.HTML()
        self.chart = w.Image(format="png", layout=w.Layout(display="none", max_width="820px"))
        self.refresh_button.on_click(lambda _: self.refresh())
        self._quiet = False
        self._chosen = False  # whether the user picked runs (else the newest are picked at each refresh)
        self.select.observe(self._picked, names="value")
        self.box = w.VBox([w.HBox([self.select, self.refresh_button]), self.table, self.chart])
        self.refresh(selected)

    def refresh(self, selected: int | None = None) -> None:
        """Read the runs directory again; keep the selection, or select the ``selected`` newest runs."""
        rows = list_runs(self.runs_dir)
        keep = set(self.select.value)
        options = []
        names = [r.get("name") or r["id"] for r in rows]
        for r, name in zip(rows, names):
            value = r.get("value")
            metric = f" · {r.get('main_metric')} {value:.4f}" if isinstance(value, (int, float)) else ""
            label = name if names.count(name) == 1 else r["id"]  # as _labels names the columns and curves
            options.append((f"{label} · {r.get('status')}{metric}", r["path"]))
        if selected or not keep or not self._chosen:  # not chosen by hand: the newest runs with results
            with_results = [r["path"] for r in rows if r.get("status") == "completed"]
            keep = set(with_results[:selected or self.selected])
        self._quiet = True  # one redraw below, not one per trait change
        try:
            self.select.options = options
            self.select.value = tuple(p for _, p in options if p in keep)
        finally:
            self._quiet = False
        if not options:
            self.table.value = runs_table_html([], self.runs_dir)
        self.show()

    def _picked(self, _change: Any) -> None:
        if not self._quiet:
            self._chosen = True
            self.show()

    def show(self) -> None:
        dirs = [RunDir(Path(p)) for p in self.select.value]
        if not dirs:
            self.chart.layout.display = "none"
            if self.select.options:
                self.table.value = f"<div style='color:{MUTED}'>Select runs to compare.</div>"
            return
        self.table.value = compare_html(dirs)
        self.chart.value = compare_png(dirs)
        self.chart.layout.display = ""

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)
