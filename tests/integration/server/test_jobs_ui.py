"""Background jobs a user can see, exports started from the dataset browser, export
archives that expire, and API docs that work without the internet.

* ``GET /api/v1/jobs`` lists the caller's jobs (newest first, paged, by status); an
  administrator may list everyone's; the Jobs page shows the same, complete without JS.
* The browser's Export form exports the version the page shows, with the page's filter,
  under the same rules as the API (a sliced curator's archive holds only their slice).
* After the retention period a job is expired: its download answers 410, and one sweep
  (in one process of several) deletes the archive; a download already under way still
  gets the whole file.
* ``/api/v1/docs`` loads Swagger UI from this server only.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_workspace
from tests.integration.server.conftest import SLICE, Demo, make_app, username
from tests.integration.server.test_ui_browser import SCREENSHOTS, base_url, browser  # noqa: F401 - fixtures
from tests.integration.server.test_ui_html import Page, assert_safe, ui_client
from viewfinder.server.jobs import JobRunner, JobStatus, Progress, Retention
from viewfinder.storage.catalog import utcnow
from viewfinder.storage.workspace import Workspace, open_workspace

pytestmark = pytest.mark.integration

LATER = timedelta(days=30)
"""Far past the default retention (7 days) and its grace."""


def _wait(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while (job := client.get(f"/api/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job {job_id} did not finish"
        time.sleep(0.05)
    return job


def _export(client: TestClient, demo: Demo, **body: Any) -> dict[str, Any]:
    r = client.post(f"/api/v1/datasets/{demo.dataset}/exports", json={"ref": "main", **body})
    assert r.status_code == 202, r.text
    return _wait(client, r.json()["id"])


def _count(demo: Demo, filter: str | None) -> int:
    from viewfinder.services import look

    with open_workspace(demo.ws_path) as ws:
        return look.count(ws, demo.dataset, filter)


def _images(archive: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        return sorted(n for n in z.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png")))


def _blob_path(demo: Demo, digest: str) -> Path:
    from viewfinder.storage.blobs import blob_relpath

    with open_workspace(demo.ws_path) as ws:
        return Path(ws.blobs.root.removeprefix("file://")) / blob_relpath(digest)


# -- the jobs list ---------------------------------------------------------------------

def test_jobs_list_is_ones_own_newest_first_paged_and_by_status(
        demo: Demo, clients: Callable[[str], TestClient]) -> None:
    engineer = clients("data_engineer")
    mine = [_export(engineer, demo, format=f)["id"] for f in ("coco", "yolo", "voc")]
    listed = engineer.get("/api/v1/jobs", params={"limit": 200}).json()
    ids = [j["id"] for j in listed["jobs"]]
    assert [i for i in ids if i in mine] == mine[::-1]  # newest first
    assert listed["next_offset"] is None
    assert {j["status"] for j in listed["jobs"] if j["id"] in mine} == {"succeeded"}
    assert all(j["expires_at"] for j in listed["jobs"] if j["id"] in mine)

    first = engineer.get("/api/v1/jobs", params={"limit": 2}).json()
    rest = engineer.get("/api/v1/jobs", params={"limit": 2, "offset": first["next_offset"]}).json()
    assert first["next_offset"] == 2 and [j["id"] for j in first["jobs"]] == ids[:2]
    assert [j["id"] for j in rest["jobs"]] == ids[2:4]

    assert {j["id"] for j in engineer.get("/api/v1/jobs", params={"status": "succeeded"}).json()["jobs"]} >= set(mine)
    assert engineer.get("/api/v1/jobs", params={"status": "running"}).json()["jobs"] == []
    assert engineer.get("/api/v1/jobs", params={"status": "lost"}).status_code == 400
    assert engineer.get("/api/v1/jobs", params={"limit": 0}).status_code == 400

    # nobody else sees them; a viewer has none; only an administrator sees everyone's
    assert not {j["id"] for j in clients("curator").get("/api/v1/jobs").json()["jobs"]} & set(mine)
    assert clients("viewer").get("/api/v1/jobs").json() == {"jobs": [], "next_offset": None}
    assert clients("curator").get("/api/v1/jobs", params={"all": "true"}).status_code == 403
    everyone = clients("head_of_dataops").get("/api/v1/jobs", params={"all": "true", "limit": 200}).json()
    owners = {j["id"]: j["owner"] for j in everyone["jobs"]}
    assert all(owners[i] == username("data_engineer") for i in mine)


def test_jobs_page_shows_the_state_without_javascript(demo: Demo, app: Any,
                                                     clients: Callable[[str], TestClient]) -> None:
    done = _export(clients("curator"), demo, format="coco")
    c = ui_client(app, "curator")
    r = c.get("/jobs")
    assert r.status_code == 200
    page = assert_safe(r.text)
    assert '<a href="/jobs" class="active">Jobs</a>' in r.text  # in the nav
    assert f'<tr data-id="{done["id"]}" data-status="succeeded">' in r.text
    assert f'href="/api/v1/jobs/{done["id"]}/download"' in r.text
    assert f'{done["result"]["samples"]} samples' in r.text
    assert any(s.get("src") == "/static/jobs.js" for s in page.scripts)
    assert page.data["vf-jobs"]["username"] == username("curator")
    assert "Owner" not in r.text and "Everyone's jobs" not in r.text  # not an administrator
    assert c.get("/jobs", params={"all": "1"}).status_code == 403

    admin = ui_client(app, "head_of_dataops")
    r = admin.get("/jobs", params={"all": "1"})
    assert r.status_code == 200 and "<th>Owner</th>" in r.text
    row = r.text.split(f'<tr data-id="{done["id"]}"', 1)[1].split("</tr>", 1)[0]
    assert f'<td class="owner">{username("curator")}</td>' in row
    assert "/download" not in row  # someone else's archive is theirs to download
    js = c.get("/static/jobs.js")
    assert js.status_code == 200 and "/api/v1/jobs" in js.text


# -- exporting from the browser ----------------------------------------------------------

def test_export_form_exports_the_version_shown_with_the_filter(
        demo: Demo, app: Any, clients: Callable[[str], TestClient]) -> None:
    from viewfinder.formats import registry

    c = ui_client(app, "curator_apac")
    cars = 'label.class == "car"'
    r = c.get(f"/datasets/{demo.dataset}", params={"filter": cars})
    page = assert_safe(r.text)
    form = next(f for f in page.forms if f["attrs"].get("id") == "export-form")
    shown = page.data["vf-data"]["version"]
    assert form["attrs"]["action"] == f"/datasets/{demo.dataset}/exports"
    assert form["fields"]["ref"] == shown and form["fields"]["filter"] == cars
    assert form["fields"]["csrf_token"]
    options = r.text.split('id="export-form"', 1)[1].split("</form>", 1)[0]
    assert [o for o in registry.export_names() if f'<option value="{o}">' in options] == registry.export_names()

    r = c.post(form["attrs"]["action"], data={**form["fields"], "format": "yolo"})
    assert r.status_code == 303 and r.headers["location"] == "/jobs"
    jobs_page = c.get("/jobs")
    assert "Exporting street" in jobs_page.text and 'id="flash"' in jobs_page.text
    assert 'id="flash"' not in c.get("/jobs").text  # shown once
    job = clients("curator_apac").get("/api/v1/jobs", params={"limit": 1}).json()["jobs"][0]
    assert job["params"] == {"ref": shown, "version": shown, "format": "yolo", "filter": cars}
    job = _wait(clients("curator_apac"), job["id"])
    assert job["status"] == "succeeded", job
    archive = clients("curator_apac").get(f"/api/v1/jobs/{job['id']}/download")
    assert archive.status_code == 200
    # the slice and the filter both hold: APAC cars only
    assert len(_images(archive.content)) == job["result"]["samples"] == _count(demo, f"({SLICE}) and {cars}")
    assert 0 < job["result"]["samples"] < _count(demo, cars)


def test_export_form_refusals(demo: Demo, app: Any) -> None:
    viewer = ui_client(app, "viewer")
    r = viewer.get(f"/datasets/{demo.dataset}")
    assert r.status_code == 200 and 'id="export-form"' not in r.text  # no export right: no form
    token = Page(r.text).forms[0]["fields"]["csrf_token"]  # the sign-out form's
    url = f"/datasets/{demo.dataset}/exports"
    assert viewer.post(url, data={"csrf_token": token, "format": "coco"}).status_code == 403
    labeler = ui_client(app, "labeler")
    token = Page(labeler.get("/").text).forms[0]["fields"]["csrf_token"]
    assert labeler.post(url, data={"csrf_token": token, "format": "coco"}).status_code == 404

    curator = ui_client(app, "curator")
    form = next(f for f in Page(curator.get(f"/datasets/{demo.dataset}").text).forms
                if f["attrs"].get("id") == "export-form")
    assert curator.post(url, data={**form["fields"], "format": "coco", "csrf_token": ""}).status_code == 403
    r = curator.post(url, data={**form["fields"], "format": "coco", "filter": "label.class =="})
    assert r.status_code == 303
    assert "did not start: the filter has an error at column" in curator.get("/jobs").text
    r = curator.post(url, data={**form["fields"], "format": "no-such-format"})
    assert r.status_code == 303 and "unknown format" in curator.get("/jobs").text


# -- expiry ------------------------------------------------------------------------------

def test_an_expired_export_answers_410_and_its_archive_is_deleted(
        demo: Demo, app: Any, clients: Callable[[str], TestClient]) -> None:
    from viewfinder.governance import users
    from viewfinder.governance.principal import Principal
    from viewfinder.server import export_jobs

    state = app.state.vf
    c = clients("data_engineer")
    reading, gone = _export(c, demo, format="coco"), _export(c, demo, format="coco")
    assert reading["result"]["archive"] != gone["result"]["archive"]  # one archive per job
    paths = {j["id"]: _blob_path(demo, j["result"]["archive"]) for j in (reading, gone)}
    assert all(p.exists() for p in paths.values())

    # a download under way holds the archive open when the sweep deletes it
    engineer = users.get_user(state.ws, username("data_engineer"))
    principal = Principal(user_id=engineer.id, username=engineer.username, kind="user")
    under_way = export_jobs.download(state, principal, reading["id"], {"ip": None, "user_agent": None})
    expired = state.jobs.expire_due(now=utcnow() + LATER)
    assert {reading["id"], gone["id"]} <= set(expired)
    assert not any(p.exists() for p in paths.values())
    with under_way.file as f:
        data = f.read()
    assert len(data) == under_way.size == reading["result"]["archive_bytes"]
    assert hashlib.sha256(data).hexdigest() == reading["result"]["archive"]
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None

    # afterwards: expired, 410 with a clear message, shown so on the Jobs page
    job = c.get(f"/api/v1/jobs/{gone['id']}").json()
    assert job["status"] == "expired" and job["result"]["samples"] == gone["result"]["samples"]
    r = c.get(f"/api/v1/jobs/{gone['id']}/download")
    assert r.status_code == 410
    assert r.json()["error"]["type"] == "ArchiveExpired"
    assert "expired" in r.json()["error"]["message"] and "export the dataset again" in r.json()["error"]["message"]
    assert gone["id"] in {j["id"] for j in c.get("/api/v1/jobs", params={"status": "expired"}).json()["jobs"]}
    page = ui_client(app, "data_engineer").get("/jobs").text
    row = page.split(f'<tr data-id="{gone["id"]}"', 1)[1].split("</tr>", 1)[0]
    assert row.startswith(' data-status="expired"') and "archive deleted" in row
    assert "/download" not in row
    assert state.jobs.expire_due(now=utcnow() + LATER) == []  # nothing left to do
    # someone else's expired job is still not found, not gone
    assert clients("curator").get(f"/api/v1/jobs/{gone['id']}/download").status_code == 404


def test_a_job_past_its_retention_is_expired_everywhere_before_the_sweep(
        demo: Demo, clients: Callable[[str], TestClient]) -> None:
    """A second server process on the catalog with a retention of one second: the job is
    reported expired at once, and the archive stays until the sweep's grace has passed."""
    short = make_app(demo.ws_path, export_retention_days=1 / 86400)
    with TestClient(short) as raw:
        from tests.integration.server.conftest import sign_in

        c = sign_in(raw, "data_engineer")
        job = _export(c, demo, format="coco")
        time.sleep(1.2)
        assert c.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "expired"
        assert c.get(f"/api/v1/jobs/{job['id']}/download").status_code == 410
        assert _blob_path(demo, job["result"]["archive"]).exists()  # not before the grace
        assert job["id"] not in short.state.vf.jobs.expire_due()
        assert job["id"] in short.state.vf.jobs.expire_due(now=utcnow() + timedelta(hours=1))
        assert not _blob_path(demo, job["result"]["archive"]).exists()
    # the default server keeps it for 7 days: still expired there (recorded), not revived
    assert clients("data_engineer").get(f"/api/v1/jobs/{job['id']}").json()["status"] == "expired"


def test_expiry_deletes_the_archive_from_an_s3_store(tmp_path: Path) -> None:
    """With the object store on S3: the archive is deleted from the bucket and from this
    host's cached copy, and the download then answers 410."""
    from tests.integration.server.conftest import PASSWORD
    from viewfinder.governance import users
    from viewfinder.services.ingest import import_source
    from viewfinder.storage.blobs import blob_relpath
    from viewfinder.synthetic import make_coco

    made = make_workspace(tmp_path, "sqlite-s3")
    made.close()
    with open_workspace(made.path) as ws:
        import_source(ws, make_coco(tmp_path / "src", n_images=3, seed=1), "tiny", format="coco",
                      author="ci")
        users.bootstrap_admin(ws, "boss", PASSWORD, org="acme")
    app = make_app(made.path)
    with TestClient(app) as c:
        r = c.post("/api/v1/auth/login", json={"username": "boss", "password": PASSWORD})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        r = c.post("/api/v1/datasets/tiny/exports", json={"ref": "main", "format": "coco"})
        job = _wait(c, r.json()["id"])
        assert job["status"] == "succeeded", job
        got = c.get(f"/api/v1/jobs/{job['id']}/download")
        assert got.status_code == 200 and len(_images(got.content)) == 3
        blobs = app.state.vf.ws.blobs
        digest = job["result"]["archive"]
        cached = blobs.cache_dir / blob_relpath(digest)
        assert not blobs.is_local and blobs.exists(digest) and cached.exists()
        assert app.state.vf.jobs.expire_due(now=utcnow() + LATER) == [job["id"]]
        assert not blobs.exists(digest) and not cached.exists()
        assert c.get(f"/api/v1/jobs/{job['id']}/download").status_code == 410


@pytest.fixture(params=["sqlite-local", "postgres-local"])
def catalog_ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """An empty workspace with a SQLite or a PostgreSQL catalog."""
    made = make_workspace(tmp_path, request.param)
    made.close()
    with open_workspace(made.path) as ws:
        yield ws


def test_processes_sweeping_one_catalog_release_each_result_once(catalog_ws: Workspace) -> None:
    """Four job runners (as four server processes) sweep the same due jobs at once: each
    job's result is released by exactly one of them, and every job ends expired."""
    released: list[str] = []
    guard = threading.Lock()

    def release(job: Any) -> None:
        with guard:
            released.append(job.id)
        time.sleep(0.01)  # a deletion takes a moment: the others are sweeping meanwhile

    keep = Retention(keep=timedelta(days=7), release=release)
    runners = [JobRunner(catalog_ws.catalog, retention={"export": keep}) for _ in range(4)]
    try:
        def work(_p: Progress) -> dict[str, Any]:
            return {"archive": "0" * 64}

        ids = [runners[i % 4].submit("export", owner="u", params={}, work=work).id for i in range(12)]
        deadline = time.monotonic() + 60
        while any(runners[0].get(i).status is not JobStatus.SUCCEEDED for i in ids):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        other = runners[0].submit("report", owner="u", params={}, work=work).id  # kept forever
        results: list[list[str]] = [[] for _ in runners]
        start = threading.Barrier(len(runners))

        def sweep(k: int) -> None:
            start.wait()
            results[k] = runners[k].expire_due(now=utcnow() + LATER)

        threads = [threading.Thread(target=sweep, args=(k,)) for k in range(len(runners))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(released) == sorted(ids)  # each once
        assert sorted(i for r in results for i in r) == sorted(ids)
        assert {runners[1].get(i).status for i in ids} == {JobStatus.EXPIRED}
        assert runners[2].get(other).status is JobStatus.SUCCEEDED
    finally:
        for r in runners:
            r.shutdown()


def test_retention_comes_from_the_settings_or_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pydantic import ValidationError

    from viewfinder.server.app import RETENTION_ENV, Settings

    monkeypatch.delenv(RETENTION_ENV, raising=False)
    assert Settings(workspace=tmp_path).export_retention_days == 7
    monkeypatch.setenv(RETENTION_ENV, "2.5")
    settings = Settings(workspace=tmp_path)
    assert settings.export_retention_days == 2.5
    assert Settings.model_validate_json(settings.model_dump_json()).export_retention_days == 2.5
    assert Settings(workspace=tmp_path, export_retention_days=1).export_retention_days == 1
    monkeypatch.setenv(RETENTION_ENV, "-1")
    with pytest.raises(ValidationError):
        Settings(workspace=tmp_path)


# -- API docs ----------------------------------------------------------------------------

class _Refs(Page):
    """Every URL a page refers to (src, href, action)."""

    def __init__(self, html: str) -> None:
        self.urls: list[str] = []
        super().__init__(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        super().handle_starttag(tag, attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href", "action", "data-openapi") and v]


def test_api_docs_load_from_this_server_only(app: Any, clients: Callable[[str], TestClient]) -> None:
    anonymous = TestClient(app)
    r = anonymous.get("/api/v1/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    refs = _Refs(r.text)
    assert refs.urls and not refs.inline_code
    for url in refs.urls:
        assert url.startswith("/") and not url.startswith("//"), url  # nothing from elsewhere
        asset = anonymous.get(url)
        assert asset.status_code == 200 and asset.content, url
    assert "http://" not in r.text and "https://" not in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "http" not in csp
    kinds = {u: anonymous.get(u).headers["content-type"] for u in refs.urls}
    assert any(k.startswith("text/css") for k in kinds.values())
    assert sum(k.startswith("text/javascript") for k in kinds.values()) == 2
    bundle = anonymous.get("/api/v1/docs/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.content and b"OAS31" in bundle.content  # Swagger UI 5
    assert anonymous.get("/api/v1/docs/swagger-ui-bundle.js",
                         headers={"If-None-Match": bundle.headers["etag"]}).status_code == 304
    assert anonymous.get("/api/v1/docs/index.html").status_code == 404  # listed files only
    assert anonymous.get("/api/v1/openapi.json").json()["paths"]["/api/v1/jobs"]


def test_api_docs_render_in_a_browser_that_cannot_reach_the_internet(browser: Any, base_url: str) -> None:  # noqa: F811
    """Chromium with every request off this server refused: Swagger UI still renders the
    API (title, the jobs routes), with no failed asset, script error or CSP violation."""
    context = browser.new_context(base_url=base_url)
    elsewhere: list[str] = []

    def only_here(route: Any) -> None:
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_here)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("response", lambda r: problems.append(f"{r.status} for {r.url}") if r.status >= 400 else None)
    page.goto("/api/v1/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
    assert "Viewfinder" in page.inner_text(".swagger-ui .info .title")
    page.click(".opblock-summary-path[data-path='/api/v1/jobs']")  # open it: parameters, examples
    page.wait_for_selector(".opblock.is-open .parameters-container", timeout=15_000)
    page.wait_for_selector(".opblock.is-open .responses-wrapper .highlight-code", timeout=15_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "20-api-docs-offline.png"), full_page=False)
    assert not elsewhere, elsewhere
    assert not problems, problems
    context.close()
