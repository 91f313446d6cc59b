"""Who may call which route: the expectations the authorization matrix checks.

One entry per ``(method, path template)`` of the app's route table. ``allowed`` lists the
principals that get a 2xx; everyone else is denied, with the status ``deny`` says:

* ``READ``: a dataset a principal may not read does not exist for it (404);
* ``WRITE``: it may read but not change (403), or cannot read at all (404);
* ``ADMIN``: an organization-level action (403 for any signed-in user without the role);
* anonymous callers of the API always get 401 (the UI redirects them to sign in).

A route that is missing here fails the matrix test: adding a route means deciding who may
call it. The web UI's routes are listed in :data:`UI_RULES` by the UI's author.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROLES_ALL = frozenset({"head_of_dataops", "labeling_manager", "data_engineer", "curator",
                       "labeler", "viewer", "curator_apac"})
READERS = frozenset({"head_of_dataops", "labeling_manager", "data_engineer", "curator",
                     "viewer", "curator_apac"})
WRITERS = frozenset({"head_of_dataops", "data_engineer", "curator", "curator_apac"})
EXPORTERS = WRITERS
ADMINS = frozenset({"head_of_dataops"})
QUEUE = frozenset({"head_of_dataops", "labeling_manager", "labeler"})
EVERYONE = ROLES_ALL | {"anonymous"}


@dataclass(frozen=True)
class Rule:
    """``allowed``: who gets a 2xx. ``deny``: the statuses a denied signed-in caller may get."""

    allowed: frozenset[str]
    deny: frozenset[int] = frozenset({404})


READ = frozenset({404})
WRITE = frozenset({403, 404})
ADMIN = frozenset({403})
OWN = frozenset({404})  # someone else's job is not found

API_RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): Rule(EVERYONE),
    ("GET", "/api/v1/openapi.json"): Rule(EVERYONE),
    ("GET", "/api/v1/docs"): Rule(EVERYONE),
    ("GET", "/api/v1/docs/swagger-ui.css"): Rule(EVERYONE),  # Swagger UI, served by the server
    ("GET", "/api/v1/docs/swagger-ui-bundle.js"): Rule(EVERYONE),
    # auth
    ("POST", "/api/v1/auth/login"): Rule(EVERYONE),
    ("POST", "/api/v1/auth/logout"): Rule(ROLES_ALL),
    ("GET", "/api/v1/me"): Rule(ROLES_ALL),
    # datasets (a labeler reads no dataset: its list is empty, everything else 404)
    ("GET", "/api/v1/datasets"): Rule(ROLES_ALL),
    ("GET", "/api/v1/datasets/{name}/versions"): Rule(READERS, READ),
    ("GET", "/api/v1/datasets/{name}/samples"): Rule(READERS, READ),
    ("GET", "/api/v1/datasets/{name}/stats"): Rule(READERS, READ),
    ("GET", "/api/v1/datasets/{name}/samples/{sample_id}"): Rule(READERS, READ),
    ("GET", "/api/v1/datasets/{name}/samples/{sample_id}/image"): Rule(READERS, READ),
    ("GET", "/api/v1/datasets/{name}/samples/{sample_id}/thumbnail"): Rule(READERS, READ),
    ("GET", "/api/v1/datasets/{name}/diff"): Rule(READERS, READ),
    ("POST", "/api/v1/datasets/{name}/samples/tags"): Rule(WRITERS, WRITE),
    # quality
    ("GET", "/api/v1/datasets/{name}/findings"): Rule(READERS, READ),
    ("GET", "/api/v1/datasets/{name}/checks/latest"): Rule(READERS, READ),
    # exports and jobs (a job is its owner's only)
    ("POST", "/api/v1/datasets/{name}/exports"): Rule(EXPORTERS, WRITE),
    ("GET", "/api/v1/jobs"): Rule(ROLES_ALL),  # one's own (none: an empty list)
    ("GET", "/api/v1/jobs/{job_id}"): Rule(EXPORTERS, OWN),
    ("GET", "/api/v1/jobs/{job_id}/download"): Rule(EXPORTERS, OWN),
    # administration
    ("GET", "/api/v1/admin/users"): Rule(ADMINS, ADMIN),
    ("POST", "/api/v1/admin/users"): Rule(ADMINS, ADMIN),
    ("GET", "/api/v1/admin/role-bindings"): Rule(ROLES_ALL),  # others see only their own
    ("POST", "/api/v1/admin/role-bindings"): Rule(ADMINS, ADMIN),
    ("POST", "/api/v1/admin/role-bindings/revoke"): Rule(ADMINS, ADMIN),
    ("GET", "/api/v1/admin/audit"): Rule(ADMINS, ADMIN),
    ("GET", "/api/v1/admin/audit/verify"): Rule(ADMINS, ADMIN),
    ("GET", "/api/v1/admin/audit/export"): Rule(ADMINS, ADMIN),
    # the caller's own API tokens
    ("GET", "/api/v1/tokens"): Rule(ROLES_ALL),
    ("POST", "/api/v1/tokens"): Rule(ROLES_ALL),
    ("DELETE", "/api/v1/tokens/{token_id}"): Rule(ROLES_ALL, OWN),
    # labeling
    ("GET", "/api/v1/labeling/queue"): Rule(QUEUE, ADMIN),
}

UI_RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/login"): Rule(EVERYONE),
    ("POST", "/login"): Rule(EVERYONE),  # a wrong or empty sign-in shows the form again
    ("GET", "/"): Rule(ROLES_ALL),  # datasets, or a labeler's (empty) task queue
    ("GET", "/datasets/{name}"): Rule(READERS, READ),
    ("GET", "/datasets/{name}/samples/{sample_id}"): Rule(READERS, READ),
    ("GET", "/datasets/{name}/versions"): Rule(READERS, READ),
    ("GET", "/datasets/{name}/diff"): Rule(READERS, READ),
    ("GET", "/datasets/{name}/quality"): Rule(READERS, READ),
    ("POST", "/datasets/{name}/exports"): Rule(EXPORTERS, WRITE),  # the browser's Export form
    ("GET", "/jobs"): Rule(ROLES_ALL),  # one's own jobs
    **{(m, f"/admin/{p}"): Rule(ADMINS, ADMIN) for m, p in (
        ("GET", "users"), ("POST", "users"), ("POST", "users/{username}/deactivate"),
        ("GET", "teams"), ("POST", "teams"), ("POST", "projects"), ("GET", "bindings"),
        ("POST", "bindings"), ("POST", "bindings/revoke"), ("GET", "tokens"), ("POST", "tokens"),
        ("POST", "tokens/{token_id}/revoke"), ("GET", "audit"), ("GET", "audit.jsonl"))},
    # the stylesheet and ES modules, one route per file (the sign-in page needs them)
    **{("GET", f"/static/{f}"): Rule(EVERYONE) for f in sorted(
        p.name for p in (Path(__file__).resolve().parents[3] / "src/viewfinder/server/static").iterdir())},
}
"""The web UI's routes (added by the UI's author). A denied UI read answers 404; an
anonymous visitor gets the sign-in form in place (401) instead of the page."""

RULES: dict[tuple[str, str], Rule] = {**API_RULES, **UI_RULES}
