"""Background jobs: long operations (exports) run off the request, with status in the catalog.

A job runs in a worker thread of the server process that accepted it; its status,
progress, result and error live in the catalog's ``jobs`` table, so any server process
sharing the catalog answers ``GET /api/v1/jobs/{id}`` the same way. A running job's
process writes a heartbeat every :data:`HEARTBEAT_S` seconds; a job whose heartbeat is
older than :data:`LOST_AFTER_S` belonged to a process that died, and is reported (and
recorded) as failed rather than running forever.

States: ``queued → running → succeeded | failed`` (``queued → failed`` when the server
stops before the job started).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from viewfinder.errors import NotFound, StorageError, ViewfinderError
from viewfinder.storage.catalog import Catalog, jobs, new_id, utcnow

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
LOST_AFTER_S = 120.0

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: what a job's work reports as it goes."""
Work = Callable[[Progress], dict[str, Any]]
"""A job's work: runs in a worker thread, returns the JSON result."""


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
}


@dataclass(frozen=True)
class Job:
    """One job as the catalog records it."""

    id: str
    kind: str
    status: JobStatus
    owner: str
    dataset: str | None
    params: dict[str, Any]
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """The job as the API shows it (``owner`` and internals left out)."""
        return {
            "id": self.id, "kind": self.kind, "status": self.status.value,
            "dataset": self.dataset, "params": self.params, "progress": self.progress,
            "result": self.result, "error": self.error,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def _aware(dt: datetime | None) -> datetime | None:
    from datetime import UTC

    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=UTC)


def _job(row: Any) -> Job:
    return Job(id=row.id, kind=row.kind, status=JobStatus(row.status), owner=row.owner,
               dataset=row.dataset, params=row.params or {}, progress=row.progress,
               result=row.result, error=row.error, created_at=_aware(row.created_at),
               started_at=_aware(row.started_at), finished_at=_aware(row.finished_at))


class JobRunner:
    """Runs jobs in this process's worker threads and reads any process's jobs.

    Args:
        catalog: the shared catalog.
        workers: threads running jobs in this process.
    """

    def __init__(self, catalog: Catalog, *, workers: int = 2) -> None:
        self.catalog = catalog
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}:{new_id(4)}"
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vf-job")
        self._running: set[str] = set()
        self._queued: set[str] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="vf-job-heartbeat", daemon=True)
        self._beat.start()

    # -- submitting and running --------------------------------------------------------

    def submit(self, kind: str, *, owner: str, params: dict[str, Any], work: Work,
               dataset: str | None = None) -> Job:
        """Record a queued job and start it on a worker thread; returns it as queued."""
        now = utcnow()
        job_id = new_id(12)
        with self.catalog.write() as c:
            c.execute(jobs.insert().values(
                id=job_id, kind=kind, status=JobStatus.QUEUED.value, owner=owner,
                dataset=dataset, params=params, progress=None, result=None, error=None,
                runner=self.runner_id, created_at=now, started_at=None, finished_at=None,
                heartbeat_at=now))
        with self._guard:
            self._queued.add(job_id)
        self._pool.submit(self._run, job_id, work)
        return self.get(job_id)

    def _run(self, job_id: str, work: Work) -> None:
        with self._guard:
            self._queued.discard(job_id)
            self._running.add(job_id)
        try:
            self._move(job_id, JobStatus.RUNNING, started_at=utcnow())

            def progress(stage: str, done: int, total: int) -> None:
                self._update(job_id, progress={"stage": stage, "done": done, "total": total},
                             heartbeat_at=utcnow())

            try:
                result = work(progress)
            except ViewfinderError as e:
                self._move(job_id, JobStatus.FAILED, error=str(e), finished_at=utcnow())
                return
            except Exception as e:  # a job's failure is data; the worker thread lives on
                log.exception("job %s failed", job_id)
                self._move(job_id, JobStatus.FAILED, error=f"internal error: {type(e).__name__}: {e}",
                           finished_at=utcnow())
                return
            self._move(job_id, JobStatus.SUCCEEDED, result=result, finished_at=utcnow())
        finally:
            with self._guard:
                self._running.discard(job_id)

    def _move(self, job_id: str, to: JobStatus, **values: Any) -> None:
        """Move a job to state ``to``, enforcing the transition table."""
        allowed_from = [s.value for s, targets in _TRANSITIONS.items() if to in targets]
        with self.catalog.write() as c:
            n = c.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status.in_(allowed_from))
                          .values(status=to.value, heartbeat_at=utcnow(), **values)).rowcount
        if n != 1:
            raise StorageError(f"job {job_id} cannot move to {to.value}", record=job_id)

    def _update(self, job_id: str, **values: Any) -> None:
        with self.catalog.write() as c:
            c.execute(jobs.update().where(jobs.c.id == job_id).values(**values))

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with self._guard:
                ids = sorted(self._running | self._queued)
            if not ids:
                continue
            try:
                with self.catalog.write() as c:
                    c.execute(jobs.update().where(jobs.c.id.in_(ids)).values(heartbeat_at=utcnow()))
            except sa.exc.SQLAlchemyError:
                log.warning("could not record the job heartbeat", exc_info=True)

    # -- reading -----------------------------------------------------------------------

    def get(self, job_id: str, *, owner: str | None = None) -> Job:
        """The job, from any process. With ``owner``, a job of someone else is not found.

        Raises:
            NotFound: no such job (or not the owner's).
        """
        with self.catalog.engine.connect() as c:
            row = c.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None or (owner is not None and row.owner != owner):
            raise NotFound(f"no job {job_id!r}", record=job_id)
        job = _job(row)
        if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            beat = _aware(row.heartbeat_at)
            if beat is not None and utcnow() - beat > timedelta(seconds=LOST_AFTER_S):
                return self._lost(job)
        return job

    def _lost(self, job: Job) -> Job:
        """Record that the process running ``job`` stopped without finishing it."""
        msg = "the server process running this job stopped before it finished; submit it again"
        with self.catalog.write() as c:
            c.execute(jobs.update().where(jobs.c.id == job.id, jobs.c.status == job.status.value)
                      .values(status=JobStatus.FAILED.value, error=msg, finished_at=utcnow()))
        return self.get(job.id)

    # -- stopping ----------------------------------------------------------------------

    def shutdown(self) -> None:
        """Wait for running jobs; queued ones that never started are recorded as failed."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._guard:
            never_ran = sorted(self._queued)
            self._queued.clear()
        if never_ran:
            with self.catalog.write() as c:
                c.execute(jobs.update().where(jobs.c.id.in_(never_ran),
                                              jobs.c.status == JobStatus.QUEUED.value)
                          .values(status=JobStatus.FAILED.value, finished_at=utcnow(),
                                  error="the server stopped before this job started; submit it again"))
