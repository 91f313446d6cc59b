"""Builders for the governance tests: a workspace with an organization, two ML teams,
projects owning datasets whose samples carry ``metadata.region``, and users."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import make_workspace
from viewfinder.governance import orgs, roles, users
from viewfinder.governance.principal import SYSTEM, Principal
from viewfinder.services import ingest
from viewfinder.storage.workspace import Workspace
from viewfinder.synthetic import make_coco

PASSWORD = "correct horse battery staple"


def regions(n: int) -> dict[str, str]:
    """File name → region: even images APAC, odd images EMEA."""
    return {f"{i:06d}.jpg": ("APAC" if i % 2 == 0 else "EMEA") for i in range(n)}


def import_with_regions(ws: Workspace, tmp_path: Path, name: str, n: int = 12, seed: int = 7) -> None:
    src = make_coco(tmp_path / f"src_{name}", n_images=n, seed=seed)
    meta = tmp_path / f"meta_{name}.json"
    meta.write_text(json.dumps({f: {"region": r} for f, r in regions(n).items()}))
    ingest.import_source(ws, src, name, format="coco", metadata=meta)


def login_as(ws: Workspace, username: str) -> Principal:
    return users.authenticate(ws, username, PASSWORD)


@dataclass
class Org:
    ws: Workspace
    tmp: Path

    def user(self, username: str, role: str | None = None, scope: tuple[str, str] | None = None,
             slice: str | None = None) -> Principal:
        """A new user (password :data:`PASSWORD`), optionally with one binding; logged in."""
        users.create_user(self.ws, SYSTEM, username, PASSWORD)
        if role is not None:
            assert scope is not None
            roles.grant(self.ws, SYSTEM, username, role, scope_kind=scope[0], scope_name=scope[1],
                        slice=slice)
        return login_as(self.ws, username)


@pytest.fixture(params=["sqlite-local", "postgres-local"])
def gov(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Org]:
    """On SQLite and on PostgreSQL: organization ``acme`` with teams ``vision-eu`` and ``vision-apac``; project
    ``peds-eu`` (team vision-eu) owns dataset ``street``, project ``signs`` (team
    vision-apac) owns dataset ``signs``; dataset ``loose`` belongs to no project."""
    outer = make_workspace(tmp_path, request.param)
    w: Workspace = outer._ws
    import_with_regions(w, tmp_path, "street", n=12, seed=7)
    import_with_regions(w, tmp_path, "signs", n=6, seed=3)
    import_with_regions(w, tmp_path, "loose", n=4, seed=5)
    orgs.create_org(w, SYSTEM, "acme")
    orgs.create_team(w, SYSTEM, "acme", "vision-eu")
    orgs.create_team(w, SYSTEM, "acme", "vision-apac")
    orgs.create_project(w, SYSTEM, "peds-eu", org="acme", team="vision-eu",
                        dataset_names=["street"])
    orgs.create_project(w, SYSTEM, "signs", org="acme", team="vision-apac",
                        task_type="classification", dataset_names=["signs"])
    yield Org(w, tmp_path)
    outer.close()
