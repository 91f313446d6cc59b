"""The server's two stores of its own: background jobs in the catalog, and thumbnails
in a cache keyed by image hash."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from viewfinder.errors import InvalidInput, NotFound
from viewfinder.server.jobs import JobRunner, JobStatus, Progress
from viewfinder.server.thumbnails import (
    ALLOWED_SIZES,
    ThumbnailCache,
    clamp_size,
    render,
    sniff_media_type,
)
from viewfinder.storage.workspace import Workspace, init_workspace


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Workspace]:
    ws = init_workspace(tmp_path / "ws")
    yield ws
    ws.close()


def _finish(runner: JobRunner, job_id: str) -> JobStatus:
    deadline = time.monotonic() + 30
    while (job := runner.get(job_id)).status in (JobStatus.QUEUED, JobStatus.RUNNING):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return job.status


def test_a_job_runs_in_one_process_and_is_seen_from_another(store: Workspace) -> None:
    a, b = JobRunner(store.catalog), JobRunner(store.catalog)  # two server processes
    try:
        def work(progress: Progress) -> dict:
            for i in range(3):
                progress("step", i + 1, 3)
            return {"answer": 42}

        job = a.submit("export", owner="u1", params={"format": "coco"}, work=work, dataset="street")
        assert _finish(b, job.id) is JobStatus.SUCCEEDED
        seen = b.get(job.id, owner="u1")
        assert seen.result == {"answer": 42}
        assert seen.progress == {"stage": "step", "done": 3, "total": 3}
        assert seen.started_at and seen.finished_at and seen.finished_at >= seen.started_at
        with pytest.raises(NotFound):
            b.get(job.id, owner="someone else")
        with pytest.raises(NotFound):
            b.get("no-such-job")
    finally:
        a.shutdown()
        b.shutdown()


def test_a_failing_job_records_its_error(store: Workspace) -> None:
    runner = JobRunner(store.catalog)
    try:
        def bad_input(_p: Progress) -> dict:
            raise InvalidInput("format 'nope' cannot be exported")

        def crash(_p: Progress) -> dict:
            raise RuntimeError("disk on fire")

        j1 = runner.submit("export", owner="u", params={}, work=bad_input)
        j2 = runner.submit("export", owner="u", params={}, work=crash)
        assert _finish(runner, j1.id) is JobStatus.FAILED
        assert runner.get(j1.id).error == "format 'nope' cannot be exported"
        assert _finish(runner, j2.id) is JobStatus.FAILED
        assert "RuntimeError: disk on fire" in (runner.get(j2.id).error or "")
    finally:
        runner.shutdown()


def test_a_job_of_a_dead_process_is_reported_failed(store: Workspace) -> None:
    import sqlalchemy as sa

    from viewfinder.storage.catalog import jobs, utcnow

    runner = JobRunner(store.catalog)
    try:
        old = utcnow() - timedelta(minutes=10)
        with store.catalog.engine.begin() as c:
            c.execute(jobs.insert().values(
                id="orphan", kind="export", status="running", owner="u", dataset=None, params={},
                progress=None, result=None, error=None, runner="gone:1:x", created_at=old,
                started_at=old, finished_at=None, heartbeat_at=old))
        job = runner.get("orphan")
        assert job.status is JobStatus.FAILED and "stopped before it finished" in (job.error or "")
        with store.catalog.engine.connect() as c:  # recorded, not only reported
            assert c.execute(sa.select(jobs.c.status).where(jobs.c.id == "orphan")).scalar() == "failed"
    finally:
        runner.shutdown()


def _jpeg(w: int, h: int, orientation: int | None = None) -> bytes:
    im = Image.new("RGB", (w, h), (200, 30, 30))
    buf = io.BytesIO()
    if orientation is None:
        im.save(buf, "JPEG")
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def test_clamp_size_snaps_up_to_an_allowed_size() -> None:
    assert [clamp_size(s, 256) for s in (None, 1, 64, 65, 256, 300, 5000)] == [256, 64, 64, 128, 256, 512, 512]
    assert ALLOWED_SIZES[-1] == 512
    with pytest.raises(InvalidInput):
        clamp_size(0, 256)


def test_render_fits_the_box_follows_exif_and_flattens_transparency() -> None:
    out = Image.open(io.BytesIO(render(_jpeg(1600, 800), 256)))
    assert out.format == "JPEG" and out.size == (256, 128)
    rotated = Image.open(io.BytesIO(render(_jpeg(1600, 800, orientation=6), 256)))
    assert rotated.size == (128, 256)  # shown upright, as its stored width/height say
    rgba = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    assert Image.open(io.BytesIO(render(buf.getvalue(), 64))).getpixel((10, 10))[0] > 240  # white
    with pytest.raises(InvalidInput):
        render(b"<svg onload=alert(1)>", 64)


def test_cache_renders_once_and_never_takes_a_path(tmp_path: Path) -> None:
    import hashlib

    data = _jpeg(640, 480)
    digest = hashlib.sha256(data).hexdigest()
    reads: list[str] = []

    def read(h: str) -> bytes:
        reads.append(h)
        return data

    cache = ThumbnailCache(tmp_path / "thumbs")
    first, second = cache.get(digest, 128, read), cache.get(digest, 128, read)
    assert (first.cached, second.cached, reads) == (False, True, [digest])
    assert first.data == second.data
    assert cache.path(digest, 128).is_relative_to(tmp_path / "thumbs")
    for bad in ("../../etc/passwd", digest[:-1] + "/", digest.upper(), ""):
        with pytest.raises(InvalidInput):
            cache.get(bad, 128, read)
    with pytest.raises(InvalidInput):
        cache.get(digest, 100, read)  # only allowed sizes are ever written


def test_media_type_comes_from_the_bytes() -> None:
    assert sniff_media_type(_jpeg(8, 8)) == "image/jpeg"
    assert sniff_media_type(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert sniff_media_type(b"<html><script>") is None
