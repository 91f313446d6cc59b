"""``/api/v1/datasets/{name}/exports`` and ``/api/v1/jobs``: exports run as background
jobs; their result (a zip archive) is stored in the object store by content hash, so any
server process can hand it out. Downloading it is an audited bulk download; an archive is
kept for the server's export retention period, then its download answers 410 Gone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from viewfinder.server.api.schemas import ExportRequest, JobOut
from viewfinder.server.deps import StateDep, UserDep, origin
from viewfinder.server.jobs import MAX_PAGE, JobStatus

router = APIRouter(tags=["exports"])

_CHUNK = 1 << 20


class JobView(JobOut):
    """A job, with when its result stops being handed out and (in an administrator's
    list of everyone's jobs) whose it is."""

    expires_at: str | None = None
    owner: str | None = None


class JobsPage(BaseModel):
    jobs: list[JobView]
    next_offset: int | None


@router.post("/datasets/{name}/exports", response_model=JobView, status_code=202)
def start_export(name: str, body: ExportRequest, request: Request, state: StateDep,
                 principal: UserDep) -> dict[str, Any]:
    """Start exporting ``name@ref`` (optionally filtered) to ``format``; returns the job.
    Poll ``GET /api/v1/jobs/{id}``, then download the archive."""
    from viewfinder.server import export_jobs

    return export_jobs.submit(state, principal, name, body.ref, body.format, body.filter,
                              origin(request)).to_dict()


@router.get("/jobs", response_model=JobsPage)
def list_jobs(state: StateDep, principal: UserDep,
              status: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
              limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
              offset: Annotated[int, Query(ge=0)] = 0,
              everyone: Annotated[bool, Query(alias="all", description=(
                  "Everyone's jobs, each with its owner (administrators only)."))] = False,
              ) -> dict[str, Any]:
    """The caller's background jobs, newest first (``next_offset`` is null on the last page)."""
    from viewfinder.server import export_jobs

    found = export_jobs.list_jobs(state, principal, everyone=everyone, status=status,
                                  limit=limit + 1, offset=offset)
    page = [j.to_dict() | ({"owner": owner} if owner is not None else {})
            for j, owner in found[:limit]]
    return {"jobs": page, "next_offset": offset + limit if len(found) > limit else None}


@router.get("/jobs/{job_id}", response_model=JobView)
def get_job(job_id: str, state: StateDep, principal: UserDep) -> dict[str, Any]:
    """A job's status, progress, result or error (only the caller's own jobs)."""
    from viewfinder.server import export_jobs

    return export_jobs.get(state, principal, job_id).to_dict()


@router.get("/jobs/{job_id}/download", response_class=StreamingResponse,
            responses={200: {"content": {"application/zip": {}}},
                       410: {"description": "The archive expired and was deleted."}})
def download(job_id: str, request: Request, state: StateDep,
             principal: UserDep) -> Response:
    """The finished export as a zip archive (recorded in the audit log); 410 once the
    archive has expired."""
    from viewfinder.server import export_jobs
    from viewfinder.server.errors import error_body

    try:
        archive = export_jobs.download(state, principal, job_id, origin(request))
    except export_jobs.ArchiveExpired as e:
        return JSONResponse(error_body("ArchiveExpired", str(e)), status_code=410)

    def chunks() -> Iterator[bytes]:
        with archive.file as f:
            while chunk := f.read(_CHUNK):
                yield chunk

    return StreamingResponse(chunks(), media_type="application/zip", headers={
        "Content-Length": str(archive.size),
        "Content-Disposition": _attachment(archive.filename)})


def _attachment(filename: str) -> str:
    """``Content-Disposition`` for ``filename`` (RFC 6266; non-ASCII and quotes encoded)."""
    quoted = quote(filename, safe="")
    if quoted == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename*=utf-8''{quoted}"
