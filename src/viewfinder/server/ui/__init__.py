"""The web UI: pages rendered on the server (Jinja2, autoescaped) with small vanilla ES
modules from ``/static`` for the interactive parts (virtualized grid, label overlays,
history graph). ``create_app`` includes :data:`router`.

Pages: ``/`` (datasets, or a labeler's task queue), ``/login``, ``/datasets/{name}``
(browser), ``.../samples/{id}`` (sample detail), ``.../versions``, ``.../diff``,
``.../quality``, and ``/admin/...`` (users, teams, role bindings, API tokens, audit log).
Every page reads through ``services.access`` with the signed-in user's principal.
"""

from __future__ import annotations

from fastapi import APIRouter

from viewfinder.server.ui import pages_admin, pages_auth, pages_datasets
from viewfinder.server.ui.common import static_files, static_route

router = APIRouter(include_in_schema=False)
for _module in (pages_auth, pages_datasets, pages_admin):
    router.include_router(_module.router)
for _name in static_files():
    router.add_api_route(f"/static/{_name}", static_route(_name), methods=["GET"],
                         include_in_schema=False)

__all__ = ["router"]
