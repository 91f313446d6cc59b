"""Shared fixtures: workspace builders over every storage backend, tiny real datasets.

Backends: ``sqlite-local`` always; ``postgres-*`` when ``VIEWFINDER_TEST_POSTGRES_URL``
is set and ``*-s3`` when ``VIEWFINDER_TEST_S3_ENDPOINT`` is set (``scripts/test.sh``
starts both). With ``VIEWFINDER_REQUIRE_SERVICES=1`` (CI) a missing service fails the
tests instead of skipping them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from viewfinder.api import Workspace, init_workspace
from tests.peer import PEER
from viewfinder.synthetic import make_coco

PG_URL = os.environ.get("VIEWFINDER_TEST_POSTGRES_URL")
S3_ENDPOINT = os.environ.get("VIEWFINDER_TEST_S3_ENDPOINT")
S3_BUCKET = os.environ.get("VIEWFINDER_TEST_S3_BUCKET", "viewfinder-test")
REQUIRE = os.environ.get("VIEWFINDER_REQUIRE_SERVICES") == "1"

BACKENDS = ["sqlite-local", "postgres-local", "sqlite-s3", "postgres-s3"]


def _need(what: str, available: bool) -> None:
    if available:
        return
    if REQUIRE:
        pytest.fail(f"{what} is required (VIEWFINDER_REQUIRE_SERVICES=1) but not configured")
    pytest.skip(f"{what} not configured (run the tests with scripts/test.sh)")


def new_postgres_database() -> str:
    """A fresh, empty PostgreSQL database on the test server; returns its URL."""
    import psycopg

    assert PG_URL
    name = f"vf_{secrets.token_hex(6)}"
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return PG_URL.rsplit("/", 1)[0] + f"/{name}"


def make_workspace(tmp_path: Path, backend: str) -> Workspace:
    catalog, store, endpoint = None, None, None
    if backend.startswith("postgres"):
        _need("PostgreSQL", bool(PG_URL))
        catalog = new_postgres_database()
    if backend.endswith("s3"):
        _need("an S3 server", bool(S3_ENDPOINT))
        store = f"s3://{S3_BUCKET}/{secrets.token_hex(6)}"
        endpoint = S3_ENDPOINT
    return init_workspace(tmp_path / "ws", catalog=catalog, store=store, store_endpoint=endpoint)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    """An embedded workspace (SQLite + local disk)."""
    w = make_workspace(tmp_path, "sqlite-local")
    yield w
    w.close()


@pytest.fixture(params=BACKENDS)
def any_ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on each storage backend in turn (the contract suite)."""
    w = make_workspace(tmp_path, request.param)
    yield w
    w.close()


@pytest.fixture
def coco_source(tmp_path: Path) -> Path:
    """A 12-image COCO detection dataset with 4 classes (real JPEGs)."""
    return make_coco(tmp_path / "coco_src", n_images=12, seed=7)




def pytest_configure(config: pytest.Config) -> None:
    """In CI the peer datasets must be there: a silently skipped format test proves nothing."""
    if os.environ.get("CI") == "true" and not PEER.exists():
        raise pytest.UsageError(f"peer fixtures not found at {PEER} (CI needs ../shared/fixtures)")
