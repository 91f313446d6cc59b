"""The contract suite: one user journey, the same assertions, on every storage backend
(SQLite or PostgreSQL catalog × local disk or S3 object store)."""

from __future__ import annotations

import filecmp
import stat
from pathlib import Path

import pytest

from viewfinder import InvalidInput, MergeConflict
from viewfinder.api import Workspace, open_workspace

pytestmark = pytest.mark.integration


def test_workspace_journey_on_every_backend(any_ws: Workspace, coco_source: Path, tmp_path: Path) -> None:
    ws = any_ws
    first = ws.import_source(coco_source, "street")
    assert first.created and first.samples == 12
    assert not ws.import_source(coco_source, "street").created  # idempotent
    ws.tag("street@main", "v1")
    ws.branch("street", "relabel")
    ws.dataset("street@relabel").remap({"car": "vehicle"})
    ws.dataset("street").tag_samples('split == "val"', add=["hard"])
    merged = ws.merge("street", "relabel")
    assert len(merged.parents) == 2
    ds = ws.dataset("street")
    assert "vehicle" in ds.stats()["classes"] and ds.count('"hard" in tags') > 0
    d = ws.diff("street", "v1", "main")
    assert d.labels.counts()["changed"] == ws.dataset("street@v1").stats()["classes"]["car"]

    # images come back from the store, byte for byte
    s = next(iter(ds.iter_samples()))
    assert s.image().size == (s.width, s.height)

    # exports of a tag are reproducible on every backend
    ws.dataset("street@v1").export("coco", tmp_path / "a")
    ws.dataset("street").remap({"dog": "canine"})
    ws.dataset("street@v1").export("coco", tmp_path / "b")
    cmp = filecmp.dircmp(tmp_path / "a" / "annotations", tmp_path / "b" / "annotations")
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only

    # linked images are the local store's read-only files: editing one in place fails, so
    # no export can change a stored image; an S3 store has no files to link to
    if ws._ws.blobs.is_local:
        ws.dataset("street@v1").export("yolo", tmp_path / "linked", images="link")
        linked = sorted((tmp_path / "linked" / "images").rglob("*.jpg"))
        assert linked and all(stat.S_IMODE(p.stat().st_mode) & 0o222 == 0 for p in linked)
    else:
        with pytest.raises(InvalidInput, match="local object store"):
            ws.dataset("street@v1").export("yolo", tmp_path / "linked", images="link")
        cached = Path(ws._ws.blobs.local_path(s.content_hash))  # this host's copy: read-only too
        assert stat.S_IMODE(cached.stat().st_mode) & 0o222 == 0

    # a second process (another CLI user or server replica) sees the same state
    other = open_workspace(ws.path)
    assert other.dataset("street").version.id == ws.dataset("street").version.id


def test_merge_conflict_on_every_backend(any_ws: Workspace, coco_source: Path) -> None:
    ws = any_ws
    ws.import_source(coco_source, "s")
    ws.branch("s", "b")
    ws.dataset("s").remap({"car": "x"})
    ws.dataset("s@b").remap({"car": "y"})
    with pytest.raises(MergeConflict):
        ws.merge("s", "b")


def test_migrations_match_the_catalog_model(any_ws: Workspace) -> None:
    """The Alembic migrations create exactly the tables the code queries."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from viewfinder.storage.catalog import metadata

    with any_ws._ws.catalog.engine.connect() as c:
        diffs = compare_metadata(MigrationContext.configure(c), metadata)
    assert diffs == []


def test_schema_revision_is_the_newest_migration(tmp_path: Path) -> None:
    """An old catalog is upgraded on open, so the code's revision must be Alembic's head."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from viewfinder.storage import catalog

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(catalog.__file__).parent / "migrations"))
    assert ScriptDirectory.from_config(cfg).get_current_head() == catalog.SCHEMA_REVISION

    url = f"sqlite:///{tmp_path / 'old.db'}"
    from alembic import command
    cfg.attributes["url"] = url
    command.upgrade(cfg, "0001")
    cat = catalog.Catalog(url)
    cat.ensure_schema()
    with cat.engine.connect() as c:
        assert c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == catalog.SCHEMA_REVISION
        c.exec_driver_sql("SELECT count(*) FROM check_reports")
    cat.close()
