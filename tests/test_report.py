"""Report plumbing without a kernel: parameter checks, safe injection, the HTML export, the CLI's errors."""

import json
import re

import nbformat
import pytest

from workbench import cli
from workbench import report
from workbench import report_sections as rs
from workbench.paths import list_templates


def test_every_template_declares_typed_commented_parameters_and_validates_next():
    names = [t.stem for t in list_templates()]
    assert {"text_classification", "compare_runs"} <= set(names)
    for path in list_templates():
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name} has outputs"
        index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        assert f'check_parameters(globals(), "{path.stem}")' in nb.cells[index + 1].source
        spec = rs.parameter_spec(path.stem)
        for p in spec.values():
            assert p["type"] and p["help"], f"{path.name}: {p['name']} needs a type and a comment"
            assert rs.type_matches(p["value"], rs.allowed_types(p["type"])), (path.name, p)


@pytest.mark.parametrize("annotation,text,expected", [
    ("int", "3", 3), ("float", "3", 3.0), ("float", "1e-4", 1e-4), ("int | None", "null", None),
    ("int | None", "None", None), ("bool", "true", True), ("str", "3", "3"),
    ("str | None", "my file.csv", "my file.csv"),
    ("list", '["a", "b"]', ["a", "b"]), ("dict", '{"train.epochs": 2}', {"train.epochs": 2}),
])
def test_cli_values_take_the_declared_type(annotation, text, expected):
    value = report.parse_cli_value("x", text, annotation)
    assert value == expected and type(value) is type(expected)


def test_unknown_and_ill_typed_parameters_are_refused_with_the_fix():
    with pytest.raises(rs.ParameterError, match=r"Unknown parameter 'epoch' \(did you mean 'epochs'\?\)"):
        report.collect_parameters("text_classification", [("epoch", "2")])
    with pytest.raises(rs.ParameterError, match=r"'epochs' is declared float, and 'two' is not one"):
        report.collect_parameters("text_classification", [("epochs", "two")])
    with pytest.raises(rs.ParameterError, match="No template named 'text_clasification'.*text_classification"):
        report.collect_parameters("text_clasification", [])


def test_parameters_file_then_p_pairs(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("epochs: 2\nmax_train_samples: null\nconfig: {train.warmup_ratio: 0.1}\n")
    got = report.collect_parameters("text_classification", [("epochs", "3")], [str(f)])
    assert got == {"epochs": 3.0, "max_train_samples": None, "config": {"train.warmup_ratio": 0.1}}
    f.write_text("epochs: 2020-01-01\n")  # YAML reads a date: not a JSON value
    with pytest.raises(rs.ParameterError, match="'epochs' must be float"):
        report.collect_parameters("text_classification", files=[str(f)])


def test_injection_is_literal_and_cannot_run_code():
    nb = report.prepared_notebook("text_classification", {"name": '"; import os; os.system("x"); "',
                                                          "config": {"train.epochs": 1}})
    cell = next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    ns: dict = {}
    exec(compile(cell["source"], "injected", "exec"), {}, ns)  # only assignments of literals
    assert ns == {"name": '"; import os; os.system("x"); "', "config": {"train.epochs": 1}}
    assert nb["metadata"]["workbench"]["parameters"]["config"] == {"train.epochs": 1}


def _namespace(**values):
    """A kernel namespace after the parameters cell and papermill's injected cell ran."""
    ns = {"In": ["", "# declared defaults", "# Parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items()),
                 "params = check(...)"], "Out": {}, "get_ipython": None, "_i3": ""}
    ns.update({k: p["value"] for k, p in rs.parameter_spec("text_classification").items()})
    ns.update(values)
    return ns


def test_in_notebook_check_catches_what_papermill_only_warns_about():
    assert rs.check_parameters(_namespace(epochs=2), "text_classification")["epochs"] == 2
    with pytest.raises(rs.ParameterError, match="Unknown parameter 'bogus'"):
        rs.check_parameters(_namespace(bogus=1), "text_classification")
    with pytest.raises(rs.ParameterError, match=r"'batch_size' must be int, got 'sixteen'.*-p batch_size 2"):
        rs.check_parameters(_namespace(batch_size="sixteen"), "text_classification")
    with pytest.raises(rs.ParameterError, match=r"""'config' must be dict, got '\{"train.max_steps": 5\}' \(str\); """
                                                r"""for example -p config '\{"key": 1\}' with workbench report, """
                                                r"""-y 'config: \{"key": 1\}' with papermill"""):
        rs.check_parameters(_namespace(config='{"train.max_steps": 5}'), "text_classification")
    # names made by later cells in an interactive session are not parameters
    ns = _namespace()
    ns["cfg"] = object()
    ns["summary"] = {"a": 1}
    assert rs.check_parameters(ns, "text_classification")


def test_reproduce_commands_name_only_changed_parameters(monkeypatch):
    params = {k: p["value"] for k, p in rs.parameter_spec("text_classification").items()}
    params.update(data="my data.csv", epochs=2.0, config={"train.warmup_ratio": 0.1})
    monkeypatch.chdir(rs.templates_dir().parent)
    cmds = rs.reproduce_commands("text_classification", params)
    assert cmds["workbench"] == ("workbench report text_classification -p data 'my data.csv' -p epochs 2.0 "
                                 "-p config '{\"train.warmup_ratio\": 0.1}'")
    assert cmds["papermill"].startswith("papermill templates/text_classification.ipynb report.ipynb -k python3 "
                                        "-r data 'my data.csv' -y 'epochs: 2.0'")


def _notebook_with_outputs():
    nb = nbformat.v4.new_notebook()
    hostile = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    code = nbformat.v4.new_code_cell("print(1)")
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=hostile),
                    nbformat.v4.new_output("display_data", data={"text/html": rs.table_html(["label"], [[hostile]]),
                                                                 "text/plain": "t"}),
                    nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "img"},
                                            metadata={"image/png": {"alt": "a chart"}}),
                    nbformat.v4.new_output("display_data", data={rs.RUN_MIMETYPE: {"run_dir": "/x"}})]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\nSome $x$ math."), code]
    return nb, hostile


def test_html_export_is_self_contained_and_escapes_user_strings():
    nb, hostile = _notebook_with_outputs()
    page = report.export_html(nb, title="T")
    low = page.lower()
    assert "<script" not in low and "<link" not in low and "@import" not in low
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//""", low)
    assert hostile not in page and page.count("&lt;script&gt;alert(") == 2  # the stream and the table cell
    assert not re.search(r"<img[^>]*onerror", low)
    assert "Content-Security-Policy" in page and "script-src 'none'" in page
    assert 'src="data:image/png;base64,' in page and 'alt="a chart"' in page
    assert ">print</span>" in page
    no_input = report.export_html(nb, no_input=True)
    assert ">print</span>" not in no_input and "&lt;script&gt;alert(" in no_input
    assert report.run_markers(nb) == [{"run_dir": "/x"}]


def test_cli_report_rejects_bad_parameters_before_starting_a_kernel(capsys):
    assert cli.main(["report", "text_classification", "-p", "epoch", "2"]) == 2
    err = capsys.readouterr().err
    assert "Unknown parameter 'epoch' (did you mean 'epochs'?)" in err
    assert cli.main(["report"]) == 2
    assert "workbench report --list" in capsys.readouterr().err


def test_cli_report_list_shows_templates_with_parameters(capsys):
    assert cli.main(["report", "--list"]) == 0
    out = capsys.readouterr().out
    assert "text_classification: Text classification report" in out
    assert "-p max_train_samples: Optional[int] = 800  # train on at most" in out
    assert "compare_runs:" in out


def test_new_copies_a_template_with_parameters(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "here-only"))
    target = tmp_path / "mine.ipynb"
    assert cli.main(["new", "text_classification", str(target), "-p", "epochs", "2"]) == 0
    nb = nbformat.read(str(target), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "epochs = 2.0" in injected[0].source
    assert "runs_dir" not in injected[0].source  # read where the notebook runs, not baked in from here
    assert nb.metadata.papermill and all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    from ipykernel.ipkernel import IPythonKernel  # as Jupyter writes it once the kernel starts: opens unchanged

    assert nb.metadata.language_info == IPythonKernel.language_info
    assert cli.main(["new", "text_classification", str(target)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["new", "text_classification", str(target), "--force"]) == 0
    assert json.loads(target.read_text())["cells"]


def test_new_names_a_data_file_from_the_notebooks_folder(tmp_path, monkeypatch):
    """Jupyter runs a notebook in its own folder: `workbench new ... notebooks/x.ipynb -p data
    tickets.csv` from the project folder must still find tickets.csv there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tickets.csv").write_text("text,label\na,b\n")
    assert cli.main(["new", "text_classification", "notebooks/tickets.ipynb", "-p", "data", "tickets.csv",
                     "-p", "name", "tickets"]) == 0
    nb = nbformat.read(str(tmp_path / "notebooks" / "tickets.ipynb"), as_version=4)
    (injected,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "data = '../tickets.csv'" in injected.source and "name = 'tickets'" in injected.source
    assert (tmp_path / "notebooks" / "../tickets.csv").is_file()


def _fake_run(root, name, config_text, accuracy):
    from workbench.runs import RunDir, atomic_write_json, atomic_write_text

    rd = RunDir(root / name)
    rd.path.mkdir(parents=True)
    atomic_write_text(rd.config_yaml, config_text)
    rd.update_info(id=name, name=name, task="text-classification", status="completed", main_metric="accuracy")
    atomic_write_json(rd.eval_json, {"main_metric": "accuracy", "num_examples": 10,
                                     "finetuned": {"accuracy": accuracy}, "baseline": {"accuracy": 0.5}})
    return rd


def test_config_diff_lists_only_the_keys_that_differ(tmp_path):
    _fake_run(tmp_path, "a", "model: minilm\ntrain:\n  epochs: 1\n  seed: 42\n", 0.8)
    _fake_run(tmp_path, "b", "model: minilm\ntrain:\n  epochs: 3\n  seed: 42\nname: <b>x</b>\n", 0.9)
    _fake_run(tmp_path, "c", "model: minilm\n", 0.1).update_info(status="failed")
    runs = rs.load_runs([], 5, str(tmp_path))
    assert set(runs) == {"a", "b"}  # the newest completed runs: the failed attempt is left out
    diff = rs.config_diff(runs)
    assert diff["train.epochs"] in ([1, 3], [3, 1]) and "train.seed" not in diff and "model" not in diff
    assert "(absent)" in diff["name"]
    with pytest.raises(rs.ConfigError, match="No completed runs under"):
        rs.load_runs([], 5, str(tmp_path / "none"))


def test_run_follower_shows_new_runs_progress_and_skips_odd_records(tmp_path):
    import io
    import json

    from workbench.report import RunFollower

    old = tmp_path / "20260101-000000-old-abcd"
    old.mkdir()
    (old / "metrics.jsonl").write_text(json.dumps({"event": "phase", "time": 1.0, "name": "old run"}) + "\n")
    out = io.StringIO()
    follower = RunFollower(tmp_path, stream=out, interval=0.05)
    new = tmp_path / "20260101-000001-new-abcd"
    new.mkdir()
    records = [{"event": "phase", "time": 1.0, "name": "loading data", "detail": "x.csv"},
               {"event": "step", "time": 2.0, "step": 1, "total_steps": 2, "epoch": None},  # odd: skipped
               {"event": "eval", "time": 3.0, "step": 2, "epoch": 1.0, "split": "validation",
                "metrics": {"accuracy": 0.5}},
               {"event": "from-a-later-version", "time": 4.0}]
    with follower:
        (new / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"event": "pha')
    text = out.getvalue()
    assert "old run" not in text  # made before the report started
    assert "  loading data: x.csv" in text and "eval (validation) at step 2: accuracy 0.5000" in text
    assert text.count("\n") == 2


def test_metric_deltas_are_coloured_by_direction_and_left_plain_without_a_baseline():
    from workbench.render import metrics_table_html

    ev = {"main_metric": "accuracy", "finetuned": {"accuracy": 0.9, "loss": 0.5, "f1_macro": 0.7},
          "baseline": {"accuracy": 0.8, "loss": 0.4, "f1_macro": 0.7},
          "delta": {"accuracy": 0.1, "loss": 0.1, "f1_macro": 0.0}}
    page = metrics_table_html(ev)
    assert "<td style='color:#1a7f37'>+0.1000</td>" in page  # accuracy up: a gain
    assert "<td style='color:#c62828'>+0.1000</td>" in page  # loss up: a loss
    assert "<td>+0.0000</td>" in page  # no change
    alone = metrics_table_html({"main_metric": "accuracy", "finetuned": {"accuracy": 0.9}, "baseline": {}, "delta": {}})
    assert "<th>delta</th>" not in alone and "color:#" not in alone  # no baseline: no delta to colour


@pytest.mark.parametrize("blank_lines", [0, 3])
def test_a_text_files_blank_lines_are_a_note_not_a_leakage_finding(tmp_path, monkeypatch, blank_lines):
    """A plain-text corpus without blank lines reports no finding at all; with some, they are
    counted in a note of their own, not under "Duplicates and leakage found"."""
    from builders import build_tiny_decoder

    from workbench import report_sections
    from workbench.config import resolve

    model = build_tiny_decoder(tmp_path / "gpt")
    lines = [f"line number {i} of a small corpus about {w}" for i, w in enumerate(["cats", "dogs", "birds"] * 40)]
    for k in range(blank_lines):
        lines.insert(10 * (k + 1), "")
    (tmp_path / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shown = []
    monkeypatch.setattr(report_sections, "show_html", shown.append)
    monkeypatch.setattr(report_sections, "show_png", lambda png, alt: None)
    cfg = resolve(inline={"task": "causal-lm", "model": str(model), "data": {"train": str(tmp_path / "corpus.txt")},
                          "train": {"max_length": 32}})
    summary = report_sections.data_summary(cfg)
    html = "\n".join(shown)
    assert "Duplicates and leakage:</b> no exact duplicate texts" in html
    assert "found" not in html
    if blank_lines:
        assert f"Blank lines skipped (they separate text, they are not documents): {blank_lines} in data.train" in html
        assert summary["warnings"] == [f"{blank_lines} blank lines skipped in data.train"]
    else:
        assert "Blank lines" not in html and summary["warnings"] == []


def test_the_comparison_report_keeps_metrics_of_different_tasks_apart(monkeypatch):
    from types import SimpleNamespace

    shown = []
    monkeypatch.setattr(rs, "show_html", shown.append)
    clf = SimpleNamespace(info={"task": "text-classification", "status": "completed"},
                          evaluation={"main_metric": "accuracy", "num_examples": 20,
                                      "finetuned": {"accuracy": 0.9}, "baseline": {"accuracy": 0.6}})
    mlm = SimpleNamespace(info={"task": "masked-lm", "status": "completed"},
                          evaluation={"main_metric": "perplexity", "num_examples": 9, "example_unit": "blocks of 64 tokens",
                                      "finetuned": {"perplexity": 70.5, "accuracy": 0.0274}})
    rows = rs.show_comparison({"clf": clf, "mlm": mlm})
    assert [r[8] for r in rows] == ["20 examples", "9 blocks of 64 tokens"]
    every = shown[1]
    assert "per task:" in every and ">accuracy<" not in every
    assert re.search(r">accuracy \(text-classification\)</td><td>0\.9000</td><td></td>", every)
    assert re.search(r">accuracy \(masked-lm\)</td><td></td><td>0\.0274</td>", every)


def _table(page):
    """Row label -> its cells' text, for the tables of a page (tags and styles dropped)."""
    import html

    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


def _search_like_runs(tmp_path):
    """Three runs with LoRA off (one with a rank of its own), two learning rates alike to 3 digits."""
    runs = [_fake_run(tmp_path, "t0", "model: minilm\ntrain:\n  learning_rate: 0.0023688639503640775\n"
                                      "lora:\n  r: 4\n", 0.8),
            _fake_run(tmp_path, "t1", "model: minilm\ntrain:\n  learning_rate: 0.0023681\n", 0.7),
            _fake_run(tmp_path, "t2", "model: minilm\ntrain:\n  learning_rate: 0.00143\n", 0.6)]
    for rd, trainable in zip(runs, (24803, 9699, 1123)):
        rd.update_info(train_seconds=13.84, parameters={"total": 24803, "trainable": trainable})
    return runs


def test_compared_settings_read_compactly_and_settings_a_run_does_not_use_are_no_difference(tmp_path, monkeypatch):
    """Comparing runs (the compare_runs report and %finetune_compare): learning rates with 3 digits,
    more where two would read alike; seconds with 1 decimal; trainable parameters shown; lora.r of
    runs with LoRA off is no difference."""
    from workbench.api import Run
    from workbench.render import fmt_setting_values
    from workbench.ui.compare import compare_html

    dirs = _search_like_runs(tmp_path)
    widget = _table(compare_html(dirs))
    assert widget["train.learning_rate"] == ["0.002369", "0.002368", "0.00143"]
    assert widget["training time (s)"] == ["13.8"] * 3
    assert widget["trainable parameters"] == ["24,803 of 24,803 (100%)", "9,699 of 24,803 (39.1%)",
                                              "1,123 of 24,803 (4.53%)"]
    assert "lora.r" not in widget
    assert fmt_setting_values([True, 1, 1.0000001, ["q", "v"], None]) == ["true", "1", "1.0000001", '["q", "v"]',
                                                                          "not set"]

    shown = []
    monkeypatch.setattr(rs, "show_html", shown.append)
    runs = {rd.id: Run(rd.path) for rd in dirs}
    diff = rs.show_config_diff(runs)
    assert set(diff) == {"train.learning_rate"}
    assert _table(shown[-1])["train.learning_rate"] == ["0.002369", "0.002368", "0.00143"]
    rows = rs.show_comparison(runs)
    cells = _table(shown[-2])
    assert cells["t0"][-2:] == ["13.8", "24,803 of 24,803 (100%)"]
    assert [r[-2] for r in rows] == ["13.8"] * 3


def test_a_setting_only_some_runs_use_is_marked_where_it_is_not_used(tmp_path, monkeypatch):
    from workbench.api import Run
    from workbench.ui.compare import compare_html

    on = _fake_run(tmp_path, "lora", "model: minilm\nlora:\n  enabled: true\n  r: 4\n", 0.8)
    off = _fake_run(tmp_path, "full", "model: minilm\nlora:\n  enabled: false\n", 0.7)  # the default rank 8
    widget = _table(compare_html([on, off]))
    assert widget["lora.r"] == ["4", "not used"] and widget["lora.enabled"] == ["true", "false"]
    assert "lora.r in full: lora.enabled is false" in compare_html([on, off])

    shown = []
    monkeypatch.setattr(rs, "show_html", shown.append)
    rs.show_config_diff({"lora": Run(on.path), "full": Run(off.path)})
    assert _table(shown[-1])["lora.r"] == ["4", "not used"]
    assert "lora.r in full: lora.enabled is false" in shown[-1]


def test_a_setting_one_run_leaves_unset_reads_not_set(tmp_path, monkeypatch):
    from workbench.api import Run
    from workbench.ui.compare import compare_html

    capped = _fake_run(tmp_path, "capped", "model: minilm\ntrain:\n  max_steps: 10\n", 0.8)
    epochs = _fake_run(tmp_path, "epochs", "model: minilm\ntrain:\n  max_steps: null\n", 0.7)
    assert _table(compare_html([capped, epochs]))["train.max_steps"] == ["10", "not set"]
    shown = []
    monkeypatch.setattr(rs, "show_html", shown.append)
    rs.show_config_diff({"capped": Run(capped.path), "epochs": Run(epochs.path)})
    assert _table(shown[-1])["train.max_steps"] == ["10", "not set"]


def test_invalid_tag_sequences_are_a_data_note_not_a_leakage_finding(tmp_path, monkeypatch):
    from builders import build_tiny_bert, make_ner_sentences, ner_vocab, write_conll

    from workbench.config import resolve

    rows = make_ner_sentences(60)
    for words, tags in rows[:6]:  # an I- tag after O: invalid in IOB2
        first = next(i for i, t in enumerate(tags) if t.startswith("B-"))
        tags[first] = "I-" + tags[first][2:]
    data = write_conll(tmp_path / "ner.conll", rows)
    model = build_tiny_bert(tmp_path / "bert", ner_vocab())
    shown = []
    monkeypatch.setattr(rs, "show_html", shown.append)
    monkeypatch.setattr(rs, "show_png", lambda png, alt: None)
    cfg = resolve(inline={"task": "token-classification", "model": str(model), "data": {"train": str(data)},
                          "train": {"max_length": 32}})
    summary = rs.data_summary(cfg)
    page = "\n".join(shown)
    assert "Duplicates and leakage:</b> no exact duplicate texts" in page and "leakage found" not in page
    note = next(h for h in shown if "Tag sequences invalid in IOB2" in h)
    assert "sentences have tag sequences that are invalid in IOB2" in note
    assert any("invalid in IOB2" in w for w in summary["warnings"])


def test_the_terminal_command_names_files_of_the_notebooks_folder_by_absolute_path(tmp_path, monkeypatch):
    """The report's "same run from a terminal" works from any folder: data files and a local model
    folder given relative to the notebook's folder are written in full; aliases and hub ids are not."""
    import html
    import shlex

    from workbench.config import resolve

    (tmp_path / "ner").mkdir()
    (tmp_path / "ner" / "i_after_o.conll").write_text("bob B-PER\n")
    (tmp_path / "models" / "tinybert_ner").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    shown = []
    monkeypatch.setattr(rs, "show_html", shown.append)

    def command(**inline):
        shown.clear()
        rs.show_config(resolve(inline=inline))
        line = re.sub("<[^>]+>", "", re.search(r"same run from a terminal:</p><pre>(.*?)</pre>", shown[0]).group(1))
        return dict(p.split("=", 1) for p in shlex.split(html.unescape(line))[2:])

    got = command(task="token-classification", model="models/tinybert_ner",
                  data={"train": "ner/i_after_o.conll", "test": "ner/missing.conll"})
    assert got["model"] == str(tmp_path / "models" / "tinybert_ner")
    assert got["data.train"] == str(tmp_path / "ner" / "i_after_o.conll")
    assert got["data.test"] == "ner/missing.conll"  # no such file here: as given, for its error to name
    (tmp_path / "bbc-news").mkdir()  # the bundled alias is read before any folder of that name
    got = command(model="org/some-model", data={"validation": "bbc-news"})
    assert got["model"] == "org/some-model" and got["data.validation"] == "bbc-news"


def test_a_run_without_a_baseline_shows_no_empty_baseline_columns():
    from workbench.render import metrics_table_html

    ev = {"finetuned": {"accuracy": 0.9, "f1_macro": 0.8}, "baseline": {}, "delta": {}, "baseline_method": None}
    shown = metrics_table_html(ev)
    assert "<th>baseline</th>" not in shown and "<td>0.9000</td>" in shown
    assert "No baseline: this run was trained with baseline: false" in shown
    ev.update(baseline={"accuracy": 0.5, "f1_macro": 0.4}, delta={"accuracy": 0.4, "f1_macro": 0.4},
              baseline_method="logistic regression")
    assert "<th>baseline</th>" in metrics_table_html(ev)


def test_new_names_paths_inside_lists_and_mappings_and_runs_dir_from_the_notebooks_folder(tmp_path, monkeypatch):
    """`workbench new compare_runs notebooks/c.ipynb -p runs '["../runs_rep/<run>"]' -p runs_dir myruns`:
    a run folder inside the list, a file inside `config`, and a runs_dir not made yet are all named as
    `workbench report` run from here would read them (its kernel works here, the notebook's in notebooks/)."""
    import ast

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs_rep" / "20260101-000000-tc-abcd").mkdir(parents=True)
    (tmp_path / "test.csv").write_text("text,label\na,b\n")
    (tmp_path / "bbc-news").mkdir()  # the bundled alias is read before any folder of that name

    def injected(path):
        nb = nbformat.read(str(tmp_path / path), as_version=4)
        (cell,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        return {t.id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body
                if isinstance(n, ast.Assign) for t in n.targets}

    assert cli.main(["new", "compare_runs", "notebooks/c.ipynb", "-p", "runs",
                     '["runs_rep/20260101-000000-tc-abcd", "20260101-000000-tc", "latest"]',
                     "-p", "runs_dir", "myruns"]) == 0
    got = injected("notebooks/c.ipynb")
    assert got["runs"] == ["../runs_rep/20260101-000000-tc-abcd", "20260101-000000-tc", "latest"]
    assert got["runs_dir"] == "../myruns"  # not there yet: ./myruns, where `workbench report` would put runs
    assert (tmp_path / "notebooks" / got["runs"][0]).is_dir()
    assert cli.main(["new", "text_classification", "notebooks/t.ipynb", "-p", "data", "bbc-news", "-p", "config",
                     '{"data.test": "test.csv", "train.epochs": 2, "data.validation": "nowhere.csv", '
                     '"task_options": {"labels": ["test.csv"]}}']) == 0
    got = injected("notebooks/t.ipynb")
    assert got["data"] == "bbc-news"
    assert got["config"] == {"data.test": "../test.csv", "train.epochs": 2, "data.validation": "nowhere.csv",
                             "task_options": {"labels": ["../test.csv"]}}


def test_reproduce_commands_name_local_paths_absolutely(tmp_path, monkeypatch):
    """The re-run commands live in the report, in the run folder: relative paths as typed worked only from
    the folder the report was made in."""
    import shlex

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "clf.csv").write_text("text,label\na,b\n")
    (tmp_path / "bert").mkdir()
    params = {k: p["value"] for k, p in rs.parameter_spec("text_classification").items()}
    params.update(model="bert", data="data/clf.csv", runs_dir="myruns", name="tc",
                  config={"data.test": "data/clf.csv", "train.epochs": 2})
    cmds = rs.reproduce_commands("text_classification", params)
    wb = shlex.split(cmds["workbench"])
    pairs = dict(zip(wb[4::3], wb[5::3]))
    assert pairs["model"] == str(tmp_path / "bert") and pairs["data"] == str(tmp_path / "data" / "clf.csv")
    assert pairs["runs_dir"] == str(tmp_path / "myruns") and pairs["name"] == "tc"
    assert json.loads(pairs["config"]) == {"data.test": str(tmp_path / "data" / "clf.csv"), "train.epochs": 2}
    pm = shlex.split(cmds["papermill"])
    assert ["-r", "model", str(tmp_path / "bert")] == pm[pm.index("model") - 1:pm.index("model") + 2]
    assert f"config: {json.dumps({'data.test': str(tmp_path / 'data' / 'clf.csv'), 'train.epochs': 2})}" in pm


def test_a_workbench_error_in_a_report_cell_is_one_line_other_errors_keep_their_traceback(capsys, monkeypatch):
    """What a report's failing cell keeps (the kernel's error output, which report.html shows): the
    message of a workbench error, as %%finetune shows it, not frames of workbench's own code."""
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    saved = shell.custom_exceptions, shell.CustomTB
    rs.show_workbench_errors_as_one_line()
    assert shell.custom_exceptions == saved[0]  # a kernel's only: not this test process's shell
    monkeypatch.setattr(rs, "_in_kernel", lambda shell: shell is not None)  # as the report's kernel is
    try:
        rs.show_workbench_errors_as_one_line()
        capsys.readouterr()
        result = shell.run_cell("from workbench.errors import DataError\n"
                                "def load():\n    raise DataError(\"clf.csv: no column 'queue'\")\nload()")
        assert type(result.error_in_exec).__name__ == "DataError"
        out = "".join(capsys.readouterr())
        assert "DataError: clf.csv: no column 'queue'" in out and "Traceback" not in out and "load()" not in out
        result = shell.run_cell("def broken():\n    raise ValueError('a bug')\nbroken()")
        out = "".join(capsys.readouterr())
        assert isinstance(result.error_in_exec, ValueError) and "Traceback" in out and "broken()" in out
        # a handler the notebook set itself stays
        shell.set_custom_exc((KeyError,), lambda *a, **k: ["mine"])
        rs.show_workbench_errors_as_one_line()
        assert shell.custom_exceptions == (KeyError,)
    finally:
        shell.custom_exceptions, shell.CustomTB = saved
