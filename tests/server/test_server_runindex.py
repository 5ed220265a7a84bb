"""The run index behind the listing: bounded sparklines, bounded metric reads, and confinement."""

from __future__ import annotations

import json
import os

from runs_seed import seed_runs
from workbench.runs import RunDir
from workbench.server.runindex import SKETCH_BUCKETS, LossSketch, RunIndex, read_metrics_chunk, resolve_run


def test_loss_sketch_stays_bounded_and_keeps_the_shape():
    sketch = LossSketch()
    n = 100_000
    for i in range(n):
        sketch.add(2.0 - 1.5 * i / n)
    assert len(sketch.buckets) < SKETCH_BUCKETS
    points = sketch.points()
    assert len(points) == 48
    assert points == sorted(points, reverse=True)
    assert abs(points[0] - 1.98) < 0.02 and abs(points[-1] - 0.52) < 0.02
    sketch.add(100.0)
    assert sketch.points()[-1] > points[-1]  # a new value is seen, not a stale cached curve


def test_metrics_reads_are_bounded_and_skip_an_oversized_line(tmp_path):
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    lines = [json.dumps({"event": "step", "step": i, "loss": 1.0}) for i in range(100)]
    giant = json.dumps({"event": "step", "note": "x" * 5000})
    run.metrics_jsonl.write_text("\n".join(lines[:50] + [giant] + lines[50:]) + "\n", encoding="utf-8")
    offset, seen, calls = 0, [], 0
    while True:
        chunk = read_metrics_chunk(run, offset, max_bytes=1024)
        calls += 1
        seen += chunk["records"]
        offset = chunk["offset"]
        if not chunk["more"]:
            break
    assert offset == run.metrics_jsonl.stat().st_size
    assert [r["step"] for r in seen if "step" in r] == list(range(100))
    assert {"event": "oversized_line"} in seen
    assert calls > 5


def test_sibling_prefix_and_symlinks_out_are_not_runs(tmp_path):
    runs = seed_runs(tmp_path / "runs")
    evil = tmp_path / "runs-evil" / "20260101-000000-evil"
    evil.mkdir(parents=True)
    (evil / "run.json").write_text("{}", encoding="utf-8")
    os.symlink(evil, tmp_path / "runs" / "20260101-000000-link")
    os.symlink(runs["completed"].path, tmp_path / "runs" / "20260101-000000-alias")
    root = tmp_path / "runs"
    assert resolve_run(root, "../runs-evil/20260101-000000-evil") is None
    assert resolve_run(root, "20260101-000000-link") is None
    alias = resolve_run(root, "20260101-000000-alias")
    assert alias is not None and alias.id == runs["completed"].id  # a link inside the root is the run itself
    ids = [row["id"] for row in RunIndex(root).rows()]
    assert len(ids) == len(set(ids)) == 5


def test_page_reads_sparklines_only_for_its_runs(tmp_path):
    seed_runs(tmp_path / "runs")
    index = RunIndex(tmp_path / "runs")
    page = index.page(offset=0, limit=2)
    assert [len(r["loss_sparkline"]) > 0 for r in page["runs"]] == [True, True]
    assert len(index._sketches) == 2
