"""Exports as background jobs: check, run, archive, store, hand out, expire.

The access check happens when the export is requested (a caller who may not export gets
403/404 at once, not a failed job); the job then exports through ``services.access``
(which records the export in the audit log), zips the folder, and puts the archive in the
object store under its sha256, so the download works from any server process. Handing the
archive out is recorded as a bulk download.

Archives are kept for ``Settings.export_retention_days`` after the job finished; then the
job is expired (:class:`~viewfinder.server.jobs.Retention`): its download answers 410 and
the job runner's sweep deletes the archive. Each archive names its job in the zip comment,
so no two jobs share an archive and deleting one never takes another job's download.

A download opens the archive *before* it checks, for the last time, that the job has not
expired; the sweep records nothing as deleted before the job is due, and deletes only after
that. So a download that passed the check reads from a file it already holds open (a
deleted file stays readable through an open handle), and one that comes later is told the
archive expired: nobody gets half a file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from viewfinder.errors import ConflictError, InvalidInput, StorageError
from viewfinder.governance.principal import Principal
from viewfinder.server.app import ServerState
from viewfinder.server.jobs import Job, JobStatus, Progress, Retention, others_with_result
from viewfinder.storage.catalog import new_id
from viewfinder.storage.workspace import Workspace

KIND = "export"
_STORED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".zip"})  # already compressed


class ArchiveExpired(ConflictError):
    """The export finished, but its archive was kept for its retention period only and is
    gone (the API answers 410 Gone)."""


@dataclass
class ArchiveFile:
    """An export archive, open for reading: the caller streams and closes ``file``."""

    file: BinaryIO
    size: int
    filename: str


def _owner(principal: Principal) -> str:
    if principal.user_id is None:
        raise InvalidInput("background jobs belong to a signed-in user")
    return principal.user_id


def retention(state: ServerState) -> Retention:
    """How long export archives are kept (``Settings.export_retention_days``) and how
    one is deleted: the job runner's sweep uses it."""
    return Retention(keep=timedelta(days=state.settings.export_retention_days),
                     release=lambda job: _delete_archive(state, job))


def authorize(state: ServerState, principal: Principal, name: str, ref: str) -> str:
    """Check that the caller may export ``name@ref``; the version id ``ref`` names.

    Raises:
        NotFound: the dataset or ref is not visible to the caller.
        PermissionDenied: the caller may see it but not export it.
    """
    from viewfinder.governance.policy import Action
    from viewfinder.services import access

    at, _grant = access.open_dataset(state.ws, principal, f"{name}@{ref}", Action.DATASET_EXPORT)
    return at.version.id


def submit(state: ServerState, principal: Principal, name: str, ref: str, format: str,
           filter: str | None, origin: dict[str, str | None]) -> Job:
    """Check that the caller may export ``name@ref``, then queue the export job.

    Raises:
        NotFound: the dataset or ref is not visible to the caller.
        PermissionDenied: the caller may see it but not export it.
        InvalidInput: unknown format or bad filter.
    """
    from viewfinder.formats import registry
    from viewfinder.storage.query import parse

    version = authorize(state, principal, name, ref)
    fmt = registry.get(format)
    if not fmt.can_export:
        raise InvalidInput(f"format {format!r} cannot be exported; export formats: "
                           f"{', '.join(registry.export_names())}")
    if filter:
        parse(filter)  # a syntax error is the request's, not a failed job
    params = {"ref": ref, "version": version, "format": fmt.name, "filter": filter or None}
    job_id = new_id(12)

    def work(progress: Progress) -> dict[str, Any]:
        return _run(state, principal, name, job_id, params, progress, origin)

    return state.jobs.submit(KIND, owner=_owner(principal), params=params, work=work,
                             dataset=name, job_id=job_id)


def _run(state: ServerState, principal: Principal, name: str, job_id: str, params: dict[str, Any],
         progress: Progress, origin: dict[str, str | None]) -> dict[str, Any]:
    from viewfinder.services import access

    ws = state.ws
    tmp = Path(tempfile.mkdtemp(prefix="vf-export-", dir=_scratch(state)))
    try:
        progress("export", 0, 1)
        last = [0.0]

        def placed(done: int, total: int) -> None:  # a catalog write: at most once a second
            now = time.monotonic()
            if now - last[0] >= 1.0 or done == total:
                last[0] = now
                progress("export", done, total)

        result = access.export(ws, principal, f"{name}@{params['version']}", tmp / "export",
                               params["format"], filter=params["filter"], **origin,
                               progress=placed)
        progress("archive", 0, 1)
        archive = tmp / "export.zip"
        files = _zip(tmp / "export", archive, comment=f"Viewfinder export, job {job_id}")
        digest = _sha256(archive)
        ws.blobs.put_file(archive, digest)
        progress("done", 1, 1)
        return {"archive": digest, "archive_bytes": archive.stat().st_size, "files": files,
                "filename": f"{name}-{params['version'][:12]}-{params['format']}.zip",
                "samples": result.samples, "labels": result.labels,
                "version": result.version, "format": result.format}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _scratch(state: ServerState) -> Path:
    p = state.ws.path / "cache" / "exports"
    p.mkdir(parents=True, exist_ok=True)
    return p


def _zip(folder: Path, archive: Path, *, comment: str) -> int:
    """Zip ``folder`` into ``archive`` (sorted names, fixed timestamps: the members of two
    exports of one version are byte-identical; ``comment`` tells the archives apart)."""
    n = 0
    with zipfile.ZipFile(archive, "w", allowZip64=True) as z:
        z.comment = comment.encode()
        for p in sorted(folder.rglob("*")):
            if p.is_dir():
                continue
            rel = p.relative_to(folder).as_posix()
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = (zipfile.ZIP_STORED if p.suffix.lower() in _STORED_SUFFIXES
                                  else zipfile.ZIP_DEFLATED)
            info.external_attr = 0o644 << 16
            with p.open("rb") as src, z.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            n += 1
    return n


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- reading jobs ----------------------------------------------------------------------

def get(state: ServerState, principal: Principal, job_id: str) -> Job:
    """The caller's job (someone else's is not found)."""
    return state.jobs.get(job_id, owner=_owner(principal))


def may_see_all(ws: Workspace, principal: Principal) -> bool:
    """Whether the caller administers members (and so may list everyone's jobs)."""
    from viewfinder.errors import NotFound, PermissionDenied
    from viewfinder.governance import policy
    from viewfinder.governance.roles import Action

    try:
        policy.decide(ws, principal, Action.MEMBERS_ADMIN)
    except (PermissionDenied, NotFound):
        return False
    return True


def list_jobs(state: ServerState, principal: Principal, *, everyone: bool = False,
              status: JobStatus | None = None, limit: int = 50,
              offset: int = 0) -> list[tuple[Job, str | None]]:
    """The caller's jobs (everyone's with ``everyone``), newest first, each with its
    owner's user name (None for the caller's own list).

    Raises:
        PermissionDenied: ``everyone`` from a caller who does not administer members.
    """
    from viewfinder.errors import PermissionDenied

    if not everyone:
        return [(j, None) for j in state.jobs.list_jobs(owner=_owner(principal), status=status,
                                                          limit=limit, offset=offset)]
    if not may_see_all(state.ws, principal):
        raise PermissionDenied(f"{principal.username} may list only their own jobs (everyone's "
                               "needs an organization-level head_of_dataops role)")
    from viewfinder.governance import users

    found = state.jobs.list_jobs(owner=None, status=status, limit=limit, offset=offset)
    names: dict[str, str] = {}
    for owner in {j.owner for j in found}:
        user = users.get_user_by_id(state.ws, owner)
        names[owner] = user.username if user is not None else owner
    return [(j, names[j.owner]) for j in found]


# -- handing out and expiring archives ---------------------------------------------------

def download(state: ServerState, principal: Principal, job_id: str,
             origin: dict[str, str | None]) -> ArchiveFile:
    """The archive of a finished export of the caller's, open for reading; records the
    bulk download in the audit log (``dataset.download``).

    Raises:
        NotFound: no such job of the caller's.
        ArchiveExpired: the archive was deleted after its retention period.
        ConflictError: the job has not finished, or failed.
    """
    from viewfinder.governance import audit

    job = _downloadable(get(state, principal, job_id))
    result = job.result or {}
    try:
        f = open(state.ws.blobs.local_path(result["archive"]), "rb")  # noqa: SIM115 - streamed
    except (StorageError, OSError):
        _downloadable(get(state, principal, job_id))  # deleted meanwhile: it expired
        raise
    try:
        _downloadable(get(state, principal, job_id))  # still not expired, with the file open
        size = os.fstat(f.fileno()).st_size
        audit.record(state.ws, principal, "dataset.download", resource_kind="dataset",
                     resource_id=job.dataset, **origin,
                     details={"job": job.id, "format": result["format"], "samples": result["samples"],
                              "archive": result["archive"], "bytes": result["archive_bytes"]},
                     after={"version": result["version"]})
    except BaseException:
        f.close()
        raise
    return ArchiveFile(file=f, size=size, filename=result["filename"])


def _downloadable(job: Job) -> Job:
    if job.kind == KIND and job.status is JobStatus.EXPIRED:
        kept = (f" (kept until {job.expires_at:%Y-%m-%d %H:%M} UTC)" if job.expires_at else "")
        raise ArchiveExpired(f"the archive of export job {job.id} has expired and was deleted"
                             f"{kept}; export the dataset again", record=job.id)
    if job.kind != KIND or job.status is not JobStatus.SUCCEEDED or not job.result:
        raise ConflictError(f"job {job.id} has no archive to download (status {job.status.value})",
                            record=job.id)
    return job


def _delete_archive(state: ServerState, job: Job) -> None:
    """Delete ``job``'s archive from the object store (and this host's cached copy of a
    remote one), unless another job that has not expired holds the same archive (an
    archive made before archives named their job). A missing archive is not an error.
    """
    digest = (job.result or {}).get("archive")
    if not isinstance(digest, str) or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        return
    if others_with_result(state.ws.catalog, job, "archive", digest):
        return
    try:
        state.ws.blobs.delete(digest)
    except StorageError as e:
        raise StorageError(f"cannot delete the archive of export job {job.id}: {e}",
                           record=job.id) from e
