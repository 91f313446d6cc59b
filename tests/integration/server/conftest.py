"""Server fixtures: a workspace with a small demo dataset and one user per role, and
signed-in ``TestClient``s for each of them.

The dataset ``street`` (12 real JPEGs with boxes) belongs to project ``streets`` of
organization ``acme``; every sample has ``metadata.region`` ``APAC`` or ``EMEA`` (even and
odd image numbers), and one sample's metadata and one class name carry an XSS payload.
Roles are bound at organization scope; ``curator_apac`` is a curator narrowed to the slice
``metadata.region == "APAC"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_workspace
from viewfinder.storage.workspace import Workspace, open_workspace

PASSWORD = "correct horse battery staple"
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
CLASSES = ("car", "person", "bicycle", XSS)
SLICE = 'metadata.region == "APAC"'

ROLES = ("head_of_dataops", "labeling_manager", "data_engineer", "curator", "labeler", "viewer")
SLICED = "curator_apac"
ANON = "anonymous"
PRINCIPALS = (*ROLES, SLICED, ANON)
"""Everyone the authorization matrix tries: one user per role, the sliced curator (named
after their binding) and an anonymous client."""


def username(who: str) -> str:
    return who.replace("_", "-")


@dataclass
class Demo:
    """What the tests need to know about the demo workspace."""

    ws_path: Path
    dataset: str
    apac_sample: str      # a sample in the sliced curator's slice
    emea_sample: str      # one outside it
    sample_ids: list[str]


def build_demo(ws: Workspace, src_root: Path) -> Demo:
    """Import the demo dataset into ``ws`` and create the org, project and users."""
    from viewfinder.governance import orgs, roles, users
    from viewfinder.governance.principal import SYSTEM
    from viewfinder.services import look
    from viewfinder.services.ingest import import_source
    from viewfinder.synthetic import make_coco

    src = make_coco(src_root / "coco", n_images=12, classes=CLASSES, boxes=(2, 4), seed=3)
    meta = {f"{i:06d}.jpg": {"region": "APAC" if i % 2 == 0 else "EMEA", "camera": f"cam-{i % 3}"}
            for i in range(12)}
    meta["000004.jpg"]["note"] = XSS
    (src_root / "meta.json").write_text(json.dumps(meta))
    import_source(ws, src, "street", format="coco", metadata=src_root / "meta.json",
                  message="first batch", author="system")
    users.bootstrap_admin(ws, username("head_of_dataops"), PASSWORD, org="acme")
    orgs.create_project(ws, SYSTEM, "streets", org="acme", dataset_names=["street"])
    for role in ROLES[1:]:
        users.create_user(ws, SYSTEM, username(role), PASSWORD)
        roles.grant(ws, SYSTEM, username(role), role, scope_kind="org", scope_name="acme")
    users.create_user(ws, SYSTEM, username(SLICED), PASSWORD)
    roles.grant(ws, SYSTEM, username(SLICED), "curator", scope_kind="org", scope_name="acme",
                slice=SLICE)
    rows = look.samples_page(ws, "street", None, limit=100, with_labels=False)
    region = {r["id"]: r["metadata"]["region"] for r in rows}
    return Demo(ws_path=ws.path, dataset="street",
                apac_sample=next(i for i, g in region.items() if g == "APAC"),
                emea_sample=next(i for i, g in region.items() if g == "EMEA"),
                sample_ids=sorted(region))


def make_app(ws_path: Path, **settings: object):
    from viewfinder.server.app import Settings, create_app

    return create_app(Settings(workspace=ws_path, **settings))  # type: ignore[arg-type]


def sign_in(client: TestClient, who: str) -> TestClient:
    """Sign ``client`` in as ``who`` (a role or :data:`SLICED`) and send the CSRF token
    with every request; anonymous clients are left as they are."""
    if who == ANON:
        return client
    r = client.post("/api/v1/auth/login", json={"username": username(who), "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo workspace (SQLite + local store), built once per test module."""
    root = tmp_path_factory.mktemp("server")
    with open_workspace(make_workspace(root, "sqlite-local").path) as ws:
        yield build_demo(ws, root)


@pytest.fixture(scope="module")
def app(demo: Demo):
    return make_app(demo.ws_path)


@pytest.fixture(scope="module")
def clients(app) -> Iterator[Callable[[str], TestClient]]:
    """``clients(who)``: a signed-in client for a role, the sliced curator or anonymous
    (one per principal, made on first use and reused by the module)."""
    made: dict[str, TestClient] = {}
    with TestClient(app) as base:  # runs the app's startup and shutdown once
        def get(who: str) -> TestClient:
            if who not in made:
                made[who] = sign_in(TestClient(app, raise_server_exceptions=False), who)
            return made[who]

        yield get
        del base
    for c in made.values():
        c.close()
