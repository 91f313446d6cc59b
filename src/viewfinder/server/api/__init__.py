"""The REST API (``/api/v1``): one router per resource, every route a thin call into
``viewfinder.services`` (which check access and write the audit log).

Every route except sign-in runs the CSRF check (:func:`viewfinder.server.deps.check_csrf`):
it is attached where the routers are included, so a new mutation cannot forget it. Sign-in
is exempt: it is what hands out the token (a stale session cookie must not block it).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from viewfinder.server.api import admin, auth, datasets, exports, labeling, quality
from viewfinder.server.api.schemas import ErrorResponse
from viewfinder.server.deps import check_csrf

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 429)}

router = APIRouter(prefix="/api/v1", responses=_ERRORS)
router.include_router(auth.sign_in_router)
for _module in (auth, datasets, exports, quality, admin, labeling):
    router.include_router(_module.router, dependencies=[Depends(check_csrf)])

__all__ = ["router"]
