"""The live display's charts as text: training curves as SVG, confusion matrices as an HTML table.

A live display pays for its charts on every run, and matplotlib's part is fixed: importing it takes
about 0.45 s and its first figure another 0.1 s, the confusion matrices' PNG 0.16 s, which on a
one-minute run is more than the display's whole 1 % budget. These views need only lines, markers,
ticks and shaded cells, so they are written out as SVG and HTML text here (about a millisecond per
chart) instead of being drawn by a plotting library. Reports and run comparisons, drawn once after
training, keep matplotlib's charts (``workbench.plots``).

The SVG is shown as an ``<img>`` with a data URI: JupyterLab's HTML sanitizer drops inline ``<svg>``
from untrusted notebooks (an executed notebook opened later is untrusted) but keeps data-URI images;
an SVG loaded as an image cannot run scripts or load anything; nbconvert and the report page's
Content-Security-Policy (``img-src data:``) show it as it is. The table uses inline styles only,
which the sanitizer keeps as well.
"""

from __future__ import annotations

import base64
import html
import math
from typing import Any

from ..plots import COLORS, confusion_panels, curve_series
from ..render import MUTED

WIDTH, HEIGHT = 768, 288  # the size of the matplotlib chart it replaces (8 x 3 inches at 96 dpi)
_LEFT, _RIGHT, _TOP, _BOTTOM, _GAP = 52, 12, 26, 36, 48
_FONT = "font-family='DejaVu Sans,Helvetica,Arial,sans-serif'"
_GRID = "#e4e4e4"
_AXIS = "#444"


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering ``[lo, hi]``, about ``count`` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / count  # the smallest round step that gives at most count + 1 ticks
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw * 0.999)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, k = [], 0
    while first + k * step <= hi + step * 1e-9:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks


def _tick_label(value: float, ticks: list[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value) or 1.0
    if step >= 1 and all(float(t).is_integer() for t in ticks):
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.0f}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if round(step / 10 ** math.floor(
        math.log10(step) + 1e-9), 6) == 2.5 else 0)
    text = f"{value:.{decimals}f}"
    return text.lstrip("-") if float(text) == 0 else text


def _limits(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi == lo:
        pad = abs(lo) * 0.05 or 0.5
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05  # matplotlib's default margin
    return lo - pad, hi + pad


def _thin(points: list[tuple[float, float]], columns: int) -> list[tuple[float, float]]:
    """At most the lowest and the highest point per pixel column, in order: the line looks the same
    (spikes kept) and a long run's chart stays a few kilobytes."""
    if len(points) <= 2 * columns:
        return points
    out: list[tuple[float, float]] = []
    bucket: list[tuple[float, float]] = []
    column = None
    for p in points + [(math.inf, 0.0)]:
        c = None if p[0] == math.inf else int(p[0])
        if c != column and bucket:
            low, high = min(bucket, key=lambda q: q[1]), max(bucket, key=lambda q: q[1])
            out += sorted({low, high}, key=bucket.index)
            bucket = []
        column = c
        bucket.append(p)
    return out


def _panel(x0: float, width: float, title: str, lines: list[dict]) -> list[str]:
    """One plot: frame, grid, ticks, lines (``{"label", "xs", "ys", "color", "dashed", "markers"}``), legend."""
    y0, height = _TOP, HEIGHT - _TOP - _BOTTOM
    out = [f"<text x='{x0 + width / 2:.1f}' y='{_TOP - 9}' text-anchor='middle' font-size='12' {_FONT} "
           f"fill='#222'>{_esc(title)}</text>"]
    xs_all = [x for line in lines for x in line["xs"]]
    ys_all = [y for line in lines for y in line["ys"]]
    if not xs_all:
        out.append(f"<rect x='{x0}' y='{y0}' width='{width:.1f}' height='{height}' fill='none' stroke='{_GRID}'/>")
        out.append(f"<text x='{x0 + width / 2:.1f}' y='{y0 + height / 2:.1f}' text-anchor='middle' "
                   f"font-size='12' {_FONT} fill='#888'>no values yet</text>")
        return out
    (xlo, xhi), (ylo, yhi) = _limits(xs_all), _limits(ys_all)

    def px(x: float) -> float:
        return x0 + (x - xlo) / (xhi - xlo) * width

    def py(y: float) -> float:
        return y0 + height - (y - ylo) / (yhi - ylo) * height

    xticks, yticks = nice_ticks(xlo, xhi, 6), nice_ticks(ylo, yhi, 5)
    for t in xticks:
        out.append(f"<line x1='{px(t):.1f}' y1='{y0}' x2='{px(t):.1f}' y2='{y0 + height}' stroke='{_GRID}'/>")
        out.append(f"<text x='{px(t):.1f}' y='{y0 + height + 14}' text-anchor='middle' font-size='10' {_FONT} "
                   f"fill='{_AXIS}'>{_tick_label(t, xticks)}</text>")
    for t in yticks:
        out.append(f"<line x1='{x0}' y1='{py(t):.1f}' x2='{x0 + width:.1f}' y2='{py(t):.1f}' stroke='{_GRID}'/>")
        out.append(f"<text x='{x0 - 5}' y='{py(t) + 3.5:.1f}' text-anchor='end' font-size='10' {_FONT} "
                   f"fill='{_AXIS}'>{_tick_label(t, yticks)}</text>")
    out.append(f"<path d='M{x0},{y0}V{y0 + height}H{x0 + width:.1f}' fill='none' stroke='{_AXIS}'/>")
    out.append(f"<text x='{x0 + width / 2:.1f}' y='{HEIGHT - 6}' text-anchor='middle' font-size='11' {_FONT} "
               f"fill='{_AXIS}'>step</text>")
    for line in lines:
        points = _thin([(px(x), py(y)) for x, y in zip(line["xs"], line["ys"])], int(width))
        dash = " stroke-dasharray='5,3'" if line.get("dashed") else ""
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(f"<polyline points='{coords}' fill='none' stroke='{line['color']}' stroke-width='1.5' "
                   f"stroke-linejoin='round'{dash}/>")
        if line.get("markers") and len(points) <= 200:
            out += [f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2.5' fill='{line['color']}'/>" for x, y in points]
    labelled = [line for line in lines if line.get("label")]
    for i, line in enumerate(labelled):  # legend in the upper right corner, like the loss chart's
        ly = y0 + 12 + 14 * i
        lx = x0 + width - 90
        dash = " stroke-dasharray='5,3'" if line.get("dashed") else ""
        out.append(f"<line x1='{lx}' y1='{ly - 3.5}' x2='{lx + 18}' y2='{ly - 3.5}' stroke='{line['color']}' "
                   f"stroke-width='1.5'{dash}/>")
        out.append(f"<text x='{lx + 23}' y='{ly}' font-size='10' {_FONT} fill='#222'>{_esc(line['label'])}</text>")
    return out


def curves_svg(records: list[dict], color: str = COLORS[0]) -> str:
    """Loss (train solid, validation dashed) and the validation main metric against steps, as SVG text.

    The same series as ``workbench.plots.curves_png`` for one run (``curve_series`` reads both);
    a run with no logged values yet draws empty frames with a note.
    """
    series = curve_series(records)
    loss = [{"label": label, "xs": xs, "ys": ys, "color": color, "dashed": key == "validation loss",
             "markers": key == "validation loss"}
            for key, label in (("train loss", "train"), ("validation loss", "validation")) if key in series
            for xs, ys in [series[key]]]
    metric_keys = [k for k in series if k not in ("train loss", "validation loss")]
    metric = [{"label": None, "xs": series[k][0], "ys": series[k][1], "color": color, "markers": True}
              for k in metric_keys]
    width = (WIDTH - _LEFT - _RIGHT - _GAP - _LEFT) / 2
    body = _panel(_LEFT, width, "loss", loss)
    body += _panel(_LEFT + width + _GAP + _LEFT, width, metric_keys[0] if metric_keys else "validation metric",
                   metric)
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
            f"viewBox='0 0 {WIDTH} {HEIGHT}'><rect width='100%' height='100%' fill='white'/>"
            + "".join(body) + "</svg>")


def svg_img(svg: str, alt: str) -> str:
    """An ``<img>`` tag holding the SVG as a data URI (kept by notebook sanitizers, unlike inline SVG)."""
    data = base64.b64encode(svg.encode()).decode()
    return (f"<img src='data:image/svg+xml;base64,{data}' alt='{_esc(alt)}' width='{WIDTH}' "
            f"style='max-width:100%;height:auto'>")


# ---- confusion matrix ----------------------------------------------------------------------------

# matplotlib's "Blues" colormap at nine evenly spaced points, so the table reads like the report's PNG
_BLUES = ((0xf7, 0xfb, 0xff), (0xde, 0xeb, 0xf7), (0xc6, 0xdb, 0xef), (0x9e, 0xca, 0xe1), (0x6b, 0xae, 0xd6),
          (0x42, 0x92, 0xc6), (0x21, 0x71, 0xb5), (0x08, 0x51, 0x9c), (0x08, 0x30, 0x6b))


def blues(share: float) -> str:
    """The colour of a cell holding ``share`` (0..1) of its row."""
    pos = min(max(share, 0.0), 1.0) * (len(_BLUES) - 1)
    i = min(int(pos), len(_BLUES) - 2)
    f = pos - i
    return "#" + "".join(f"{round(a + (b - a) * f):02x}" for a, b in zip(_BLUES[i], _BLUES[i + 1]))


def confusion_html(evaluation: dict, with_baseline: bool = False) -> str:
    """The test-split confusion matrix of the fine-tuned model (and the base model's beside it) as HTML tables.

    Cells are shaded by the share of the true class (rows sum to 1) and hold the counts, as in
    ``workbench.plots.confusion_png``; full label names are in each cell's tooltip.
    """
    labels, panels = confusion_panels(evaluation, with_baseline)
    n = len(labels)
    short = [_esc(lab if len(lab) <= 14 else lab[:13] + "…") for lab in labels]
    size = "font-size:11px" if n <= 12 else "font-size:9px"
    cell = f"padding:3px 6px;text-align:center;{size};min-width:26px"
    tables = []
    for title, matrix in panels:
        rows = [[float(v) for v in row] for row in matrix]
        total = sum(map(sum, rows)) or 1.0
        correct = sum(rows[i][i] for i in range(min(n, len(rows))))
        head = (f"<tr><th style='{cell};color:{MUTED}'>true \\ predicted</th>"
                + "".join(f"<th style='{cell};color:#333' title='{_esc(lab)}'>{s}</th>"
                          for lab, s in zip(labels, short)) + "</tr>")
        body = []
        for i, row in enumerate(rows):
            row_total = sum(row) or 1.0
            tds = []
            for j, v in enumerate(row):
                share = v / row_total
                ink = "white" if share > 0.55 else "#222"
                tds.append(f"<td style='{cell};background-color:{blues(share)};color:{ink}' "
                           f"title='true {_esc(labels[i])}, predicted {_esc(labels[j])}: {int(v)} "
                           f"({share:.0%} of the row)'>{int(v) if n <= 25 else ''}</td>")
            body.append(f"<tr><th style='{cell};color:#333;text-align:right' title='{_esc(labels[i])}'>"
                        f"{short[i]}</th>{''.join(tds)}</tr>")
        tables.append(f"<div><div style='font-size:12px;margin:2px 0 4px'><b>{_esc(title)}</b> "
                      f"(accuracy {correct / total:.1%})</div>"
                      f"<table style='border-collapse:collapse' class='wb-confusion'>{head}{''.join(body)}</table>"
                      "</div>")
    return (f"<div style='margin:6px 0'><div style='font-size:12px;color:{MUTED}'>Confusion matrices on the test "
            "split (rows: true class, shaded by its share of the row)</div>"
            f"<div style='display:flex;flex-wrap:wrap;gap:28px;align-items:flex-start'>{''.join(tables)}</div></div>")
