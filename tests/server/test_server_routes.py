"""The workbench server extension's routes through a real jupyter_server (pytest-jupyter)."""

from __future__ import annotations

import ast
import json
import os
import sys
import warnings
from pathlib import Path

import pytest
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import JupyterServerAuthWarning, url_path_join
from tornado.httpclient import HTTPClientError

from runs_seed import seed_runs
from workbench.server.handlers import setup_handlers

RUN = "20261124-101500-bbc-news-minilm-a1b2"
RUNNING = "20261124-150200-support-tickets-c3d4"
FAILED = "20261124-094000-legal-ner-e5f6"
CORRUPT = "20261122-120000-broken-0c0d"

ROUTES = [
    ("GET", "info"),
    ("GET", "runs"),
    ("GET", f"runs/{RUN}"),
    ("GET", f"runs/{RUN}/metrics"),
    ("POST", f"runs/{RUNNING}/stop"),
    ("GET", f"runs/{RUN}/report"),
    ("GET", "templates"),
    ("POST", "notebooks"),
]


async def fetch_json(jp_fetch, *parts, **kw):
    r = await jp_fetch("workbench", "api", *parts, **kw)
    return r, json.loads(r.body.decode())


async def raw(http_server_client, jp_base_url, path, headers=None, method="GET", body=None):
    """Fetch an unescaped path (jp_fetch would percent-encode it), never raising on error codes."""
    url = url_path_join(jp_base_url, "workbench/api") + "/" + path
    if method == "POST" and body is None:
        body = "{}"
    return await http_server_client.fetch(url, method=method, headers=headers or {}, body=body,
                                          follow_redirects=False, raise_error=False)


# ---- authentication, XSRF, origin -------------------------------------------------------------------

@pytest.mark.parametrize("method,path", ROUTES)
async def test_anonymous_requests_are_refused(seeded, jp_serverapp, http_server_client, jp_base_url, method, path):
    r = await raw(http_server_client, jp_base_url, path, method=method,
                  headers={"Authorization": "", "Cookie": ""})
    if method == "GET" and path.endswith("report"):
        assert r.code == 302 and "/login" in r.headers["Location"]
    else:
        assert r.code == 403, (path, r.code)
    assert b"bbc-news" not in (r.body or b"")
    assert not (seeded["running"].stop_file).exists()


@pytest.mark.parametrize("jp_server_config", [
    {"ServerApp": {"jpserver_extensions": {"workbench.server": True, "jupyter_server_terminals": False},
                   "allow_unauthenticated_access": True}}])
@pytest.mark.parametrize("method,path", ROUTES)
async def test_anonymous_refused_even_when_server_allows_unauthenticated(
        seeded, jp_serverapp, http_server_client, jp_base_url, method, path):
    r = await raw(http_server_client, jp_base_url, path, method=method,
                  headers={"Authorization": "", "Cookie": ""})
    assert r.code in (302, 403), (path, r.code)
    assert not (seeded["running"].stop_file).exists()


@pytest.mark.parametrize("method,path", ROUTES)
async def test_token_requests_are_accepted(seeded, templates_root, jp_serverapp, http_server_client, jp_base_url,
                                           jp_auth_header, method, path):
    body = json.dumps({"template": "notes"}) if path == "notebooks" else None
    r = await raw(http_server_client, jp_base_url, path, method=method, headers=dict(jp_auth_header), body=body)
    assert r.code in (200, 201, 202), (path, r.code, r.body[:200])


def test_every_verb_is_decorated(jp_serverapp):
    """jupyter_server flags handlers without @authenticated; ours raise no such warning, a bare one does."""

    class Bare(APIHandler):
        def get(self):
            self.finish("{}")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        setup_handlers(jp_serverapp)
    assert not [w for w in caught if issubclass(w.category, JupyterServerAuthWarning)]
    with pytest.warns(JupyterServerAuthWarning, match="bare"):
        jp_serverapp.web_app.add_handlers(".*$", [(r"/bare", Bare)])


async def _login_cookie(http_server_client, jp_base_url, token) -> str:
    """Log in with the token the way a browser does, returning the Cookie header it would send."""
    r = await http_server_client.fetch(url_path_join(jp_base_url, "login"), raise_error=False)
    xsrf = [c for c in r.headers.get_list("Set-Cookie") if c.startswith("_xsrf=")][0].split(";")[0]
    r = await http_server_client.fetch(
        url_path_join(jp_base_url, "login"), method="POST", follow_redirects=False, raise_error=False,
        headers={"Cookie": xsrf}, body=f"password={token}&{xsrf}")
    assert r.code == 302, r.code
    session = [c.split(";")[0] for c in r.headers.get_list("Set-Cookie") if c.startswith("username-")]
    assert session
    return "; ".join([xsrf, *session]), xsrf.split("=", 1)[1]


async def test_cookie_session_post_needs_xsrf_token(seeded, jp_serverapp, http_server_client, jp_base_url):
    cookie, xsrf = await _login_cookie(http_server_client, jp_base_url, jp_serverapp.identity_provider.token)
    anon = {"Authorization": ""}
    r = await raw(http_server_client, jp_base_url, "runs", headers={**anon, "Cookie": cookie})
    assert r.code == 200  # the session cookie authenticates
    r = await raw(http_server_client, jp_base_url, f"runs/{RUNNING}/stop", method="POST",
                  headers={**anon, "Cookie": cookie})
    assert r.code == 403
    assert not seeded["running"].stop_file.exists()
    r = await raw(http_server_client, jp_base_url, f"runs/{RUNNING}/stop", method="POST",
                  headers={**anon, "Cookie": cookie, "X-XSRFToken": xsrf})
    assert r.code == 202
    assert seeded["running"].stop_file.exists()


async def test_cross_origin_requests_are_refused(seeded, jp_serverapp, http_server_client, jp_base_url):
    """A page on another origin riding the user's session cookie gets nothing, even with the XSRF token."""
    cookie, xsrf = await _login_cookie(http_server_client, jp_base_url, jp_serverapp.identity_provider.token)
    session = {"Authorization": "", "Cookie": cookie, "X-XSRFToken": xsrf}
    r = await raw(http_server_client, jp_base_url, "runs", headers={**session, "Origin": "https://evil.example"})
    assert r.code == 404 and b"bbc-news" not in r.body
    r = await raw(http_server_client, jp_base_url, f"runs/{RUNNING}/stop", method="POST",
                  headers={**session, "Origin": "https://evil.example"})
    assert r.code == 404
    assert not seeded["running"].stop_file.exists()


# ---- path confinement -------------------------------------------------------------------------------

TRAVERSAL = [
    "..", "%2e%2e", ".%2e", "..%2f..%2fsecret", "%2e%2e%2f%2e%2e%2fsecret", "....%2f%2f",
    "..%5c..%5csecret", "%5c%5cserver%5cshare", "C:%5csecret", "%00", "run%00.json", ".hidden", "%2ehidden",
    "..%2fruns-evil%2f20260101-000000-evil", "linked-out", "20261124-101500-BBC-NEWS-MINILM-A1B2-missing",
    "%252e%252e%252fsecret", "runs%2f..%2f..%2fsecret",
]


@pytest.fixture
def outside(jp_root_dir: Path, runs_root: Path, seeded) -> Path:
    """A sibling root (runs-evil) and a symlink from inside the runs root to a run-shaped folder outside it."""
    evil_run = jp_root_dir / "runs-evil" / "20260101-000000-evil"
    evil_run.mkdir(parents=True)
    secret = {"id": "evil", "name": "TOP-SECRET", "status": "running"}
    (evil_run / "run.json").write_text(json.dumps(secret), encoding="utf-8")
    (evil_run / "report.html").write_text("TOP-SECRET", encoding="utf-8")
    (evil_run / "metrics.jsonl").write_text('{"event": "step", "note": "TOP-SECRET"}\n', encoding="utf-8")
    (jp_root_dir / "secret").write_text("TOP-SECRET", encoding="utf-8")
    hidden = runs_root / ".hidden"
    hidden.mkdir()
    (hidden / "run.json").write_text(json.dumps(secret), encoding="utf-8")
    os.symlink(evil_run, runs_root / "linked-out")
    return evil_run


@pytest.mark.parametrize("suffix", ["", "/metrics", "/report", "/stop"])
@pytest.mark.parametrize("run_id", TRAVERSAL)
async def test_traversal_is_refused(outside, jp_serverapp, http_server_client, jp_base_url, jp_auth_header,
                                    run_id, suffix):
    method = "POST" if suffix == "/stop" else "GET"
    r = await raw(http_server_client, jp_base_url, f"runs/{run_id}{suffix}", method=method,
                  headers=dict(jp_auth_header))
    assert r.code in (400, 404), (run_id, suffix, r.code)
    assert b"TOP-SECRET" not in (r.body or b"")
    assert not (outside / "STOP").exists()


async def test_symlink_out_of_root_is_not_listed(outside, jp_fetch):
    r, page = await fetch_json(jp_fetch, "runs")
    assert "TOP-SECRET" not in r.body.decode()
    assert "linked-out" not in {row["id"] for row in page["runs"]}


async def test_symlinked_report_is_refused(seeded, outside, jp_fetch):
    run = seeded["running"]
    os.symlink(outside / "report.html", run.path / "report.html")
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "runs", run.id, "report")
    assert e.value.code == 404


# ---- listing, one run, metrics ----------------------------------------------------------------------

async def test_list_runs_newest_first_with_summaries(seeded, jp_fetch):
    r, page = await fetch_json(jp_fetch, "runs")
    assert r.headers["Content-Type"].startswith("application/json")
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    ids = [row["id"] for row in page["runs"]]
    assert ids == [RUNNING, RUN, FAILED, "20261123-180000-clinical-mlm-0a0b", CORRUPT]
    assert page["total"] == 5 and page["counts"]["running"] == 1
    done = page["runs"][1]
    assert (done["status"], done["main_metric"], done["value"], done["baseline"]) == \
        ("completed", "accuracy", 0.9685, 0.2135)
    assert done["has_report"] is True and done["notebook"] == f"runs/{RUN}/report.ipynb"
    assert done["lab_path"] == f"runs/{RUN}"
    assert 2 <= len(done["loss_sparkline"]) <= 48
    assert done["loss_sparkline"][0] > done["loss_sparkline"][-1]
    running = page["runs"][0]
    # run.json says step 60; metrics.jsonl has logged step 61 since (the later one is shown)
    assert running["progress"]["step"] == 61 and running["progress"]["total_steps"] == 200
    failed = page["runs"][2]
    assert failed["status"] == "failed" and "expected 2 columns" in failed["error"]


async def test_rows_say_whether_a_higher_main_metric_is_better(seeded, jp_fetch):
    _, page = await fetch_json(jp_fetch, "runs")
    by_id = {row["id"]: row for row in page["runs"]}
    assert by_id[RUN]["greater_is_better"] is True  # accuracy
    assert by_id["20261123-180000-clinical-mlm-0a0b"]["greater_is_better"] is False  # perplexity, by its name
    assert "greater_is_better" not in by_id[CORRUPT]
    # eval.json's own word wins over the name
    seeded["completed"].eval_json.write_text(json.dumps(
        {"main_metric": "accuracy", "greater_is_better": False, "finetuned": {"accuracy": 0.5}}), encoding="utf-8")
    _, page = await fetch_json(jp_fetch, "runs")
    assert next(r for r in page["runs"] if r["id"] == RUN)["greater_is_better"] is False


async def test_detail_gives_each_metric_its_direction(seeded, jp_fetch):
    _, detail = await fetch_json(jp_fetch, "runs", RUN)
    assert detail["greater_is_better"] == {"accuracy": True, "f1": True}
    seeded["completed"].eval_json.write_text(json.dumps(
        {"main_metric": "perplexity", "greater_is_better": False,
         "finetuned": {"perplexity": 41.0, "loss": 3.7, "eval_loss": 3.7, "accuracy": 0.4},
         "baseline": {"perplexity": 30.7, "loss": 3.4, "mse": 0.1}}), encoding="utf-8")
    _, detail = await fetch_json(jp_fetch, "runs", RUN)
    assert detail["greater_is_better"] == {"perplexity": False, "loss": False, "eval_loss": False,
                                           "accuracy": True, "mse": False}
    assert detail["run"]["greater_is_better"] is False
    _, detail = await fetch_json(jp_fetch, "runs", FAILED)
    assert detail["greater_is_better"] == {} and detail["run"]["greater_is_better"] is True  # f1, no eval.json yet


async def test_unchanged_listing_is_a_304(seeded, jp_serverapp, http_server_client, jp_base_url, jp_auth_header):
    r = await raw(http_server_client, jp_base_url, "runs?limit=100", headers=dict(jp_auth_header))
    etag = r.headers["Etag"]
    assert r.code == 200 and etag
    r = await raw(http_server_client, jp_base_url, "runs?limit=100", headers={**jp_auth_header, "If-None-Match": etag})
    assert r.code == 304 and not r.body
    seeded["running"].update_info(progress={"step": 61, "total_steps": 200})
    r = await raw(http_server_client, jp_base_url, "runs?limit=100", headers={**jp_auth_header, "If-None-Match": etag})
    assert r.code == 200 and r.headers["Etag"] != etag and b"support-tickets" in r.body


async def test_corrupt_run_gets_an_error_field_not_a_500(seeded, jp_fetch, jp_root_dir):
    r, page = await fetch_json(jp_fetch, "runs")
    row = next(row for row in page["runs"] if row["id"] == CORRUPT)
    assert row["status"] == "unknown" and "corrupt" in row["error"]
    assert str(jp_root_dir) not in r.body.decode()  # no server paths in responses
    r, detail = await fetch_json(jp_fetch, "runs", CORRUPT)
    assert detail["info"] is None and detail["run"]["error"]


async def test_run_json_that_is_not_an_object_gets_an_error_row(seeded, jp_fetch):
    odd = seeded["failed"]
    odd.run_json.write_text("[1, 2, 3]", encoding="utf-8")
    (odd.path / "eval.json").write_text('{"main_metric": "f1", "finetuned": {"f1": 0.5}}', encoding="utf-8")
    r, page = await fetch_json(jp_fetch, "runs")
    row = next(row for row in page["runs"] if row["id"] == odd.id)
    assert row["status"] == "unknown" and row["error"]


async def test_pagination(seeded, jp_fetch):
    _, page = await fetch_json(jp_fetch, "runs", params={"offset": "1", "limit": "2"})
    assert [r["id"] for r in page["runs"]] == [RUN, FAILED]
    assert (page["total"], page["offset"], page["limit"]) == (5, 1, 2)
    assert page["max_limit"] == 1000 and page["runs_dir_exists"] is True
    _, page = await fetch_json(jp_fetch, "runs", params={"limit": "1000"})
    assert len(page["runs"]) == 5
    _, info = await fetch_json(jp_fetch, "info")
    assert info["max_limit"] == 1000
    _, page = await fetch_json(jp_fetch, "runs", params={"offset": "10"})
    assert page["runs"] == [] and page["total"] == 5


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "abc"}, {"offset": "-1"}, {"limit": "100000"},
                                    {"limit": "1_0"}, {"limit": "\uff11"}])
async def test_bad_pagination_is_a_400(seeded, jp_fetch, params):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "runs", params=params)
    assert e.value.code == 400
    assert json.loads(e.value.response.body)["message"]


@pytest.mark.parametrize("jp_server_config", [
    {"ServerApp": {"jpserver_extensions": {"workbench.server": True, "jupyter_server_terminals": False}},
     "WorkbenchServer": {"max_page_size": 3}}])
async def test_pages_report_the_configured_maximum(seeded, jp_fetch):
    _, page = await fetch_json(jp_fetch, "runs", params={"limit": "3"})
    assert page["max_limit"] == 3 and len(page["runs"]) == 3 and page["total"] == 5
    _, info = await fetch_json(jp_fetch, "info")
    assert info["max_limit"] == 3
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "runs", params={"limit": "4"})
    assert e.value.code == 400


async def test_listing_follows_changes(seeded, jp_fetch):
    _, page = await fetch_json(jp_fetch, "runs")
    before = next(r for r in page["runs"] if r["id"] == RUNNING)
    run = seeded["running"]
    run.update_info(progress={"step": 90, "total_steps": 200, "epoch": 0.45})
    for step in range(62, 91):
        run.append_metrics({"event": "step", "step": step, "loss": 0.01})
    _, page = await fetch_json(jp_fetch, "runs")
    after = next(r for r in page["runs"] if r["id"] == RUNNING)
    assert after["progress"]["step"] == 90
    assert "updated_at" not in before and after["updated_at"]  # the front end's end of a run without finished_at
    assert after["loss_sparkline"][-1] < before["loss_sparkline"][-1]


async def test_a_running_run_whose_process_ended_is_listed_as_failed_and_cannot_be_stopped(seeded, jp_fetch):
    import socket
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    run = seeded["running"]
    info = json.loads(run.run_json.read_text())
    run.run_json.write_text(json.dumps({**info, "pid": process.pid, "host": socket.gethostname()}))
    try:
        _, page = await fetch_json(jp_fetch, "runs")
        assert next(r for r in page["runs"] if r["id"] == RUNNING)["status"] == "running"  # alive, and now cached
    finally:
        process.kill()
        process.wait()
    _, page = await fetch_json(jp_fetch, "runs")  # run.json untouched since: the cached row is read again
    row = next(r for r in page["runs"] if r["id"] == RUNNING)
    assert row["status"] == "failed" and "its process ended without recording why" in row["error"], row
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "runs", RUNNING, "stop", method="POST", body=b"{}")
    assert e.value.code == 409 and not run.stop_file.exists()


async def test_no_runs_directory_is_an_empty_list(jp_fetch):
    _, page = await fetch_json(jp_fetch, "runs")
    assert page["runs"] == [] and page["total"] == 0 and page["runs_dir_exists"] is False
    _, info = await fetch_json(jp_fetch, "info")
    assert info["runs_dir"] == "runs" and info["runs_dir_exists"] is False


class TestRunsFolderOutsideTheRoot:
    @pytest.fixture
    def elsewhere(self, tmp_path: Path) -> Path:
        return tmp_path / "elsewhere" / "runs"

    @pytest.fixture
    def jp_server_config(self, templates_root: Path, elsewhere: Path):
        return {
            "ServerApp": {"jpserver_extensions": {"workbench.server": True, "jupyter_server_terminals": False},
                          "allow_unauthenticated_access": False},
            "WorkbenchServer": {"templates_dir": str(templates_root), "runs_dir": str(elsewhere)},
        }

    async def test_info_names_no_server_path(self, elsewhere, jp_fetch, jp_root_dir):
        seed_runs(elsewhere)
        r, info = await fetch_json(jp_fetch, "info")
        assert info["runs_dir"] is None and info["runs_dir_outside_root"] is True
        assert info["runs_dir_exists"] is True and info["max_limit"] == 1000
        assert str(elsewhere) not in r.body.decode() and "elsewhere" not in r.body.decode()
        _, page = await fetch_json(jp_fetch, "runs")  # the runs are listed all the same
        assert page["total"] == 5 and all(row["lab_path"] is None for row in page["runs"])


async def test_info_names_the_runs_folder_from_the_root(jp_fetch, jp_root_dir):
    (jp_root_dir / "runs").mkdir()
    r, info = await fetch_json(jp_fetch, "info")
    assert info["runs_dir"] == "runs" and info["runs_dir_outside_root"] is False
    assert info["runs_dir_exists"] is True and str(jp_root_dir) not in r.body.decode()


async def test_corrupt_eval_json_gets_an_eval_error_not_a_silent_null(seeded, jp_fetch, jp_root_dir):
    """Reported as a corrupt run.json is: an error field in the run's row, beside what could be read."""
    seeded["completed"].eval_json.write_text("{broken", encoding="utf-8")
    r, detail = await fetch_json(jp_fetch, "runs", RUN)
    assert detail["eval"] is None and detail["greater_is_better"] == {}
    assert detail["run"]["status"] == "completed" and detail["info"]["model"] == "minilm"
    assert detail["run"]["eval_error"].startswith("eval.json cannot be read (Expecting property name")
    assert str(jp_root_dir) not in r.body.decode()
    _, page = await fetch_json(jp_fetch, "runs")
    row = next(row for row in page["runs"] if row["id"] == RUN)
    assert row["status"] == "completed" and row["eval_error"] == detail["run"]["eval_error"]
    seeded["completed"].eval_json.unlink()
    seeded["completed"].eval_json.mkdir()
    r, detail = await fetch_json(jp_fetch, "runs", RUN)
    assert detail["eval"] is None and detail["run"]["eval_error"] == "eval.json cannot be read (Is a directory)"
    assert str(jp_root_dir) not in r.body.decode()


async def test_one_run(seeded, jp_fetch):
    _, detail = await fetch_json(jp_fetch, "runs", RUN)
    assert detail["run"]["id"] == RUN
    assert detail["info"]["model"] == "minilm"
    assert detail["config"].startswith("task: text-classification")
    assert detail["eval"]["finetuned"]["accuracy"] == 0.9685


async def test_metrics_are_strict_json(seeded, jp_fetch):
    r, chunk = await fetch_json(jp_fetch, "runs", RUNNING, "metrics")
    text = r.body.decode()
    assert "NaN" not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in response"))
    last = chunk["records"][-1]
    assert last["step"] == 61 and last["loss"] is None and chunk["nonfinite"] is True


async def test_metrics_are_incremental(seeded, jp_fetch):
    run = seeded["running"]
    _, first = await fetch_json(jp_fetch, "runs", RUNNING, "metrics")
    assert first["offset"] == run.metrics_jsonl.stat().st_size and first["more"] is False
    steps = [r for r in first["records"] if r["event"] == "step"]
    assert len(steps) == 61
    with open(run.metrics_jsonl, "a", encoding="utf-8") as f:
        f.write('{"event": "step", "step": 62, "loss": 0.5}\n{"event": "step", "st')  # a writer mid-append
    _, second = await fetch_json(jp_fetch, "runs", RUNNING, "metrics", params={"offset": str(first["offset"])})
    assert [r["step"] for r in second["records"]] == [62]
    with open(run.metrics_jsonl, "a", encoding="utf-8") as f:
        f.write('ep": 63, "loss": 0.4}\n')
    _, third = await fetch_json(jp_fetch, "runs", RUNNING, "metrics", params={"offset": str(second["offset"])})
    assert [r["step"] for r in third["records"]] == [63] and third["reset"] is False


@pytest.mark.parametrize("which", ["completed", "running"])
async def test_a_half_written_last_line_is_not_more_to_read(seeded, jp_fetch, which):
    """A last line without its newline (being written, or left by a killed writer) is not "more":
    a client that follows "more" stops after one request, and gets the line once it is complete."""
    run = seeded[which]
    complete = run.metrics_jsonl.stat().st_size
    with open(run.metrics_jsonl, "a", encoding="utf-8") as f:
        f.write('{"event": "step", "step": 500, "lo')
    _, chunk = await fetch_json(jp_fetch, "runs", run.id, "metrics")
    assert chunk["more"] is False and chunk["offset"] == complete
    assert chunk["size"] > complete and chunk["records"][-1].get("step") != 500
    _, again = await fetch_json(jp_fetch, "runs", run.id, "metrics", params={"offset": str(chunk["offset"])})
    assert again == {**again, "records": [], "offset": complete, "more": False, "reset": False}
    with open(run.metrics_jsonl, "a", encoding="utf-8") as f:
        f.write('ss": 0.25}\n')
    _, done = await fetch_json(jp_fetch, "runs", run.id, "metrics", params={"offset": str(complete)})
    assert [r["step"] for r in done["records"]] == [500] and done["more"] is False


async def test_metrics_offset_past_the_end_restarts(seeded, jp_fetch):
    _, chunk = await fetch_json(jp_fetch, "runs", RUN, "metrics", params={"offset": str(10**9)})
    assert chunk["reset"] is True and chunk["records"][0]["event"] == "started"


async def test_metrics_corrupt_line_is_marked_not_fatal(seeded, jp_fetch):
    with open(seeded["running"].metrics_jsonl, "a", encoding="utf-8") as f:
        f.write("garbage{\n")
    _, chunk = await fetch_json(jp_fetch, "runs", RUNNING, "metrics")
    assert chunk["records"][-1] == {"event": "corrupt_line"}


async def test_unreadable_metrics_are_a_409_that_names_the_file(seeded, jp_fetch):
    """A folder where metrics.jsonl should be (or a file without permission on a shared disk): the
    reply says which file and why, instead of jupyter_server's "Unhandled error"."""
    run = seeded["running"]
    run.metrics_jsonl.unlink()
    run.metrics_jsonl.mkdir()
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "runs", RUNNING, "metrics")
    assert e.value.code == 409
    message = json.loads(e.value.response.body)["message"]
    assert message.startswith("metrics.jsonl of this run cannot be read (Is a directory): ")
    assert message.endswith(f"{RUNNING}/metrics.jsonl") and str(run.metrics_jsonl) not in message  # no server path
    _, detail = await fetch_json(jp_fetch, "runs", RUNNING)  # the rest of the run still reads
    assert detail["run"]["id"] == RUNNING


# ---- stop and report --------------------------------------------------------------------------------

async def test_stop_writes_the_stop_file(seeded, jp_fetch):
    r, body = await fetch_json(jp_fetch, "runs", RUNNING, "stop", method="POST", body="")
    assert r.code == 202 and body == {"id": RUNNING, "stop_requested": True}
    assert seeded["running"].stop_file.exists()


@pytest.mark.parametrize("which", ["completed", "failed", "corrupt"])
async def test_stop_of_a_finished_run_is_a_409(seeded, jp_fetch, which):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "runs", seeded[which].id, "stop", method="POST", body="")
    assert e.value.code == 409
    assert not seeded[which].stop_file.exists()


async def test_report_is_served_sandboxed(seeded, jp_fetch):
    r = await jp_fetch("workbench", "api", "runs", RUN, "report")
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = r.headers["Content-Security-Policy"]
    assert "sandbox allow-scripts" in csp and "default-src 'none'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert b"bbc-news-minilm report" in r.body


async def test_run_without_report_is_a_404(seeded, jp_fetch):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "runs", RUNNING, "report")
    assert e.value.code == 404 and e.value.response.body == b"404: this run has no report\n"


async def test_an_unknown_run_is_named_in_the_404(seeded, jp_fetch):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "runs", "20990101-000000-nope-abcd")
    assert e.value.code == 404
    message = json.loads(e.value.response.body)["message"]
    assert message == "no run '20990101-000000-nope-abcd' in the runs folder"  # no API hints for users


# ---- templates and new notebooks --------------------------------------------------------------------

async def test_templates_are_listed(jp_fetch):
    _, body = await fetch_json(jp_fetch, "templates")
    by_name = {t["name"]: t for t in body["templates"]}
    assert set(by_name) == {"text-classification", "notes"}
    tc = by_name["text-classification"]
    assert tc["title"] == "Text classification"
    assert tc["description"] == "Fine-tune a classifier on your labelled texts."
    assert [(p["name"], p["default"], p["help"]) for p in tc["parameters"]] == \
        [("model", '"minilm"', "bundled alias or hub id"), ("epochs", "1", "")]


async def test_notebook_from_template_without_parameters_is_a_clean_copy(jp_fetch, jp_root_dir):
    r, body = await fetch_json(jp_fetch, "notebooks", method="POST",
                               body=json.dumps({"template": "text-classification"}))
    assert r.code == 201 and body["path"] == "text-classification.ipynb"
    nb = json.loads((jp_root_dir / body["path"]).read_text())
    assert [c["cell_type"] for c in nb["cells"]] == ["markdown", "code", "code"]
    assert nb["cells"][2]["outputs"] == [] and nb["cells"][2]["execution_count"] is None
    # the kernel as JupyterLab writes it once the kernel reports itself: opened, the notebook is unchanged
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    assert nb["metadata"]["kernelspec"] == {"display_name": KernelSpecManager().get_kernel_spec("python3").display_name,
                                            "language": "python", "name": "python3"}
    assert nb["metadata"]["language_info"] == IPythonKernel.language_info
    _, again = await fetch_json(jp_fetch, "notebooks", method="POST",
                                body=json.dumps({"template": "text-classification"}))
    assert again["path"] == "text-classification-1.ipynb"


async def test_notebook_parameters_are_injected_like_papermill(jp_fetch, jp_root_dir):
    (jp_root_dir / "work").mkdir()
    params = {"model": 'x"\n__import__("os").system("id")#', "epochs": 3}
    _, body = await fetch_json(jp_fetch, "notebooks", method="POST",
                               body=json.dumps({"template": "text-classification", "path": "work",
                                                "parameters": params}))
    assert body["path"] == "work/text-classification.ipynb"
    nb = json.loads((jp_root_dir / body["path"]).read_text())
    injected = nb["cells"][2]
    assert injected["metadata"]["tags"] == ["injected-parameters"]
    tree = ast.parse("".join(injected["source"]))
    assert all(isinstance(node, ast.Assign) for node in tree.body)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    namespace: dict = {}
    exec(compile(tree, "injected", "exec"), namespace)  # literals only, as asserted above
    assert namespace["model"] == params["model"] and namespace["epochs"] == 3


@pytest.mark.parametrize("payload,code", [
    ({"template": "text-classification", "parameters": {"bogus": 1}}, 400),
    ({"template": "text-classification", "parameters": {"x = 1\nimport os\ny": 1}}, 400),
    ({"template": "text-classification", "parameters": {"epochs": [1, {"a": float("inf")}]}}, 400),
    ({"template": "text-classification", "parameters": {"epochs": "abc"}}, 400),  # declared a number
    ({"template": "../templates/text-classification"}, 404),
    ({"template": "missing"}, 404),
    ({"template": 3}, 400),
    ({"template": "notes", "path": "../outside"}, 400),
    ({"template": "notes", "path": "a\\..\\..\\b"}, 400),
    ({"template": "notes", "path": "no/such/folder"}, 404),
    ([1, 2], 400),
])
async def test_bad_notebook_requests(jp_fetch, jp_root_dir, payload, code):
    body = json.dumps(payload) if not (isinstance(payload, dict) and "inf" in repr(payload)) \
        else json.dumps(payload).replace("Infinity", "1e999")
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "notebooks", method="POST", body=body)
    assert e.value.code == code
    assert json.loads(e.value.response.body)["message"]
    assert not list(jp_root_dir.rglob("*.ipynb"))


async def test_a_notebook_in_a_folder_with_any_characters_is_created_once(jp_fetch, jp_root_dir):
    folder = jp_root_dir / "日本語 runs" / "emoji 🚀"
    folder.mkdir(parents=True)
    r, body = await fetch_json(jp_fetch, "notebooks", method="POST",
                               body=json.dumps({"template": "notes", "path": "日本語 runs/emoji 🚀"}))
    assert r.code == 201 and body["path"] == "日本語 runs/emoji 🚀/notes.ipynb"
    assert r.headers["Location"].endswith("/api/contents/%E6%97%A5%E6%9C%AC%E8%AA%9E%20runs/emoji%20%F0%9F%9A%80/notes.ipynb")
    assert [p.name for p in folder.glob("*.ipynb")] == ["notes.ipynb"]


async def test_a_notebook_path_is_normalised_as_the_file_browser_names_it(jp_fetch, jp_root_dir):
    (jp_root_dir / "sub").mkdir()
    _, body = await fetch_json(jp_fetch, "notebooks", method="POST",
                               body=json.dumps({"template": "notes", "path": "/sub/./"}))
    assert body["path"] == "sub/notes.ipynb" and (jp_root_dir / "sub" / "notes.ipynb").is_file()


async def test_a_hidden_folder_is_refused_before_anything_is_written(jp_fetch, jp_root_dir):
    (jp_root_dir / ".hidden").mkdir()
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "notebooks", method="POST",
                       body=json.dumps({"template": "notes", "path": ".hidden"}))
    assert e.value.code == 400 and "hidden folder" in json.loads(e.value.response.body)["message"]
    assert not list((jp_root_dir / ".hidden").iterdir())


async def test_a_template_whose_parameters_cell_is_broken_says_so(jp_fetch, jp_root_dir, templates_root):
    nb = json.loads((templates_root / "text-classification.ipynb").read_text())
    nb["cells"][1]["source"] = "model = 'minilm'\nepochs = (\n"
    (templates_root / "broken.ipynb").write_text(json.dumps(nb))
    _, body = await fetch_json(jp_fetch, "templates")
    broken = {t["name"]: t for t in body["templates"]}["broken"]
    assert "parameters cell is not valid Python (line 2" in broken["error"]
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "notebooks", method="POST",
                       body=json.dumps({"template": "broken", "parameters": {"epochs": 2}}))
    assert e.value.code == 400 and "not valid Python" in json.loads(e.value.response.body)["message"]
    assert not list(jp_root_dir.glob("*.ipynb"))


async def test_a_wrongly_typed_parameter_is_explained_without_command_line_advice(jp_fetch):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("workbench", "api", "notebooks", method="POST",
                       body=json.dumps({"template": "text-classification", "parameters": {"epochs": "two"}}))
    message = json.loads(e.value.response.body)["message"]
    assert "'epochs' must be int, got 'two'" in message and "-p " not in message


async def test_a_renamed_run_folder_is_listed_and_opens(seeded, jp_fetch, runs_root):
    name = "best run (v2) ünï"
    (runs_root / name).mkdir()
    (runs_root / name / "run.json").write_bytes(seeded["completed"].run_json.read_bytes())
    _, page = await fetch_json(jp_fetch, "runs")
    assert name in {row["id"] for row in page["runs"]}
    _, detail = await fetch_json(jp_fetch, "runs", name)
    assert detail["run"]["id"] == name


def test_runs_dir_setting_is_honoured(jp_configurable_serverapp, jp_server_config, tmp_path):
    elsewhere = tmp_path / "elsewhere-runs"
    seed_runs(elsewhere)
    jp_server_config["WorkbenchServer"]["runs_dir"] = str(elsewhere)
    app = jp_configurable_serverapp(config=jp_server_config)
    state = app.web_app.settings["workbench"]
    assert state.runs_root == elsewhere
    assert len(state.index.rows()) == 5
    assert state.index.rows()[0]["lab_path"] is None  # outside the contents root: not openable in Lab
    # the server's kernels inherit it: their notebooks' runs land where the sidebar looks
    assert os.environ["WORKBENCH_RUNS_DIR"] == str(elsewhere)


def test_kernels_keep_onednns_default_unless_they_import_workbench(jp_configurable_serverapp, jp_server_config,
                                                                   monkeypatch):
    """workbench's larger oneDNN kernel cache is for the processes that import it, not for every
    kernel the server starts; a value the user set stays."""
    from workbench import _onednn

    monkeypatch.delenv(_onednn.CACHE_VARIABLE, raising=False)
    monkeypatch.setattr(_onednn, "set_here", False)
    _onednn.reserve_kernel_cache()
    assert os.environ[_onednn.CACHE_VARIABLE] == str(_onednn.CACHE_CAPACITY)
    jp_configurable_serverapp(config=jp_server_config)
    assert _onednn.CACHE_VARIABLE not in os.environ
    monkeypatch.setenv(_onednn.CACHE_VARIABLE, "2000")
    _onednn.reserve_kernel_cache()
    jp_configurable_serverapp(config=jp_server_config)
    assert os.environ[_onednn.CACHE_VARIABLE] == "2000"



async def test_a_kernel_the_server_starts_gets_the_cache_only_by_importing_workbench(
        jp_configurable_serverapp, jp_server_config, monkeypatch):
    """The same, seen from inside a real kernel the server launches: its environment lacks
    workbench's value until the notebook imports workbench."""
    from workbench import _onednn

    monkeypatch.delenv(_onednn.CACHE_VARIABLE, raising=False)
    monkeypatch.setattr(_onednn, "set_here", False)
    _onednn.reserve_kernel_cache()
    app = jp_configurable_serverapp(config=jp_server_config)
    kernel_id = await app.kernel_manager.start_kernel()
    client = app.kernel_manager.get_kernel(kernel_id).client()
    try:
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        lines = []
        reply = await client.execute_interactive(
            f"import os\nbefore = os.environ.get({_onednn.CACHE_VARIABLE!r})\nimport workbench\n"
            f"print(before, os.environ.get({_onednn.CACHE_VARIABLE!r}))",
            output_hook=lambda msg: lines.append(msg["content"].get("text", "")), timeout=120)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert "".join(lines).split() == ["None", str(_onednn.CACHE_CAPACITY)]
    finally:
        client.stop_channels()
        await app.kernel_manager.shutdown_kernel(kernel_id, now=True)


@pytest.mark.parametrize("argv, same", [(["python", "-m", "ipykernel_launcher"], True),
                                        ([sys.executable, "-m", "ipykernel_launcher"], True),
                                        (["/opt/other-env/bin/python", "-m", "ipykernel_launcher"], False),
                                        ([], False)])
def test_a_kernel_of_this_python_is_told_from_another(argv, same):
    from workbench.server.templates import same_python

    assert same_python(argv) is same
