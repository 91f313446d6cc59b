"""``/api/v1/labeling``: the caller's labeling queue (labelers see only their own tasks)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from viewfinder.server.deps import UserDep, WorkspaceDep

router = APIRouter(prefix="/labeling", tags=["labeling"])


@router.get("/queue")
def queue(ws: WorkspaceDep, principal: UserDep) -> dict[str, Any]:
    """The tasks assigned to the caller, oldest first."""
    from viewfinder.services import access

    return {"tasks": access.labeling_queue(ws, principal)}
