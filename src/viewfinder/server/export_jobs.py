"""Exports as background jobs: check, run, archive, store, hand out.

The access check happens when the export is requested (a caller who may not export gets
403/404 at once, not a failed job); the job then exports through ``services.access``
(which records the export in the audit log), zips the folder, and puts the archive in the
object store under its sha256, so the download works from any server process. Handing the
archive out is recorded as a bulk download.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from viewfinder.errors import ConflictError, InvalidInput
from viewfinder.governance.principal import Principal
from viewfinder.server.app import ServerState
from viewfinder.server.jobs import Job, JobStatus, Progress

KIND = "export"
_STORED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".zip"})  # already compressed


def _owner(principal: Principal) -> str:
    if principal.user_id is None:
        raise InvalidInput("background jobs belong to a signed-in user")
    return principal.user_id


def submit(state: ServerState, principal: Principal, name: str, ref: str, format: str,
           filter: str | None, origin: dict[str, str | None]) -> Job:
    """Check that the caller may export ``name@ref``, then queue the export job.

    Raises:
        NotFound: the dataset or ref is not visible to the caller.
        PermissionDenied: the caller may see it but not export it.
        InvalidInput: unknown format or bad filter.
    """
    from viewfinder.formats import registry
    from viewfinder.governance.policy import Action
    from viewfinder.services import access
    from viewfinder.storage.query import parse

    at, _grant = access.open_dataset(state.ws, principal, f"{name}@{ref}", Action.DATASET_EXPORT)
    fmt = registry.get(format)
    if not fmt.can_export:
        raise InvalidInput(f"format {format!r} cannot be exported; export formats: "
                           f"{', '.join(registry.export_names())}")
    if filter:
        parse(filter)  # a syntax error is the request's, not a failed job
    params = {"ref": ref, "version": at.version.id, "format": fmt.name, "filter": filter or None}

    def work(progress: Progress) -> dict[str, Any]:
        return _run(state, principal, name, params, progress, origin)

    return state.jobs.submit(KIND, owner=_owner(principal), params=params, work=work, dataset=name)


def _run(state: ServerState, principal: Principal, name: str, params: dict[str, Any],
         progress: Progress, origin: dict[str, str | None]) -> dict[str, Any]:
    from viewfinder.services import access

    ws = state.ws
    tmp = Path(tempfile.mkdtemp(prefix="vf-export-", dir=_scratch(state)))
    try:
        progress("export", 0, 1)
        result = access.export(ws, principal, f"{name}@{params['version']}", tmp / "export",
                               params["format"], filter=params["filter"], **origin)
        progress("archive", 0, 1)
        archive = tmp / "export.zip"
        files = _zip(tmp / "export", archive)
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


def _zip(folder: Path, archive: Path) -> int:
    """Zip ``folder`` into ``archive`` (sorted names, fixed timestamps); file count."""
    n = 0
    with zipfile.ZipFile(archive, "w", allowZip64=True) as z:
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


def get(state: ServerState, principal: Principal, job_id: str) -> Job:
    """The caller's job (someone else's is not found)."""
    return state.jobs.get(job_id, owner=_owner(principal))


def download(state: ServerState, principal: Principal, job_id: str,
             origin: dict[str, str | None]) -> tuple[str, str]:
    """``(local file, download name)`` of a finished export of the caller's; records the
    bulk download in the audit log (``dataset.download``).

    Raises:
        NotFound: no such job of the caller's.
        ConflictError: the job has not finished, or failed.
    """
    from viewfinder.governance import audit

    job = get(state, principal, job_id)
    if job.kind != KIND or job.status is not JobStatus.SUCCEEDED or not job.result:
        raise ConflictError(f"job {job_id} has no archive to download (status {job.status.value})",
                            record=job_id)
    result = job.result
    path = state.ws.blobs.local_path(result["archive"])
    audit.record(state.ws, principal, "dataset.download", resource_kind="dataset",
                 resource_id=job.dataset, **origin,
                 details={"job": job.id, "format": result["format"], "samples": result["samples"],
                          "archive": result["archive"], "bytes": result["archive_bytes"]},
                 after={"version": result["version"]})
    return path, result["filename"]
