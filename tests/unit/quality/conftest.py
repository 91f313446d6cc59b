"""Shared fixtures of the quality tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.quality.planted import write_source
from viewfinder.services import ingest
from viewfinder.storage.workspace import Workspace, init_workspace


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace whose dataset ``street`` has the problems in ``planted.PLANTED``."""
    ws = init_workspace(tmp_path / "ws")
    src = write_source(tmp_path / "src")
    ingest.import_source(ws, src, "street", metadata=src / "meta.json")
    yield ws
    ws.close()
