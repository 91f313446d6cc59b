"""Background jobs: long operations (exports) run off the request, with status in the catalog.

A job runs in a worker thread of the server process that accepted it; its status,
progress, result and error live in the catalog's ``jobs`` table, so any server process
sharing the catalog answers ``GET /api/v1/jobs/{id}`` the same way. A running job's
process writes a heartbeat every :data:`HEARTBEAT_S` seconds; a job whose heartbeat is
older than :data:`LOST_AFTER_S` belonged to a process that died, and is reported (and
recorded) as failed rather than running forever.

States: ``queued → running → succeeded | failed`` (``queued → failed`` when the server
stops before the job started), then ``succeeded → expired`` for a kind whose result is
kept for a while only (:class:`Retention`, e.g. export archives): from ``finished_at +
keep`` on, every process reports the job as expired, and the sweep that the heartbeat
thread runs at start and every :data:`SWEEP_S` seconds releases what the result holds
(deletes the archive) and records the new state.

Several processes sweep the same catalog: a process first *claims* a due job with one
conditional update (only one wins; a claim left by a process that died lapses after
:data:`CLAIM_S`), releases it, then records it as expired. The sweep releases a job only
:data:`EXPIRY_GRACE_S` after it became due, so a process whose clock runs a little behind
never hands out a result that another process is deleting.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
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
SWEEP_S = 300.0
"""How often a process looks for jobs whose result is due to expire (and once at start)."""
CLAIM_S = 600.0
"""How long a process's claim on expiring a job holds before another may take it over."""
EXPIRY_GRACE_S = 300.0
"""How long after a result became due the sweep waits before deleting it."""
SWEEP_BATCH = 200
"""Most jobs one sweep expires (the next sweep takes the rest)."""
MAX_PAGE = 200
"""Most jobs one :meth:`JobRunner.list` returns."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: what a job's work reports as it goes."""
Work = Callable[[Progress], dict[str, Any]]
"""A job's work: runs in a worker thread, returns the JSON result."""


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
"""States of a job that has not finished."""

_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED}),
    JobStatus.SUCCEEDED: frozenset({JobStatus.EXPIRED}),
    JobStatus.FAILED: frozenset(),
    JobStatus.EXPIRED: frozenset(),
}

_CLAIM_PREFIX = "expiring:"
"""``runner`` of a succeeded job that a process is expiring (``expiring:<runner id>``)."""


@dataclass(frozen=True)
class Job:
    """One job as the catalog records it.

    ``expires_at``: when a succeeded job's result stops being handed out (None for a kind
    whose results are kept, and for jobs that did not succeed).
    """

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
    expires_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The job as the API shows it (``owner`` and internals left out)."""
        return {
            "id": self.id, "kind": self.kind, "status": self.status.value,
            "dataset": self.dataset, "params": self.params, "progress": self.progress,
            "result": self.result, "error": self.error,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


@dataclass(frozen=True)
class Retention:
    """How long a succeeded job's result of one kind is kept, and how it is released.

    Attributes:
        keep: time from the job's end until its result expires.
        release: deletes what the result holds (an archive in the object store); called
            by one process per job, and again if that process died before recording the
            expiry, so it must accept a result that is already gone.
    """

    keep: timedelta
    release: Callable[[Job], None]


def _aware(dt: datetime | None) -> datetime | None:
    from datetime import UTC

    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=UTC)


def others_with_result(catalog: Catalog, job: Job, key: str, value: str) -> int:
    """How many other succeeded jobs of ``job``'s kind hold ``value`` under ``key`` in
    their result (e.g. the same export archive)."""
    with catalog.engine.connect() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(jobs).where(
            jobs.c.kind == job.kind, jobs.c.id != job.id,
            jobs.c.status == JobStatus.SUCCEEDED.value,
            jobs.c.result[key].as_string() == value)).scalar_one())


class JobRunner:
    """Runs jobs in this process's worker threads and reads any process's jobs.

    Args:
        catalog: the shared catalog.
        workers: threads running jobs in this process.
        retention: for each job kind whose results expire, how long they are kept and how
            they are released; results of other kinds are kept.
    """

    def __init__(self, catalog: Catalog, *, workers: int = 2,
                 retention: Mapping[str, Retention] | None = None) -> None:
        self.catalog = catalog
        self.retention: dict[str, Retention] = dict(retention or {})
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
               dataset: str | None = None, job_id: str | None = None) -> Job:
        """Record a queued job and start it on a worker thread; returns it as queued.

        Args:
            job_id: the id to record (default: a new one), for work that names its job in
                what it writes.
        """
        now = utcnow()
        job_id = job_id or new_id(12)
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
        """Beat for this process's jobs; sweep expired results at start and every SWEEP_S."""
        next_sweep = time.monotonic()
        while True:
            if self.retention and time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + SWEEP_S
                try:
                    self.expire_due()
                except Exception:  # the heartbeat thread must live on; the next sweep retries
                    log.exception("could not expire old job results")
            if self._stop.wait(HEARTBEAT_S):
                return
            with self._guard:
                ids = sorted(self._running | self._queued)
            if not ids:
                continue
            try:
                with self.catalog.write() as c:
                    c.execute(jobs.update().where(jobs.c.id.in_(ids)).values(heartbeat_at=utcnow()))
            except sa.exc.SQLAlchemyError:
                log.warning("could not record the job heartbeat", exc_info=True)

    # -- expiring results --------------------------------------------------------------

    def expire_due(self, *, now: datetime | None = None) -> list[str]:
        """Release and record as expired the succeeded jobs whose results are due (at
        least :data:`EXPIRY_GRACE_S` past their expiry); safe to run in every process at
        once: each job is released by the one process whose claim succeeds.

        Args:
            now: the time to judge by (default: now).

        Returns:
            The ids of the jobs this call expired.
        """
        if not self.retention:
            return []
        now = now or utcnow()
        grace = timedelta(seconds=EXPIRY_GRACE_S)
        due = sa.or_(*(sa.and_(jobs.c.kind == kind, jobs.c.finished_at < now - r.keep - grace)
                       for kind, r in self.retention.items()))
        with self.catalog.engine.connect() as c:
            ids = list(c.execute(sa.select(jobs.c.id).where(jobs.c.status == JobStatus.SUCCEEDED.value, due)
                                 .order_by(jobs.c.finished_at).limit(SWEEP_BATCH)).scalars())
        done = []
        for job_id in ids:
            if not self._claim(job_id):
                continue
            job = self._read(job_id)
            try:
                self.retention[job.kind].release(job)
                self._move(job_id, JobStatus.EXPIRED)
            except (ViewfinderError, OSError):  # the claim lapses; a later sweep retries
                log.warning("could not expire the result of job %s", job_id, exc_info=True)
                continue
            done.append(job_id)
        return done

    def _claim(self, job_id: str) -> bool:
        """Take the right to expire a succeeded job: True for exactly one process (until
        its claim lapses after :data:`CLAIM_S`)."""
        now = utcnow()
        unclaimed = sa.or_(sa.not_(jobs.c.runner.startswith(_CLAIM_PREFIX)),
                           jobs.c.heartbeat_at < now - timedelta(seconds=CLAIM_S))
        with self.catalog.write() as c:
            n = c.execute(jobs.update()
                          .where(jobs.c.id == job_id, jobs.c.status == JobStatus.SUCCEEDED.value, unclaimed)
                          .values(runner=f"{_CLAIM_PREFIX}{self.runner_id}", heartbeat_at=now)).rowcount
        return n == 1

    def _expiry(self, kind: str, status: JobStatus, finished_at: datetime | None) -> datetime | None:
        r = self.retention.get(kind)
        if r is None or finished_at is None or status not in (JobStatus.SUCCEEDED, JobStatus.EXPIRED):
            return None
        return finished_at + r.keep

    def _job(self, row: Any, now: datetime) -> Job:
        """A row as a job, with the state every process reports: a succeeded job past its
        expiry is expired (before any sweep has deleted its result)."""
        status = JobStatus(row.status)
        finished = _aware(row.finished_at)
        expires = self._expiry(row.kind, status, finished)
        if status is JobStatus.SUCCEEDED and expires is not None and expires <= now:
            status = JobStatus.EXPIRED
        return Job(id=row.id, kind=row.kind, status=status, owner=row.owner,
                   dataset=row.dataset, params=row.params or {}, progress=row.progress,
                   result=row.result, error=row.error, created_at=_aware(row.created_at),
                   started_at=_aware(row.started_at), finished_at=finished, expires_at=expires)

    # -- reading -----------------------------------------------------------------------

    def _read(self, job_id: str) -> Job:
        with self.catalog.engine.connect() as c:
            row = c.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"no job {job_id!r}", record=job_id)
        return self._job(row, utcnow())

    def get(self, job_id: str, *, owner: str | None = None) -> Job:
        """The job, from any process. With ``owner``, a job of someone else is not found.

        Raises:
            NotFound: no such job (or not the owner's).
        """
        with self.catalog.engine.connect() as c:
            row = c.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None or (owner is not None and row.owner != owner):
            raise NotFound(f"no job {job_id!r}", record=job_id)
        return self._checked(row, utcnow())

    def _checked(self, row: Any, now: datetime) -> Job:
        job = self._job(row, now)
        if job.status in ACTIVE:
            beat = _aware(row.heartbeat_at)
            if beat is not None and now - beat > timedelta(seconds=LOST_AFTER_S):
                return self._lost(job)
        return job

    def list_jobs(self, *, owner: str | None, status: JobStatus | None = None, limit: int = 50,
             offset: int = 0) -> list[Job]:
        """Jobs, newest first: ``owner``'s, or everyone's with ``owner=None``.

        Args:
            status: only jobs in this state (as :meth:`get` reports it: a succeeded job
                past its expiry is expired, a job of a process that died is failed).
            limit: at most this many (1 to :data:`MAX_PAGE`).
            offset: jobs to skip.
        """
        now = utcnow()
        q = sa.select(jobs)
        if owner is not None:
            q = q.where(jobs.c.owner == owner)
        if status is not None:
            q = q.where(self._status_is(status, now))
        q = (q.order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
             .limit(max(1, min(limit, MAX_PAGE))).offset(max(0, offset)))
        with self.catalog.engine.connect() as c:
            rows = c.execute(q).all()
        return [self._checked(r, now) for r in rows]

    def _status_is(self, status: JobStatus, now: datetime) -> sa.ColumnElement[bool]:
        """SQL for "the job is reported as ``status`` at ``now``" (see :meth:`list`)."""
        lost = jobs.c.heartbeat_at < now - timedelta(seconds=LOST_AFTER_S)
        past_due = sa.or_(sa.false(), *(sa.and_(jobs.c.kind == kind, jobs.c.finished_at <= now - r.keep)
                                        for kind, r in self.retention.items()))
        recorded = jobs.c.status == status.value
        match status:
            case JobStatus.QUEUED | JobStatus.RUNNING:
                return sa.and_(recorded, sa.not_(lost))
            case JobStatus.FAILED:
                return sa.or_(recorded, sa.and_(jobs.c.status.in_([s.value for s in ACTIVE]), lost))
            case JobStatus.SUCCEEDED:
                return sa.and_(recorded, sa.not_(past_due))
            case JobStatus.EXPIRED:
                return sa.or_(recorded, sa.and_(jobs.c.status == JobStatus.SUCCEEDED.value, past_due))

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
        self._beat.join(timeout=HEARTBEAT_S)
        with self._guard:
            never_ran = sorted(self._queued)
            self._queued.clear()
        if never_ran:
            with self.catalog.write() as c:
                c.execute(jobs.update().where(jobs.c.id.in_(never_ran),
                                              jobs.c.status == JobStatus.QUEUED.value)
                          .values(status=JobStatus.FAILED.value, finished_at=utcnow(),
                                  error="the server stopped before this job started; submit it again"))
