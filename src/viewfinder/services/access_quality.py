"""The policy-checked data-quality use cases: scans, findings, checks, releases,
predictions and similarity search, as every front door calls them on behalf of a principal.

The rules, on top of :mod:`viewfinder.services.access`:

- ``scan`` and ``import_predictions`` write derived data for the whole version: they need
  ``dataset.write`` without a slice.
- ``run_checks`` produces a report that lists failing ids anywhere in the dataset: it
  needs ``dataset.read`` without a slice; ``latest_report`` shows a sliced principal
  only the verdict and counts.
- ``release`` needs ``dataset.release`` without a slice.
- ``findings`` and ``similar`` are reads: a sliced principal gets only its samples.

Every run and release is an audit event.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from viewfinder.governance import audit
from viewfinder.governance.policy import Action, combine_filter
from viewfinder.governance.principal import Principal
from viewfinder.services import access
from viewfinder.storage.workspace import Workspace

if TYPE_CHECKING:
    from viewfinder.quality.context import Progress
    from viewfinder.quality.report import CheckReport
    from viewfinder.quality.suite import Suite
    from viewfinder.services.checks import Release
    from viewfinder.services.predictions import PredictionsResult
    from viewfinder.services.scan import ScanResult


def scan(ws: Workspace, principal: Principal, spec: str, detectors: list[str] | None = None,
         params: dict[str, dict[str, Any]] | None = None, progress: Progress | None = None, *,
         ip: str | None = None, user_agent: str | None = None) -> ScanResult:
    """Run detectors on a version and store their findings; audited as ``dataset.scan``."""
    from viewfinder.services import scan as scan_service

    at = access.whole_dataset(ws, principal, spec, "a scan")
    result = scan_service.scan(ws, f"{at.dataset.name}@{at.version.id}", detectors, params,
                               progress)
    audit.record(ws, principal, "dataset.scan", resource_kind="dataset",
                 resource_id=at.dataset.name, ip=ip, user_agent=user_agent,
                 details={"detectors": detectors, "params": params, "ref": at.ref},
                 after={"version": at.version.id})
    return result


def findings(ws: Workspace, principal: Principal, spec: str, kind: str | None = None,
             detector: str | None = None, limit: int | None = None, *,
             sample_id: str | None = None) -> list[dict[str, Any]]:
    """The stored findings of a version on the samples the principal may see (of one
    sample with ``sample_id``)."""
    from viewfinder.services import scan as scan_service

    at, grant = access.open_dataset(ws, principal, spec)
    only = access.ids_filter([sample_id]) if sample_id is not None else None
    return scan_service.findings(ws, f"{at.dataset.name}@{at.version.id}", kind, detector, limit,
                                 filter=combine_filter(grant.slice, only))


def run_checks(ws: Workspace, principal: Principal, spec: str, suite: Suite | None = None, *,
               pixels: bool = True, progress: Progress | None = None, ip: str | None = None,
               user_agent: str | None = None) -> CheckReport:
    """Run a check suite and store its report; audited as ``dataset.check``."""
    from viewfinder.services import checks

    at = access.whole_dataset(ws, principal, spec, "a check report", Action.DATASET_READ)
    report = checks.run_checks(ws, f"{at.dataset.name}@{at.version.id}", suite, pixels=pixels,
                               progress=progress, author=principal.username)
    audit.record(ws, principal, "dataset.check", resource_kind="dataset",
                 resource_id=at.dataset.name, ip=ip, user_agent=user_agent,
                 details={"suite": report.suite, "passed": report.passed, "ref": at.ref},
                 after={"version": at.version.id, "report": report.id})
    return report


def latest_report(ws: Workspace, principal: Principal, spec: str) -> dict[str, Any] | None:
    """The newest stored check report of the version ``spec`` names, as a dict (None if
    it was never checked).

    A principal limited to a slice gets only the verdict and the counts (``"sliced":
    true``): the per-check details name samples outside its slice.
    """
    from viewfinder.services import checks

    at, grant = access.open_dataset(ws, principal, spec)
    report = checks.latest_report(ws, at.dataset.name, at.version.id)
    if report is None:
        return None
    body = report.to_dict()
    if grant.slice is None:
        return body
    return {k: body[k] for k in ("id", "dataset", "version", "suite", "created_at") if k in body} | {
        "passed": report.passed, "counts": report.counts, "sliced": True}


def release(ws: Workspace, principal: Principal, spec: str, tag: str, *,
            suite: Suite | None = None, force: bool = False, reason: str | None = None,
            pixels: bool = True, progress: Progress | None = None, ip: str | None = None,
            user_agent: str | None = None) -> Release:
    """Release a version as a protected tag if its suite passes (see
    :func:`viewfinder.services.checks.release`); audited as ``dataset.release``, refusals
    included."""
    from viewfinder.errors import ReleaseBlocked
    from viewfinder.services import checks

    at = access.whole_dataset(ws, principal, spec, "a release", Action.DATASET_RELEASE)
    details: dict[str, Any] = {"tag": tag, "ref": at.ref, "force": force, "reason": reason}
    try:
        rel = checks.release(ws, f"{at.dataset.name}@{at.version.id}", tag, suite=suite,
                             force=force, reason=reason, author=principal.username,
                             pixels=pixels, progress=progress)
    except ReleaseBlocked:
        audit.record(ws, principal, "dataset.release_blocked", resource_kind="dataset",
                     resource_id=at.dataset.name, ip=ip, user_agent=user_agent, details=details,
                     after={"version": at.version.id})
        raise
    audit.record(ws, principal, "dataset.release", resource_kind="dataset",
                 resource_id=at.dataset.name, ip=ip, user_agent=user_agent,
                 details={**details, "forced": rel.forced}, after={"version": at.version.id})
    return rel


def import_predictions(ws: Workspace, principal: Principal, spec: str, source_file: str | Path, *,
                       model: str, format: Literal["coco-results", "classification-csv"] = "coco-results",
                       annotations: str | Path | None = None,
                       on_error: Literal["fail", "skip"] = "fail", message: str | None = None,
                       ip: str | None = None, user_agent: str | None = None) -> PredictionsResult:
    """Commit a model's predictions as labels; audited as ``dataset.import_predictions``."""
    from viewfinder.services import predictions

    at = access.whole_dataset(ws, principal, spec, "importing predictions")
    with access.audited_commit(ws, principal, "dataset.import_predictions", at,
                               {"model": model, "format": format, "file": str(source_file)},
                               ip, user_agent):
        return predictions.import_predictions(ws, spec, source_file, model=model, format=format,
                                              annotations=annotations, on_error=on_error,
                                              message=message, author=principal.username)


def similar(ws: Workspace, principal: Principal, spec: str, sample_id: str, k: int = 10,
            provider: str = "builtin", *, model: str | None = None,
            progress: Progress | None = None) -> list[dict[str, Any]]:
    """The ``k`` visible samples nearest to a visible sample (see
    :func:`viewfinder.services.similar.similar`)."""
    from viewfinder.services.similar import similar as similar_service

    at, grant = access.open_dataset(ws, principal, spec)
    return similar_service(ws, f"{at.dataset.name}@{at.version.id}", sample_id, k, provider,
                           model=model, progress=progress,
                           filter=combine_filter(grant.slice, None))
