"""``/api/v1/datasets/{name}/exports`` and ``/api/v1/jobs``: exports run as background
jobs; their result (a zip archive) is stored in the object store by content hash, so any
server process can hand it out. Downloading it is an audited bulk download."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from viewfinder.server.api.schemas import ExportRequest, JobOut
from viewfinder.server.deps import StateDep, UserDep, origin

router = APIRouter(tags=["exports"])


@router.post("/datasets/{name}/exports", response_model=JobOut, status_code=202)
def start_export(name: str, body: ExportRequest, request: Request, state: StateDep,
                 principal: UserDep) -> dict[str, Any]:
    """Start exporting ``name@ref`` (optionally filtered) to ``format``; returns the job.
    Poll ``GET /api/v1/jobs/{id}``, then download the archive."""
    from viewfinder.server import export_jobs

    return export_jobs.submit(state, principal, name, body.ref, body.format, body.filter,
                              origin(request)).to_dict()


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: str, state: StateDep, principal: UserDep) -> dict[str, Any]:
    """A job's status, progress, result or error (only the caller's own jobs)."""
    from viewfinder.server import export_jobs

    return export_jobs.get(state, principal, job_id).to_dict()


@router.get("/jobs/{job_id}/download", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}}})
def download(job_id: str, request: Request, state: StateDep, principal: UserDep) -> FileResponse:
    """The finished export as a zip archive (recorded in the audit log)."""
    from viewfinder.server import export_jobs

    path, filename = export_jobs.download(state, principal, job_id, origin(request))
    return FileResponse(path, media_type="application/zip", filename=filename)
