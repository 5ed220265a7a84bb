"""Charts as PNG bytes: training curves, several runs overlaid, and confusion matrices.

Figures are built with ``matplotlib.figure.Figure`` on the Agg canvas, never through pyplot:
pyplot keeps global state and an interactive backend, while these functions run from the
notebook, from a training thread feeding a widget, and from report templates alike. PNG bytes
are what a notebook output, an ``ipywidgets.Image`` and an HTML report all embed as they are.

Records are the run directory's ``metrics.jsonl`` objects (see ``workbench.events``):
``{"event": "step", "step", "loss", "learning_rate", ...}``, ``{"event": "eval", "step",
"metrics": {...}}`` and ``{"event": "started", "main_metric", ...}``.
"""

from __future__ import annotations

import io
import math
from typing import Any

# Matplotlib's default cycle, so runs keep their colour across every chart of a report.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")

def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _figure(width: float, height: float, layout: str | None = "constrained") -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout)
    return fig, FigureCanvasAgg(fig)


def _png(fig: Any, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(alpha=0.25, linewidth=0.6)
    ax.tick_params(labelsize=8)


# ---- curves --------------------------------------------------------------------------------------

def main_metric_of(records: list[dict]) -> str | None:
    """The validation metric to plot: the task's main metric, else the first one logged besides loss."""
    for r in records:
        if r.get("event") == "started" and r.get("main_metric"):
            return r["main_metric"]
    for r in records:
        if r.get("event") == "eval":
            keys = [k for k, v in (r.get("metrics") or {}).items() if _finite(v) and k not in ("loss", "epoch")]
            if keys:
                return keys[0]
    return None


def curve_series(records: list[dict], metric: str | None = None) -> dict[str, tuple[list[float], list[float]]]:
    """``{"train loss": (steps, values), "validation loss": ..., "validation <metric>": ...}`` from records."""
    metric = metric or main_metric_of(records)
    series: dict[str, tuple[list[float], list[float]]] = {}

    def add(name: str, step: Any, value: Any) -> None:
        if _finite(step) and _finite(value):
            xs, ys = series.setdefault(name, ([], []))
            xs.append(float(step))
            ys.append(float(value))

    for r in records:
        if r.get("event") == "step":
            add("train loss", r.get("step"), r.get("loss"))
        elif r.get("event") == "eval":
            m = r.get("metrics") or {}
            add("validation loss", r.get("step"), m.get("loss"))
            if metric and metric != "loss":
                add(f"validation {metric}", r.get("step"), m.get(metric))
    return series


def curves_png(records_by_run: dict[str, list[dict]], dpi: int = 96, width: float = 8.0) -> bytes:
    """``curves_figure`` as PNG bytes."""
    return _png(curves_figure(records_by_run, width), dpi)


def curves_figure(records_by_run: dict[str, list[dict]], width: float = 8.0) -> Any:
    """Loss (train solid, validation dashed) and the validation main metric against steps, one colour per run.

    One run gives a training chart; several give an overlay for comparison. Runs whose main metrics
    differ (a classifier's accuracy beside a language model's perplexity) get a panel per metric,
    since one axis would flatten the smaller numbers to a line at zero. A run with no logged steps
    yet draws empty axes with a note, so a live display can show it from the start.
    """
    metrics = list(dict.fromkeys(m for m in (main_metric_of(r) for r in records_by_run.values())
                                 if m and m != "loss")) or [None]
    panels = 1 + len(metrics)
    # Several runs share one legend below the panels (a colour per run, named once; the line style
    # says train or validation): inside the axes, long run names covered the curves and ran off the
    # figure. Its rows add to the figure's height, so the panels keep theirs.
    names = list(records_by_run)
    columns = max(1, min(len(names), int(panels * 2)))
    rows = -(-len(names) // columns) if len(names) > 1 else 0
    legend_in = 0.22 * (rows + 1) if rows else 0.0
    height = 3.0 + legend_in
    # Fixed margins instead of a constrained layout, and fixed legend places: those two searches were
    # most of the drawing time.
    fig, _ = _figure(width * panels / 2, height, layout=None)
    fig.subplots_adjust(left=0.14 / panels, right=0.98, bottom=(0.48 + legend_in) / height, top=1 - 0.3 / height,
                        wspace=0.22)
    ax_loss, *ax_metrics = fig.subplots(1, panels)
    _draw_curves(ax_loss, dict(zip(metrics, ax_metrics)), records_by_run)
    if rows:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=COLORS[i % len(COLORS)], linewidth=2) for i in range(len(names))]
        handles += [Line2D([], [], color="#666", linewidth=1.4),
                    Line2D([], [], color="#666", linewidth=1.4, linestyle="--", marker="o", markersize=3)]
        labels = _short_names(names, 46 if columns <= 2 else 30) + ["train", "validation"]
        fig.legend(handles, labels, loc="lower center", ncol=columns, frameon=False, fontsize=7,
                   bbox_to_anchor=(0.5, 0.02), handlelength=1.8, columnspacing=1.4)
    return fig


def _short_names(names: list[str], limit: int) -> list[str]:
    """Run names of at most ``limit`` characters that still differ. A long name is cut in the middle;
    where that makes names alike (runs of one experiment share a long start and end, such as
    "ticket-routing-lr-3e-5-final"), those names lose their shared start and end instead."""
    import os

    def cut(text: str) -> str:
        return text if len(text) <= limit else text[:limit // 2 - 1] + "…" + text[-(limit - limit // 2):]

    out = [cut(n) for n in names]
    for text in set(out):
        group = [i for i, o in enumerate(out) if o == text]
        alike = [names[i] for i in group]
        if len(set(alike)) < 2:
            continue
        prefix = os.path.commonprefix(alike)
        suffix = os.path.commonprefix([n[len(prefix):][::-1] for n in alike])[::-1]
        head = prefix if len(prefix) <= 12 else prefix[:10] + "…"
        tail = suffix if len(suffix) <= 8 else "…" + suffix[-6:]
        for i, n in zip(group, alike):
            out[i] = cut(head + n[len(prefix):len(n) - len(suffix)] + tail)
    return out


def _draw_curves(ax_loss: Any, metric_axes: dict[str | None, Any], records_by_run: dict[str, list[dict]]) -> None:
    """``metric_axes``: an axis per validation metric (one, keyed None, when no run has a metric yet)."""
    several = len(records_by_run) > 1  # then the figure has one legend of its own (curves_figure)
    for i, (name, records) in enumerate(records_by_run.items()):
        color = COLORS[i % len(COLORS)]
        label = name if several else None
        for key, (xs, ys) in curve_series(records).items():
            if key == "train loss":
                ax_loss.plot(xs, ys, color=color, linewidth=1.4, label=f"{label} train" if label else "train")
            elif key == "validation loss":
                ax_loss.plot(xs, ys, color=color, linewidth=1.4, linestyle="--", marker="o", markersize=3,
                             label=f"{label} validation" if label else "validation")
            else:
                ax = metric_axes.get(key.removeprefix("validation ")) or next(iter(metric_axes.values()))
                ax.plot(xs, ys, color=color, linewidth=1.4, marker="o", markersize=3, label=label)
    ax_loss.set_title("loss", fontsize=9)
    for metric, ax in metric_axes.items():
        ax.set_title(f"validation {metric or 'metric'}", fontsize=9)
    for ax, place in [(ax_loss, "upper right")] + [(ax, "best") for ax in metric_axes.values()]:
        _style(ax)
        ax.set_xlabel("step", fontsize=8)
        if not several and any(not str(line.get_label()).startswith("_") for line in ax.lines):
            ax.legend(frameon=False, fontsize=7, loc=place)
        if not ax.lines:
            ax.text(0.5, 0.5, "no values yet", transform=ax.transAxes, ha="center", va="center", color="#888",
                    fontsize=9)


# ---- confusion matrix ----------------------------------------------------------------------------

def confusion_panels(evaluation: dict, with_baseline: bool = False) -> tuple[list[str], list[tuple[str, list]]]:
    """Labels and ``[("fine-tuned", matrix), ("baseline", matrix)]`` (the baseline when asked and recorded)
    from an eval.json dict; a clear error when it holds no confusion matrix."""
    cm = evaluation.get("confusion_matrix") or {}
    labels = [str(x) for x in cm.get("labels") or []]
    if not labels or not cm.get("finetuned"):
        raise ValueError("this evaluation has no confusion matrix (only classification tasks record one).")
    panels = [("fine-tuned", cm["finetuned"])]
    if with_baseline and cm.get("baseline"):
        panels.append(("baseline", cm["baseline"]))
    return labels, panels


def confusion_png(evaluation: dict, with_baseline: bool = False, dpi: int = 96) -> bytes:
    """The test-split confusion matrix of the fine-tuned model from an eval.json dict.

    Cells are coloured by the share of the true class (rows sum to 1) and annotated with counts.
    ``with_baseline`` puts the base model's matrix beside it when eval.json has one.
    """
    labels, panels = confusion_panels(evaluation, with_baseline)
    n = len(labels)
    side = min(9.0, max(2.6, 0.55 * n + 1.6))
    fig, _ = _figure(side * len(panels), side * 0.92)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    short = [lab if len(lab) <= 14 else lab[:13] + "…" for lab in labels]
    for ax, (title, matrix) in zip(axes, panels):
        rows = [[float(v) for v in row] for row in matrix]
        shares = [[v / (sum(row) or 1.0) for v in row] for row in rows]
        ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        if n <= 25:
            for i, row in enumerate(rows):
                for j, v in enumerate(row):
                    ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=8 if n <= 12 else 6,
                            color="white" if shares[i][j] > 0.55 else "#222")
        ax.set_xticks(range(n), short, rotation=45 if n > 4 or max(map(len, short)) > 6 else 0, ha="right"
                      if n > 4 else "center", fontsize=8)
        ax.set_yticks(range(n), short, fontsize=8)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        total = sum(map(sum, rows)) or 1.0
        correct = sum(rows[i][i] for i in range(n))
        ax.set_title(f"{title} (accuracy {correct / total:.1%})", fontsize=9)
    return _png(fig, dpi)


# ---- data summaries (report templates) -----------------------------------------------------------

def length_histogram_png(lengths: dict[str, list[int]], max_length: int | None, unit: str = "tokens",
                         dpi: int = 96) -> bytes:
    """Overlaid histograms of example lengths per split, with the truncation limit marked."""
    import numpy as np

    fig, _ = _figure(7.0, 2.8)
    ax = fig.add_subplot()
    every = [x for v in lengths.values() for x in v]
    top = max(every) if every else 1
    # a few very long texts would squash the rest into one bar: the axis ends at the 99th percentile
    # (or just past max_length), and the last bar holds everything longer
    cap = int(max(np.percentile(every, 99) if every else 1, (max_length or 0) * 1.15, 1))
    bins = np.linspace(0, cap + 1, min(50, cap + 2))
    for i, (name, values) in enumerate(lengths.items()):
        if values:
            ax.hist(np.minimum(values, cap), bins=bins, alpha=0.55, color=COLORS[i % len(COLORS)],
                    label=f"{name} ({len(values)})")
    if max_length:
        ax.axvline(max_length, color="#c62828", linestyle="--", linewidth=1.2, label=f"max_length {max_length}")
    longer = f"; the last bar holds all longer than {cap}, up to {top}" if top > cap else ""
    ax.set_xlabel(f"length ({unit}){longer}", fontsize=9)
    ax.set_ylabel("examples", fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    _style(ax)
    return _png(fig, dpi)


def value_histogram_png(values: dict[str, list[float]], what: str = "target", dpi: int = 96) -> bytes:
    """Overlaid histograms of a numeric target per split (regression), on shared bins."""
    import numpy as np

    fig, _ = _figure(7.0, 2.8)
    ax = fig.add_subplot()
    every = np.asarray([x for v in values.values() for x in v if _finite(x)], dtype=float)
    low, high = (float(every.min()), float(every.max())) if every.size else (0.0, 1.0)
    bins = np.linspace(low, high if high > low else low + 1.0, 31)
    for i, (name, vals) in enumerate(values.items()):
        finite = [x for x in vals if _finite(x)]
        if finite:
            ax.hist(finite, bins=bins, alpha=0.55, color=COLORS[i % len(COLORS)], label=f"{name} ({len(finite)})")
    ax.set_xlabel(what, fontsize=9)
    ax.set_ylabel("examples", fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    _style(ax)
    return _png(fig, dpi)


def distribution_png(counts: dict[str, dict[str, int]], what: str = "label", dpi: int = 96) -> bytes:
    """Grouped horizontal bars: the share of each label (or entity type) in each split."""
    import numpy as np

    labels = sorted({k for c in counts.values() for k in c}, key=str)
    splits = [s for s in counts if counts[s]]
    height = 0.8 / max(len(splits), 1)
    fig, _ = _figure(7.0, max(1.6, 0.3 * len(labels) * max(1, len(splits)) ** 0.5 + 0.9))
    ax = fig.add_subplot()
    y = np.arange(len(labels))
    for i, split in enumerate(splits):
        total = sum(counts[split].values()) or 1
        ax.barh(y + i * height, [counts[split].get(k, 0) / total for k in labels], height=height,
                color=COLORS[i % len(COLORS)], label=split)
    ax.set_yticks(y + height * (len(splits) - 1) / 2, [str(k)[:30] for k in labels])
    ax.invert_yaxis()
    ax.set_xlabel(f"share of {what}s in the split", fontsize=9)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _style(ax)
    return _png(fig, dpi)
