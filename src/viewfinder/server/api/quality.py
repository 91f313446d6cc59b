"""``/api/v1/datasets/{name}/findings`` and ``.../checks/latest``: a version's data-quality
findings (from the detectors' scan) and its newest check report, under the same access
check as browsing the dataset. A caller limited to a slice sees only the findings on its
samples, and of a check report only the outcome and counts (the per-check details name
samples outside the slice)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from viewfinder.server.deps import UserDep, WorkspaceDep

router = APIRouter(prefix="/datasets", tags=["quality"])


@router.get("/{name}/findings")
def findings(name: str, ws: WorkspaceDep, principal: UserDep,
             ref: Annotated[str, Query(max_length=200)] = "main",
             kind: Annotated[str | None, Query(max_length=100)] = None,
             detector: Annotated[str | None, Query(max_length=100)] = None,
             limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
    """Findings of the version, highest score first (empty if it was never scanned)."""
    from viewfinder.services import access, access_quality

    at, _grant = access.open_dataset(ws, principal, f"{name}@{ref}")
    pinned = f"{name}@{at.version.id}"
    rows = access_quality.findings(ws, principal, pinned, kind=kind, detector=detector, limit=limit)
    return {"dataset": name, "version": at.version.id, "findings": rows}


@router.get("/{name}/checks/latest")
def latest_check_report(name: str, ws: WorkspaceDep, principal: UserDep,
                        ref: Annotated[str, Query(max_length=200)] = "main") -> dict[str, Any]:
    """The newest check report of the version; ``report`` is null if none was run."""
    from viewfinder.services import access, access_quality

    at, _grant = access.open_dataset(ws, principal, f"{name}@{ref}")
    report = access_quality.latest_report(ws, principal, f"{name}@{at.version.id}")
    return {"dataset": name, "version": at.version.id, "report": report}
