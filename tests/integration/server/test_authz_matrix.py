"""The authorization matrix: every route of the app × every role, the sliced curator and an
anonymous client, against the expectations in ``authz_rules``.

The routes come from the app's own route table, so a new route without a rule fails here
until someone decides who may call it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount

from tests.integration.server.authz_rules import RULES, Rule
from tests.integration.server.conftest import (
    ANON,
    PASSWORD,
    PRINCIPALS,
    Demo,
    sign_in,
    username,
)

_counter = itertools.count()


def _flat(routes: list[Any]) -> list[Any]:
    """Routes, with included routers opened (FastAPI keeps them as lazy sub-routers)."""
    out = []
    for r in routes:
        contexts = getattr(r, "effective_route_contexts", None)
        out.extend(contexts() if contexts is not None else [r])
    return out


def app_routes(app: Any) -> list[tuple[str, str]]:
    """``(method, path template)`` of every HTTP route the app serves (HEAD is GET's twin;
    mounts such as static files are not routes with handlers of ours)."""
    out = set()
    for r in _flat(app.routes):
        if isinstance(r, Mount):
            continue
        methods, path = getattr(r, "methods", None), getattr(r, "path", None)
        if methods and path:
            out.update((m, path) for m in methods if m != "HEAD")
    return sorted(out)


def test_every_route_has_a_rule(app: Any) -> None:
    missing = [rp for rp in app_routes(app) if rp not in RULES]
    assert not missing, f"routes without an authorization rule in authz_rules.py: {missing}"
    stale = [rp for rp in RULES if rp not in app_routes(app)]
    assert not stale, f"rules for routes the app does not have: {stale}"


@pytest.fixture(scope="module")
def jobs(demo: Demo, clients: Callable[[str], TestClient]) -> dict[str, str]:
    """A finished export job per principal that may export (the head of DataOps' for the rest)."""
    out: dict[str, str] = {}
    for who in PRINCIPALS:
        if who == ANON:
            continue
        r = clients(who).post(f"/api/v1/datasets/{demo.dataset}/exports",
                              json={"ref": "main", "format": "coco"})
        if r.status_code == 202:
            out[who] = r.json()["id"]
    for who, job_id in out.items():
        assert _wait(clients(who), job_id) == "succeeded"
    admin_job = out["head_of_dataops"]
    return {who: out.get(who, admin_job) for who in PRINCIPALS}


def _wait(client: TestClient, job_id: str) -> str:
    """Poll a job until it finishes; its final status."""
    deadline = time.monotonic() + 120
    while (status := client.get(f"/api/v1/jobs/{job_id}").json()["status"]) not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, f"export job {job_id} did not finish"
        time.sleep(0.1)
    return status


def _request(method: str, path: str, who: str, demo: Demo, jobs: dict[str, str],
             clients: Callable[[str], TestClient]) -> tuple[str, dict[str, Any]]:
    """The concrete URL and request options for calling ``path`` as ``who``."""
    from viewfinder.governance import roles
    from viewfinder.governance.principal import SYSTEM
    from viewfinder.storage.workspace import open_workspace

    url = (path.replace("{name}", demo.dataset).replace("{sample_id}", demo.apac_sample)
           .replace("{job_id}", jobs[who] if who != ANON else jobs["head_of_dataops"]))
    kw: dict[str, Any] = {}
    n = next(_counter)
    if "{token_id}" in url:  # the caller's own token (the admin's for anonymous)
        owner = who if who != ANON else "head_of_dataops"
        r = clients(owner).post("/api/v1/tokens", json={"name": f"matrix-{n}"})
        assert r.status_code == 201, r.text
        url = url.replace("{token_id}", r.json()["id"])
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/v1/auth/login"): {"json": {"username": username("viewer"), "password": PASSWORD}},
        ("POST", "/api/v1/datasets/{name}/samples/tags"): {
            "json": {"ref": "main", "sample_ids": [demo.apac_sample], "add": [f"seen-{n}"]}},
        ("POST", "/api/v1/datasets/{name}/exports"): {"json": {"ref": "main", "format": "yolo"}},
        ("POST", "/api/v1/admin/users"): {"json": {"username": f"new-user-{n}", "password": PASSWORD}},
        ("POST", "/api/v1/admin/role-bindings"): {
            "json": {"username": username("viewer"), "role": "viewer", "scope": "org:acme"}},
        ("POST", "/api/v1/admin/role-bindings/revoke"): {
            "json": {"username": f"matrix-{n}", "role": "viewer", "scope": "org:acme"}},
        ("POST", "/api/v1/tokens"): {"json": {"name": f"matrix-{n}"}},
        ("GET", "/api/v1/datasets/{name}/diff"): {"params": {"a": "main", "b": "main"}},
    }
    kw = bodies.get((method, path), {})
    if path == "/api/v1/admin/role-bindings/revoke":  # a binding to revoke
        from viewfinder.governance import users

        with open_workspace(demo.ws_path) as ws:
            users.create_user(ws, SYSTEM, f"matrix-{n}", PASSWORD)
            roles.grant(ws, SYSTEM, f"matrix-{n}", "viewer", scope_kind="org", scope_name="acme")
    return url, kw


def _client_for(who: str, method: str, path: str, app: Any,
                clients: Callable[[str], TestClient]) -> TestClient:
    if path in ("/api/v1/auth/login", "/api/v1/auth/logout"):  # would replace or end the
        return sign_in(TestClient(app, raise_server_exceptions=False), who)  # shared session
    return clients(who)


@pytest.mark.parametrize("who", PRINCIPALS)
def test_matrix(who: str, app: Any, demo: Demo, jobs: dict[str, str],
                clients: Callable[[str], TestClient]) -> None:
    failures = []
    for method, path in app_routes(app):
        rule: Rule = RULES[(method, path)]
        url, kw = _request(method, path, who, demo, jobs, clients)
        r = _client_for(who, method, path, app, clients).request(method, url, **kw)
        if r.status_code == 202 and path.endswith("/exports"):
            # let the job finish: on SQLite, a write committed by the job thread between
            # another transaction's read and write fails that transaction ("database is
            # locked", no busy wait); that race is not what this test is about
            _wait(clients(who), r.json()["id"])
        allowed = who in rule.allowed
        if allowed:
            ok = 200 <= r.status_code < 300
            want = "2xx"
        elif who == ANON:
            ok = r.status_code == 401 if path.startswith("/api/") else r.status_code in (303, 401)
            want = "401" if path.startswith("/api/") else "303/401"
        else:
            ok = r.status_code in rule.deny
            want = "/".join(map(str, sorted(rule.deny)))
        if not ok:
            failures.append(f"{method} {path}: got {r.status_code}, want {want}: {r.text[:200]}")
    assert not failures, f"{who}:\n" + "\n".join(failures)


def test_sliced_curator_cannot_reach_outside_the_slice(demo: Demo,
                                                        clients: Callable[[str], TestClient]) -> None:
    """Outside the slice a sample does not exist for the sliced curator: detail, image,
    thumbnail and tagging all answer 404, and pages hold only APAC samples."""
    c = clients("curator_apac")
    base = f"/api/v1/datasets/{demo.dataset}/samples/{demo.emea_sample}"
    for url in (base, f"{base}/image", f"{base}/thumbnail"):
        assert c.get(url).status_code == 404, url
        assert clients("curator").get(url).status_code == 200, url
    r = c.post(f"/api/v1/datasets/{demo.dataset}/samples/tags",
               json={"ref": "main", "sample_ids": [demo.emea_sample], "add": ["x"]})
    assert r.status_code == 404
    page = c.get(f"/api/v1/datasets/{demo.dataset}/samples", params={"limit": 100}).json()
    assert page["samples"] and {s["metadata"]["region"] for s in page["samples"]} == {"APAC"}
    full = clients("curator").get(f"/api/v1/datasets/{demo.dataset}/samples", params={"limit": 100}).json()
    assert len(full["samples"]) == len(demo.sample_ids) > len(page["samples"])


def test_someone_elses_job_and_token_are_not_found(demo: Demo, jobs: dict[str, str],
                                                    clients: Callable[[str], TestClient]) -> None:
    theirs = jobs["data_engineer"]
    assert clients("curator").get(f"/api/v1/jobs/{theirs}").status_code == 404
    assert clients("curator").get(f"/api/v1/jobs/{theirs}/download").status_code == 404
    token = clients("viewer").post("/api/v1/tokens", json={"name": "mine"}).json()["id"]
    assert clients("curator").delete(f"/api/v1/tokens/{token}").status_code == 404


def test_role_bindings_list_only_ones_own_unless_admin(clients: Callable[[str], TestClient]) -> None:
    mine = clients("viewer").get("/api/v1/admin/role-bindings").json()
    assert {b["username"] for b in mine} == {username("viewer")}
    everyone = clients("head_of_dataops").get("/api/v1/admin/role-bindings").json()
    assert {username(w) for w in PRINCIPALS if w != ANON} <= {b["username"] for b in everyone}
    r = clients("viewer").get("/api/v1/admin/role-bindings", params={"username": username("curator")})
    assert r.status_code == 403
