"""Static renderings of a run (HTML and text) shared by the notebook, reports and the CLI.

Every user-supplied string is escaped; nothing here loads scripts or reaches the network.
"""

from __future__ import annotations

import html
import json
from typing import Any

from .metrics import higher_is_better_in
from .runs import RunDir


# muted and faint text in notebook output and widgets: JupyterLab's theme colours (light on the dark
# theme), with the light theme's greys where no theme is loaded (an exported page)
MUTED = "var(--jp-ui-font-color2,#555)"
FAINT = "var(--jp-ui-font-color3,#888)"


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def fmt_delta(v: Any) -> str:
    return f"{v:+.4f}" if isinstance(v, (int, float)) else ""


def fmt_seconds(v: Any) -> str:
    """A duration in seconds: tenths are all a training time has to tell."""
    return f"{v:.1f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else ""


def fmt_parameters(parameters: Any) -> str:
    """``{total, trainable}`` of run.json as "1,123 of 25,926 (4.33%)"; "" where the run did not record it."""
    if not isinstance(parameters, dict) or not isinstance(parameters.get("trainable"), int):
        return ""
    trainable, total = parameters["trainable"], parameters.get("total")
    if not isinstance(total, int) or total <= 0:
        return f"{trainable:,}"
    return f"{trainable:,} of {total:,} ({100 * trainable / total:.3g}%)"


def fmt_setting_values(values: list[Any]) -> list[str]:
    """One setting's value per run, numbers with 3 significant digits, or as many more as it takes for
    values that differ to read differently (0.00237 and 0.00237 side by side would hide the very
    difference the row is there to show). Strings as they are, an unset (null) value as "not set",
    other values as JSON."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    numbers = {v for v in values if number(v)}
    shown: dict = {}
    for digits in range(3, 18):
        shown = {v: str(v) if isinstance(v, int) else f"{v:.{digits}g}" for v in numbers}
        if len(set(shown.values())) == len(numbers):
            break
    return [shown[v] if number(v) else v if isinstance(v, str) else "not set" if v is None
            else json.dumps(v, default=str) for v in values]


def _run_config(text: str | None) -> Any:
    from .config import resolve

    if not text or not text.strip():  # no config.yaml: nothing to tell which settings it used
        return None
    try:
        return resolve(inline=text)
    except Exception:  # a config of another version, or edited by hand: its settings count as used
        return None


def setting_differences(run_dirs: list[Any], absent: Any = None, skip: tuple = ()) -> tuple[dict, dict]:
    """``({key: [value per run]}, {key: [why each run does not use it, or None]})`` for the config.yaml
    settings on which the runs really differ (``real_differences``); a key a run lacks reads as
    ``absent``, and ``skip`` keys (a run's name) are left out."""
    import yaml

    from .config import flatten

    texts, flat = [], []
    for rd in run_dirs:
        text = rd.read_config_text()
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            loaded, text = {}, None
        texts.append(text)
        flat.append(flatten(loaded) if isinstance(loaded, dict) else {})
    keys = sorted({k for f in flat for k in f} - set(skip))
    values = {k: [f.get(k, absent) for f in flat] for k in keys
              if len({json.dumps(v, sort_keys=True, default=str) for v in (f.get(k, absent) for f in flat)}) > 1}
    unused = unused_by_run(texts, values)
    diff = real_differences(values, unused)
    return diff, {k: unused[k] for k in diff}


def unused_by_run(config_texts: list[str | None], values: dict[str, list[Any]]) -> dict[str, list[str | None]]:
    """``{key: [why the run does not use it, or None]}`` for the settings ``values`` holds per run (its
    flattened config.yaml values): ``config.ignored_keys``, which holds whatever the value (a run with
    LoRA off and the default lora.r ignores it as one with r 4 does)."""
    from .config import ignored_keys

    ignored = [ignored_keys(cfg) if cfg is not None else {} for cfg in map(_run_config, config_texts)]
    return {key: [run.get(key, (None,))[0] for run in ignored] for key in values}


def real_differences(values: dict[str, list[Any]], unused: dict[str, list[str | None]]) -> dict[str, list[Any]]:
    """The settings that differ between runs that use them: one no run uses (lora.r with LoRA off
    everywhere) is left out, and so is one whose values differ only in runs that do not use it."""
    def text(v: Any) -> str:
        return json.dumps(v, sort_keys=True, default=str)

    out = {}
    for key, per_run in values.items():
        whys = unused.get(key) or [None] * len(per_run)
        # a run that does not use the setting reads as one more value, "not used"
        seen = {(why is None, text(v) if why is None else "") for v, why in zip(per_run, whys)}
        if len({text(v) for v in per_run}) > 1 and len(seen) > 1:
            out[key] = per_run
    return out


def augmentation_text(aug: dict) -> str:
    """What data augmentation added, and why fewer copies than asked for where some were left out (a
    short text often comes out of EDA unchanged, or as another copy of itself)."""
    text = f"{aug['added']} {aug['method']} copies added to {aug['original']} training texts"
    asked = aug.get("copies", 0) * aug["original"]
    if aug["added"] < asked:
        text += (f" ({aug['copies']} asked per text; {asked - aug['added']} came out the same as their text or as "
                 "another copy of it, and were left out)")
    return text


def test_size_text(evaluation: dict) -> str:
    """"221 examples", or for language models trained on packed text "22 blocks of 128 tokens" (the
    test split's text, cut into the blocks it is scored on)."""
    return f"{evaluation.get('num_examples')} {evaluation.get('example_unit') or 'examples'}"


def metric_rows(runs: list[tuple[Any, dict]]) -> list[tuple[str, str, Any]]:
    """``(row label, metric, task)`` for the numeric test metrics of runs given as ``(task, eval.json)``.

    Runs of one task share a row per metric. Runs of several tasks get a row per metric and task: a
    masked LM's accuracy (of masked tokens) and a classifier's (of texts) are different quantities,
    and one row would set them side by side as if they were not.
    """
    tasks = list(dict.fromkeys(task for task, _ in runs))
    rows: list[tuple[str, str, Any]] = []
    for task in tasks:
        for t, ev in runs:
            if t != task:
                continue
            for k, v in (ev.get("finetuned") or {}).items():
                if isinstance(v, (int, float)) and not any(r[1] == k and r[2] == task for r in rows):
                    rows.append((k if len(tasks) == 1 else f"{k} ({task})", k, task))
    return rows


def metrics_rows(evaluation: dict) -> list[tuple[str, Any, Any, Any]]:
    fin = evaluation.get("finetuned", {})
    base = evaluation.get("baseline", {})
    delta = evaluation.get("delta", {})
    keys = [k for k in fin if isinstance(fin[k], (int, float))]
    return [(k, fin.get(k), base.get(k), delta.get(k)) for k in keys]


def text_table(rows: list[tuple[str, ...]], right_from: int | None = None) -> str:
    """Rows of cells as plain text: columns as wide as their widest cell, two spaces apart, and the
    columns from ``right_from`` on (numbers) right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = len(widths) if right_from is None else right_from
    return "\n".join("  ".join(cell.rjust(w) if i >= right else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows)


def metrics_table_text(evaluation: dict) -> str:
    rows = metrics_rows(evaluation)
    if not rows:
        return "(no test metrics)"
    return text_table([("metric", "fine-tuned", "baseline", "delta")]
                      + [(k, fmt(f), fmt(b), fmt_delta(d)) for k, f, b, d in rows], right_from=1)


def improved(metric: str, delta: Any, evaluation: dict) -> bool:
    """Whether a delta is a gain: perplexity, nll, loss and errors improve when they fall."""
    if not isinstance(delta, (int, float)):
        return False
    return delta > 0 if higher_is_better_in(evaluation, metric) else delta < 0


def table_html(header: list[str], rows: list[list[Any]], cls: str = "wb-table", left: bool = False) -> str:
    """An HTML table; every cell is escaped (numbers formatted with 4 decimals)."""
    th = "<th style='text-align:left'>" if left else "<th>"
    head = "".join(f"{th}{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c, left) for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any, left: bool = False) -> str:
    if left or (isinstance(value, str) and len(value) > 24):  # running text reads better left-aligned
        return f"<td style='text-align:left'>{html.escape(fmt(value))}</td>"
    return f"<td>{html.escape(fmt(value))}</td>"


def metrics_table_html(evaluation: dict) -> str:
    def colour(k: str, d: Any) -> str:  # green a gain, red a loss; no delta (no baseline) or none at all: plain
        if not isinstance(d, (int, float)) or d == 0:
            return ""
        return f" style='color:{'#1a7f37' if improved(k, d, evaluation) else '#c62828'}'"

    found = metrics_rows(evaluation)
    if found and all(b is None for _, _, b, _ in found) and not evaluation.get("baseline_method"):
        # a run without a baseline (baseline: false, as search trials run): no empty columns beside it
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{fmt(f)}</td></tr>" for k, f, _, _ in found)
        return ("<table class='wb-metrics'><thead><tr><th>metric (test)</th><th>fine-tuned</th></tr></thead>"
                f"<tbody>{rows}</tbody></table><div style='color:{MUTED};font-size:90%'>No baseline: this run "
                "was trained with baseline: false (search trials skip it). Train with baseline: true to compare "
                "it with the base model on the same test split.</div>")
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{fmt(f)}</td><td>{fmt(b)}</td><td{colour(k, d)}>{fmt_delta(d)}</td></tr>"
        for k, f, b, d in found)
    return ("<table class='wb-metrics'><thead><tr><th>metric (test)</th><th>fine-tuned</th><th>baseline</th>"
            f"<th>delta</th></tr></thead><tbody>{rows}</tbody></table>")


def run_summary_html(run_dir: RunDir) -> str:
    try:
        info = run_dir.read_info()
    except Exception as e:  # a summary must render even for a broken run directory
        return f"<div class='wb-run'><b>{html.escape(run_dir.id)}</b>: {html.escape(str(e))}</div>"
    ev = run_dir.read_eval() or {}
    status = info.get("status", "unknown")
    head = (f"<div class='wb-run'><b>{html.escape(str(info.get('name') or run_dir.id))}</b> "
            f"&middot; {html.escape(str(info.get('task', '')))} &middot; {html.escape(str(info.get('model', '')))} "
            f"&middot; status <b>{html.escape(status)}</b>")
    if info.get("error"):
        head += f"<br><span style='color:#c62828'>{html.escape(str(info['error']))}</span>"
    body = metrics_table_html(ev) if ev else ""
    method = ev.get("baseline_method")
    note = f"<div style='font-size:90%'>Baseline: {html.escape(method)}</div>" if method else ""
    return f"{head}{body}{note}<div style='font-size:90%'>Run directory: <code>{html.escape(str(run_dir.path))}</code></div></div>"
