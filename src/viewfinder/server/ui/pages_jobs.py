"""The Jobs page and exporting from the dataset browser.

``/jobs`` lists the signed-in user's background jobs (an administrator may add ``?all=1``
for everyone's), newest first: kind, dataset, status, progress, times, error, and the
download link of a finished export. The page is complete as rendered; while a job is
queued or running, ``/static/jobs.js`` polls ``GET /api/v1/jobs`` and updates the rows.

``POST /datasets/{name}/exports`` is the browser's export form (see
:func:`export_form`): it checks the export right first (a role without it gets the 403 or
404 page, as from the API), starts the job through :func:`viewfinder.server.export_jobs.submit`
and sends the browser to the Jobs page, which shows the outcome once (a ``vf_flash``
cookie): the job, or what was wrong with the form.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from viewfinder.errors import (
    FilterSyntaxError,
    NotFound,
    PermissionDenied,
    ViewfinderError,
)
from viewfinder.governance.principal import Principal
from viewfinder.server.deps import CsrfDep, StateDep, origin
from viewfinder.server.jobs import ACTIVE
from viewfinder.server.ui.common import PageUserDep, UIRoute, redirect, render
from viewfinder.storage.workspace import Workspace

router = APIRouter(route_class=UIRoute, include_in_schema=False)

PAGE_SIZE = 50
"""Jobs per page."""
POLL_MS = 2000
"""How often the page asks for news while a job is queued or running."""
FLASH_COOKIE = "vf_flash"
FLASH_PATH = "/jobs"


def export_form(ws: Workspace, principal: Principal, dataset: str, version: str,
                filter: str) -> dict[str, Any] | None:
    """What the dataset browser's Export form needs, or None for a user who may not
    export the dataset (the form is not shown).

    Args:
        version: the version the page shows (the form exports exactly that version).
        filter: the page's filter (prefilled; empty when it did not parse).
    """
    from viewfinder.formats import registry
    from viewfinder.governance import policy
    from viewfinder.governance.roles import Action

    try:
        policy.decide(ws, principal, Action.DATASET_EXPORT, dataset=dataset)
    except (PermissionDenied, NotFound):
        return None
    return {"action": f"/datasets/{quote(dataset, safe='')}/exports", "ref": version,
            "filter": filter.strip(), "formats": registry.export_names()}


def _flash(kind: str, message: str, url: str = FLASH_PATH) -> Response:
    out = redirect(url)
    out.set_cookie(FLASH_COOKIE, json.dumps({"kind": kind, "message": message[:500]}),
                   max_age=60, httponly=True, samesite="strict", path=FLASH_PATH)
    return out


def _read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        value = json.loads(raw)
        return {"kind": "ok" if value.get("kind") == "ok" else "error",
                "message": str(value.get("message", ""))}
    except (ValueError, AttributeError):
        return None


@router.post("/datasets/{name}/exports")
async def start_export(request: Request, name: str, state: StateDep, page: PageUserDep,
                       _csrf: CsrfDep) -> Response:
    """Start an export from the browser's form; then the Jobs page."""
    from viewfinder.server import export_jobs

    form = await request.form()
    ref = str(form.get("ref") or "main").strip()[:200]
    fmt = str(form.get("format") or "").strip()[:50]
    filter = str(form.get("filter") or "").strip()[:10_000]
    export_jobs.authorize(state, page.principal, name, ref)  # a refusal is the 403/404 page
    if not fmt:
        return _flash("error", f"The export of {name} did not start: choose a format.")
    try:
        job = export_jobs.submit(state, page.principal, name, ref, fmt, filter or None,
                                 origin(request))
    except PermissionDenied:
        raise
    except FilterSyntaxError as e:
        return _flash("error", f"The export of {name} did not start: the filter has an error "
                               f"at column {max(1, e.column)}: {e.message}")
    except ViewfinderError as e:  # an unknown format, a ref gone meanwhile
        return _flash("error", f"The export of {name} did not start: {e}")
    return _flash("ok", f"Exporting {name} @ {job.params['version'][:12]} to {job.params['format']}"
                        f"{' (filtered)' if job.params['filter'] else ''}: job {job.id}.")


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, state: StateDep, page: PageUserDep,
              everyone: Annotated[bool, Query(alias="all")] = False,
              offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> Response:
    """The user's background jobs (everyone's for an administrator with ``?all=1``)."""
    from viewfinder.server import export_jobs

    found = export_jobs.list_jobs(state, page.principal, everyone=everyone, limit=PAGE_SIZE + 1,
                                  offset=offset)
    rows = [job.to_dict() | {"owner": owner} for job, owner in found[:PAGE_SIZE]]
    out = render(request, "jobs.html", {
        "jobs": rows, "everyone": everyone, "offset": offset, "page_size": PAGE_SIZE,
        "more": len(found) > PAGE_SIZE, "flash": _read_flash(request),
        "active_states": sorted(s.value for s in ACTIVE),
        "retention_days": state.settings.export_retention_days,
        "page_data": {"all": everyone, "offset": offset, "limit": PAGE_SIZE, "poll_ms": POLL_MS,
                      "username": page.principal.username},
    })
    if request.cookies.get(FLASH_COOKIE) is not None:
        out.delete_cookie(FLASH_COOKIE, path=FLASH_PATH)
    return out
