"""The web UI's server-rendered pages through ``TestClient``: what users type never runs
as markup, forms need the session's CSRF token, every page carries a strict
Content-Security-Policy and holds no inline code, and each role sees what it should (a
labeler an empty task queue, a sliced curator only its slice)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.integration.server.conftest import PASSWORD, XSS, Demo, username

pytestmark = pytest.mark.integration

RAW_XSS = ("<script>alert(", "<img src=x onerror", "</script><img")


def ui_client(app: Any, who: str) -> TestClient:
    """A client signed in through the UI's own form (session and CSRF cookies), which
    does not follow redirects. ``who``: a role of the demo, or a user name."""
    c = TestClient(app, raise_server_exceptions=True, follow_redirects=False)
    r = c.post("/login", data={"username": username(who), "password": PASSWORD, "next": "/"})
    assert r.status_code == 303, r.text
    return c


@pytest.fixture(scope="module")
def ui(app: Any, clients: Callable[[str], TestClient]) -> Callable[[str], TestClient]:
    """``ui(who)``: a UI-signed-in client per role (``clients`` keeps the app started)."""
    made: dict[str, TestClient] = {}

    def get(who: str) -> TestClient:
        if who not in made:
            made[who] = ui_client(app, who)
        return made[who]

    return get


class Page(HTMLParser):
    """What a page is made of: its scripts, inline handlers and style attributes, forms
    with their CSRF fields, and its JSON data blocks."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_code: list[str] = []
        self.forms: list[dict[str, Any]] = []
        self.data: dict[str, Any] = {}
        self._script: dict[str, str | None] | None = None
        self._text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.inline_code.append(f"<{tag} {name}=...>")
            if name in ("href", "src", "action") and (a[name] or "").lower().startswith("javascript:"):
                self.inline_code.append(f"<{tag} {name}=javascript:...>")
        if tag == "script":
            self._script, self._text = a, []
            self.scripts.append(a)
        if tag == "form":
            self.forms.append({"attrs": a, "fields": {}})
        if tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value")

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            text = "".join(self._text)
            if self._script.get("type") == "application/json":
                self.data[self._script.get("id") or ""] = json.loads(text)
            elif text.strip():
                self.inline_code.append(f"inline script: {text[:60]!r}")
            self._script = None


def assert_safe(html: str) -> Page:
    """No user text became markup, no inline code, scripts only from /static."""
    for raw in RAW_XSS:
        assert raw not in html, f"unescaped {raw!r} in the page"
    page = Page(html)
    assert not page.inline_code, page.inline_code
    for s in page.scripts:
        module = s.get("type") == "module" and (s.get("src") or "").startswith("/static/")
        data = s.get("type") == "application/json" and not s.get("src")
        assert module or data, s
    return page


def test_xss_in_class_names_metadata_and_user_names_is_shown_as_text(
        demo: Demo, ui: Callable[[str], TestClient], clients: Callable[[str], TestClient]) -> None:
    c = ui("head_of_dataops")
    r = c.get(f"/datasets/{demo.dataset}")
    assert r.status_code == 200
    page = assert_safe(r.text)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in r.text  # the class, as text
    assert XSS in page.data["vf-data"]["class_index"]  # and intact for the overlay colors

    # the sample whose metadata carries the payload
    rows = clients("head_of_dataops").get(f"/api/v1/datasets/{demo.dataset}/samples",
                                          params={"filter": 'key == "train/000004.jpg"'}).json()
    sid = rows["samples"][0]["id"]
    assert rows["samples"][0]["metadata"]["note"] == XSS
    r = c.get(f"/datasets/{demo.dataset}/samples/{sid}")
    assert r.status_code == 200
    assert_safe(r.text)
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
    assert f'<td class="mono">{escaped}</td>' in r.text  # the metadata value, as text

    # a sign-in attempt under a hostile user name reaches the audit log; shown as text
    TestClient(c.app).post("/login", data={"username": XSS, "password": "whatever it is"})
    r = c.get("/admin/audit", params={"action": "auth.login_failed"})
    assert r.status_code == 200 and "alert(" in r.text
    assert_safe(r.text)


def test_hostile_filter_and_dataset_names_are_echoed_as_text(
        demo: Demo, ui: Callable[[str], TestClient]) -> None:
    c = ui("curator")
    hostile = 'label.class == "x" and </script><script>alert(1)</script>'
    r = c.get(f"/datasets/{demo.dataset}", params={"filter": hostile})
    assert r.status_code == 400  # a syntax error, shown in place
    page = assert_safe(r.text)
    form = next(f for f in page.forms if f["attrs"].get("id") == "filter-form")
    assert form["fields"]["filter"] == hostile  # the input keeps what was typed
    caret = re.search(r'<span class="caret">( *)\^</span>', r.text)
    assert caret is not None
    column = len(caret.group(1)) + 1
    err = c.get(f"/api/v1/datasets/{demo.dataset}/samples", params={"filter": hostile})
    assert err.status_code == 400 and err.json()["error"]["column"] == column

    r = c.get("/datasets/" + quote("<img src=x onerror=alert(1)>", safe=""))
    assert r.status_code == 404
    assert_safe(r.text)
    assert "&lt;img src=x onerror=alert(1)&gt;" in r.text


def test_token_names_are_escaped_on_the_admin_pages(ui: Callable[[str], TestClient]) -> None:
    c = ui("head_of_dataops")
    csrf = Page(c.get("/admin/tokens").text).forms[-1]["fields"]["csrf_token"]
    r = c.post("/admin/tokens", data={"csrf_token": csrf, "username": username("viewer"),
                                      "name": XSS, "scopes": "read", "expires_in_days": "7"})
    assert r.status_code == 200
    page = assert_safe(r.text)
    assert re.search(r"vf_[0-9a-f]{8}_\S+", r.text)  # the new secret, shown once
    assert "&lt;script&gt;alert(" in r.text
    assert page.forms
    again = c.get("/admin/tokens").text
    assert re.search(r'id="new-token"', again) is None  # never shown again


def test_forms_need_the_csrf_token(ui: Callable[[str], TestClient],
                                   clients: Callable[[str], TestClient]) -> None:
    c = ui("head_of_dataops")
    page = assert_safe(c.get("/admin/users").text)
    form = next(f for f in page.forms if f["attrs"].get("action") == "/admin/users")
    token = form["fields"]["csrf_token"]
    assert token and len(token) >= 20

    r = c.post("/admin/users", data={"username": "mallory-made", "password": PASSWORD})
    assert r.status_code == 403
    r = c.post("/admin/users", data={"username": "mallory-made", "password": PASSWORD,
                                     "csrf_token": "forged" + token[6:]})
    assert r.status_code == 403
    users = clients("head_of_dataops").get("/api/v1/admin/users").json()
    assert "mallory-made" not in json.dumps(users)

    r = c.post("/admin/users", data={"username": "carol", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/admin/users"
    shown = c.get("/admin/users")
    assert "User carol created." in shown.text and 'data-user="carol"' in shown.text
    # the flash message is shown once
    assert "User carol created." not in c.get("/admin/users").text

    # every form on the admin pages carries the token
    for path in ("/admin/users", "/admin/bindings", "/admin/tokens"):
        for f in Page(c.get(path).text).forms:
            if f["attrs"].get("method") == "post":
                assert f["fields"].get("csrf_token") == token, (path, f["attrs"])


def test_every_page_has_a_strict_csp_and_no_inline_code(demo: Demo, ui: Callable[[str], TestClient]) -> None:
    c = ui("head_of_dataops")
    anonymous = TestClient(c.app, follow_redirects=False)
    pages = [(anonymous, "/"), (anonymous, "/login"), (c, "/"), (c, f"/datasets/{demo.dataset}"),
             (c, f"/datasets/{demo.dataset}/samples/{demo.apac_sample}"),
             (c, f"/datasets/{demo.dataset}/versions"), (c, f"/datasets/{demo.dataset}/diff"),
             (c, f"/datasets/{demo.dataset}/quality"), (c, "/datasets/nope"),
             (c, "/admin/users"), (c, "/admin/teams"), (c, "/admin/bindings"),
             (c, "/admin/tokens"), (c, "/admin/audit")]
    for client, path in pages:
        r = client.get(path)
        assert r.status_code in (200, 401, 404), (path, r.status_code)
        csp = r.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "default-src 'none'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
        assert "frame-ancestors 'none'" in csp, path
        assert r.headers["cache-control"] == "no-store", path
        page = assert_safe(r.text)
        sources = {s["src"] for s in page.scripts if s.get("src")}
        for src in sources:
            js = client.get(src)
            assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript"), src
    assert anonymous.get("/static/app.css").headers["content-type"].startswith("text/css")
    assert anonymous.get("/static/../ui/common.py").status_code == 404


def test_sign_in_form(app: Any, clients: Callable[[str], TestClient]) -> None:
    c = TestClient(app, follow_redirects=False)
    r = c.get("/admin/audit")
    assert r.status_code == 401 and 'name="next" value="/admin/audit"' in r.text

    r = c.post("/login", data={"username": username("viewer"), "password": "wrong password!"})
    assert r.status_code == 401 and "Wrong user name or password." in r.text
    assert "vf_session" not in c.cookies

    r = c.post("/login", data={"username": username("viewer"), "password": PASSWORD},
               headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "vf_session" not in c.cookies

    r = c.post("/login", data={"username": username("viewer"), "password": PASSWORD,
                               "next": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert {"vf_session", "vf_csrf"} <= set(c.cookies.keys())
    r = c.get("/")
    assert r.status_code == 200 and f"<span class=\"who\">{username('viewer')}</span>" in r.text
    assert 'href="/admin/users"' not in r.text  # no Admin link for a viewer
    assert c.get("/admin/users").status_code == 403


def test_labeler_sees_an_empty_task_queue_not_the_datasets(
        demo: Demo, ui: Callable[[str], TestClient]) -> None:
    c = ui("labeler")
    r = c.get("/")
    assert r.status_code == 200
    assert "No tasks assigned to you." in r.text
    assert demo.dataset not in r.text
    assert c.get(f"/datasets/{demo.dataset}").status_code == 404
    assert c.get(f"/datasets/{demo.dataset}/samples/{demo.apac_sample}").status_code == 404


def test_sliced_curator_sees_only_apac_samples(demo: Demo, ui: Callable[[str], TestClient]) -> None:
    c = ui("curator_apac")
    r = c.get(f"/datasets/{demo.dataset}")
    assert r.status_code == 200
    data = Page(r.text).data["vf-data"]
    rows: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:  # the requests grid.js makes, with what the page gave it
        page = c.get(f"/api/v1/datasets/{data['dataset']}/samples",
                     params={"ref": data["version"], "limit": data["page_size"], "offset": offset}).json()
        rows += page["samples"]
        offset = page["next_offset"]
    assert rows and {s["metadata"]["region"] for s in rows} == {"APAC"}
    assert data["total"] == len(rows) < len(demo.sample_ids)
    assert f"{len(rows)} samples" in r.text
    # the class counts in the sidebar are the slice's
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(
        r'data-class="(car|person|bicycle)">.*?<span class="count">(\d+)</span>', r.text)}
    per_class: dict[str, int] = {}
    for s in rows:
        for lab in s["labels"]:
            per_class[lab["class_name"]] = per_class.get(lab["class_name"], 0) + 1
    assert counts and all(per_class.get(k, 0) == v for k, v in counts.items())
    assert c.get(f"/datasets/{demo.dataset}/samples/{demo.emea_sample}").status_code == 404
    assert c.get(f"/datasets/{demo.dataset}/samples/{demo.apac_sample}").status_code == 200
    # the history shows no whole-dataset counts; the diff counts and shows the slice only
    assert '<td class="num">—</td>' in c.get(f"/datasets/{demo.dataset}/versions").text
    diff = c.get(f"/datasets/{demo.dataset}/diff")  # main against its parent (the empty start)
    assert f'<span class="big added">+{len(rows)}</span>' in diff.text
    shown = set(re.findall(r'<div class="pair" data-sample="([0-9a-f]+)"', diff.text))
    assert shown == {s["id"] for s in rows}


def test_audit_export_is_json_lines(ui: Callable[[str], TestClient]) -> None:
    c = ui("head_of_dataops")
    r = c.get("/admin/audit.jsonl", params={"action": "auth.login"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in r.headers["content-disposition"]
    events = [json.loads(line) for line in r.text.splitlines()]
    assert events and {e["action"] for e in events} == {"auth.login"}
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    r = c.get("/admin/audit", params={"since": "not a date"})
    assert r.status_code == 200 and "since must be a date" in r.text


def test_quality_page_before_and_after_checks_and_a_scan(demo: Demo, ui: Callable[[str], TestClient]) -> None:
    from viewfinder.services import checks, scan
    from viewfinder.storage.workspace import open_workspace

    c = ui("head_of_dataops")
    path = f"/datasets/{demo.dataset}/quality"
    before = c.get(path)
    assert before.status_code == 200
    assert "No check has run on this version." in before.text and 'id="report"' not in before.text

    with open_workspace(demo.ws_path) as ws:
        report = checks.run_checks(ws, demo.dataset, pixels=False, author="ci")
        found = scan.scan(ws, demo.dataset, ["overlapping_annotations", "image_problems"],
                          params={"overlapping_annotations": {"iou_threshold": 0.01}})
        rows = scan.findings(ws, demo.dataset)
    assert rows, "the demo boxes overlap: the scan should find something to show"
    after = c.get(path)
    assert_safe(after.text)
    assert "No check has run" not in after.text
    assert ("badge pass\">passed" if report.passed else "badge fail\">failed") in after.text
    for outcome in report.outcomes:
        assert f"<td>{outcome.name}</td>" in after.text
    assert after.text.count('<tr><td>') >= len(rows[:500]) and found.counts

    # the sample page lists that sample's findings
    first = rows[0]
    detail = c.get(f"/datasets/{demo.dataset}/samples/{first['sample_id']}")
    assert 'id="findings"' in detail.text and f"<td>{first['kind']}</td>" in detail.text

    # a sliced curator: the verdict, no per-check details, findings of its samples only
    sliced = ui("curator_apac").get(path).text
    assert "Details of each check are not shown" in sliced
    keys = set(re.findall(r'samples/[0-9a-f]+\?ref=[0-9a-f]+">([^<]+)</a>', sliced))
    apac_keys = {r["key"] for r in rows if int(r["key"][-8:-4]) % 2 == 0}
    assert keys and keys <= apac_keys


def test_admin_creates_a_team_and_a_project_and_deactivates_a_user(
        app: Any, ui: Callable[[str], TestClient]) -> None:
    c = ui("head_of_dataops")
    page = Page(c.get("/admin/teams").text)
    token = next(f for f in page.forms if f["attrs"].get("id") == "team-form")["fields"]["csrf_token"]

    r = c.post("/admin/teams", data={"csrf_token": token, "org": "acme", "name": "night vision"})
    assert r.status_code == 303
    r = c.post("/admin/projects", data={"csrf_token": token, "name": "night-pedestrians", "org": "acme",
                                        "team": "night vision", "task_type": "detection", "datasets": ""})
    assert r.status_code == 303
    shown = c.get("/admin/teams").text
    assert "Project night-pedestrians created." in shown
    assert "<td>night vision</td>" in shown and "<td>night-pedestrians</td>" in shown
    r = c.post("/admin/teams", data={"csrf_token": token, "org": "no-such-org", "name": "x"})
    assert "no-such-org" in c.get(r.headers["location"]).text  # the error, shown once

    c.post("/admin/users", data={"csrf_token": token, "username": "dave", "password": PASSWORD})
    assert ui_client(app, "dave").get("/").status_code == 200
    r = c.post("/admin/users/dave/deactivate", data={"csrf_token": token})
    assert r.status_code == 303
    assert "User dave deactivated." in c.get("/admin/users").text
    gone = TestClient(app, follow_redirects=False).post(
        "/login", data={"username": "dave", "password": PASSWORD})
    assert gone.status_code == 401
    # one's own account cannot be deactivated from the page
    r = c.post(f"/admin/users/{username('head_of_dataops')}/deactivate", data={"csrf_token": token})
    assert "cannot deactivate your own account" in c.get(r.headers["location"]).text
