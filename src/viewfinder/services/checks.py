"""Run check suites on dataset versions, keep their reports, and gate releases on them.

Which suite runs: the one passed in (``--suite FILE``), else the dataset's stored suite,
else :func:`~viewfinder.quality.suite.default_suite`. A stored suite is saved with
:func:`save_suite` (``viewfinder check NAME --suite FILE --save-suite``) as a Run of the
operation ``save-suite`` whose parameters hold the suite: so every change of a dataset's
suite is kept with its author and time (the suite's history is the list of those runs),
and no extra table is needed. The YAML file itself belongs in the project's repository.

Every report is stored in ``check_reports`` with the Run that produced it; ``log`` shows
the newest report and the releases of each version.

A release (:func:`release`) runs the suite on the version and, when no error-severity
check fails, creates a *protected* tag and a ``releases`` row in one catalog
transaction. Tags are never moved or deleted (``versions.tag`` refuses a taken name), so
a release stays pinned to its version. A failing suite raises
:class:`~viewfinder.errors.ReleaseBlocked` carrying the report, unless ``force`` is given
with a non-empty ``reason``, which is recorded with the release.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from viewfinder.errors import (
    AlreadyExists,
    InvalidInput,
    ReleaseBlocked,
    ViewfinderError,
)
from viewfinder.quality.context import Progress, QualityContext
from viewfinder.quality.report import CheckOutcome, CheckReport
from viewfinder.quality.suite import Suite, default_suite, suite_hash
from viewfinder.services import versions as vs
from viewfinder.storage.catalog import check_reports, new_id, releases, runs, utcnow
from viewfinder.storage.workspace import Workspace

log = logging.getLogger(__name__)
SAVE_SUITE = "save-suite"


@dataclass(frozen=True)
class Release:
    """A release: a protected tag on a version, with the report that allowed it."""

    dataset: str
    tag: str
    version_id: str
    report: CheckReport
    forced: bool
    reason: str | None
    author: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "tag": self.tag, "version": self.version_id,
                "forced": self.forced, "reason": self.reason, "author": self.author,
                "created_at": self.created_at.isoformat(), "report": self.report.id,
                "passed": self.report.passed}


# -- suites ------------------------------------------------------------------------------

def save_suite(ws: Workspace, dataset: str, suite: Suite, *, author: str | None = None) -> str:
    """Store ``suite`` as the dataset's suite; returns the id of the Run that records it."""
    ds = ws.catalog.get_dataset(dataset)
    run_id = ws.catalog.start_run(dataset_id=ds.id, operation=SAVE_SUITE,
                                  params={"suite": suite.model_dump(mode="json"), "hash": suite_hash(suite)},
                                  author=author or vs.current_user(), code_version=vs.code_version())
    ws.catalog.finish_run(run_id, status="succeeded", outputs={"suite": suite.name})
    return run_id


def stored_suite(ws: Workspace, dataset: str) -> Suite | None:
    """The dataset's newest stored suite, if one was saved."""
    ds = ws.catalog.get_dataset(dataset)
    with ws.catalog.engine.connect() as c:
        row = c.execute(sa.select(runs.c.params).where(
            runs.c.dataset_id == ds.id, runs.c.operation == SAVE_SUITE, runs.c.status == "succeeded")
            .order_by(runs.c.started_at.desc()).limit(1)).first()
    return Suite.model_validate(row.params["suite"]) if row else None


def suite_for(ws: Workspace, at: vs.DatasetAt, suite: Suite | None = None) -> Suite:
    """The suite to run: ``suite``, else the stored one, else the default."""
    if suite is not None:
        return suite
    stored = stored_suite(ws, at.dataset.name)
    if stored is not None:
        return stored
    return default_suite(list(at.version.summary.get("class_list") or at.dataset.classes))


# -- running -----------------------------------------------------------------------------

def _run_one(ctx: QualityContext, spec: Any, *, pixels: bool) -> CheckOutcome:
    from viewfinder.quality import checks

    check = checks.get(spec.check)
    config = spec.config()
    t0 = time.perf_counter()
    if not pixels:
        reduced = check.without_pixels(config)
        if reduced is None:
            return CheckOutcome(spec.name, spec.check, spec.severity, spec.filter,
                                config.model_dump(mode="json"), "skipped", 0.0,
                                error="needs pixels; the suite ran without them")
        config = reduced
    params = config.model_dump(mode="json")
    try:
        result = check.run(ctx, config, spec.filter)
    except ImportError as e:   # an optional dependency of a detector (or the detector itself)
        return CheckOutcome(spec.name, spec.check, spec.severity, spec.filter, params, "error",
                            time.perf_counter() - t0, error=f"cannot run: {e}")
    except ViewfinderError as e:
        return CheckOutcome(spec.name, spec.check, spec.severity, spec.filter, params, "error",
                            time.perf_counter() - t0, error=str(e))
    status = "skipped" if not result.applicable else "passed" if result.passed else "failed"
    return CheckOutcome(spec.name, spec.check, spec.severity, spec.filter, params, status,
                        time.perf_counter() - t0, result, error=None if result.applicable else result.message)


def run_checks(ws: Workspace, spec: str, suite: Suite | None = None, *, pixels: bool = True,
               progress: Progress | None = None, author: str | None = None) -> CheckReport:
    """Run a suite on ``NAME[@REF]`` and store the report (with a Run).

    Args:
        ws: the open workspace.
        spec: ``NAME`` or ``NAME@REF``.
        suite: the suite (default: the dataset's stored suite, else the default suite).
        pixels: ``False`` skips what reads images (decoding, near duplicates, detectors);
            checks that can run without pixels run reduced, the rest are ``skipped``.
        progress: ``progress(stage, done, total)``; the stage is the check's name.
        author: who ran it (default: the current user).

    Returns:
        The stored report; ``report.passed`` is False when an error-severity check failed.
    """
    return _run(ws, vs.resolve(ws, spec), suite, pixels=pixels, progress=progress, author=author)


def _run(ws: Workspace, at: vs.DatasetAt, suite: Suite | None, *, pixels: bool,
         progress: Progress | None, author: str | None) -> CheckReport:
    suite = suite_for(ws, at, suite)
    digest = suite_hash(suite)
    author = author or vs.current_user()
    run_id = ws.catalog.start_run(
        dataset_id=at.dataset.id, operation="check",
        params={"version": at.version.id, "ref": at.ref, "suite": suite.name, "suite_hash": digest,
                "pixels": pixels}, author=author, code_version=vs.code_version())
    t0 = time.perf_counter()
    outcomes: list[CheckOutcome] = []
    note = progress or (lambda stage, done, total: None)
    try:
        with QualityContext(ws, at, progress=progress) as ctx:
            for i, spec in enumerate(suite.checks):
                note(spec.name, i, len(suite.checks))
                outcomes.append(_run_one(ctx, spec, pixels=pixels))
                log.debug("check %s: %s in %.2f s", spec.name, outcomes[-1].status, outcomes[-1].seconds)
            note("done", len(suite.checks), len(suite.checks))
    except Exception as e:
        ws.catalog.finish_run(run_id, status="failed", error=str(e))
        raise
    report = CheckReport(dataset=at.dataset.name, version=at.version.id, ref=at.ref, suite=suite.name,
                         suite_hash=digest, outcomes=outcomes, created_at=utcnow(), pixels=pixels,
                         id=new_id(), seconds=time.perf_counter() - t0)
    with ws.catalog.write() as c:
        c.execute(check_reports.insert().values(
            id=report.id, dataset_id=at.dataset.id, version_id=at.version.id, suite_name=suite.name,
            suite_hash=digest, passed=report.passed, counts=report.counts, report=report.to_dict(),
            run_id=run_id, author=author, created_at=report.created_at))
    ws.catalog.finish_run(run_id, status="succeeded",
                          outputs={"report": report.id, "passed": report.passed, "counts": report.counts})
    return report


def latest_report(ws: Workspace, dataset: str, version_id: str) -> CheckReport | None:
    """The newest stored report of a version (``version_id`` may be a ref)."""
    at = vs.resolve(ws, f"{dataset}@{version_id}")
    with ws.catalog.engine.connect() as c:
        row = c.execute(sa.select(check_reports.c.report).where(
            check_reports.c.dataset_id == at.dataset.id, check_reports.c.version_id == at.version.id)
            .order_by(check_reports.c.created_at.desc()).limit(1)).first()
    return CheckReport.from_dict(row.report) if row else None


# -- releases ----------------------------------------------------------------------------

def release(ws: Workspace, spec: str, tag: str, *, suite: Suite | None = None, force: bool = False,
            reason: str | None = None, author: str | None = None, pixels: bool = True,
            progress: Progress | None = None) -> Release:
    """Release ``NAME@REF`` as the protected tag ``tag`` if the suite passes.

    Raises:
        InvalidInput: ``force`` without a non-empty ``reason``, or a bad tag name.
        AlreadyExists: the tag name is taken (tags never move).
        ReleaseBlocked: an error-severity check failed and ``force`` was not given; the
            error carries the report (it is stored too).
    """
    vs.check_name("tag", tag)
    reason = reason.strip() if reason else None
    if force and not reason:
        raise InvalidInput("a forced release needs a reason (--reason TEXT): it is recorded with the release")
    at = vs.resolve(ws, spec)
    if ws.catalog.get_ref(at.dataset.id, tag) is not None:
        raise AlreadyExists(f"a branch or tag named {tag!r} already exists in {at.dataset.name!r}",
                            dataset=at.dataset.name)
    author = author or vs.current_user()
    report = _run(ws, at, suite, pixels=pixels, progress=progress, author=author)
    if not report.passed and not force:
        failing = [o.name for o in report.outcomes if o.blocking]
        raise ReleaseBlocked(
            f"release {tag} of {at.dataset.name}@{at.ref} blocked: {len(failing)} error-severity "
            f"check(s) failed: {', '.join(failing)} (fix them, or --force --reason TEXT)",
            report=report.to_dict(), dataset=at.dataset.name)
    forced = not report.passed
    now = utcnow()
    with ws.catalog.dataset_lock(at.dataset.id) as c:
        ws.catalog.set_ref(c, at.dataset.id, tag, "tag", at.version.id, protected=True, create=True)
        c.execute(releases.insert().values(
            dataset_id=at.dataset.id, tag=tag, version_id=at.version.id, check_report_id=report.id,
            forced=forced, reason=reason, author=author, created_at=now))
    return Release(at.dataset.name, tag, at.version.id, report, forced, reason, author, now)


def version_quality(ws: Workspace, dataset: str) -> dict[str, dict[str, Any]]:
    """Per version id: its newest check report (``check``) and its ``releases``, for ``log``."""
    ds = ws.catalog.get_dataset(dataset)
    out: dict[str, dict[str, Any]] = {}
    with ws.catalog.engine.connect() as c:
        for r in c.execute(sa.select(check_reports.c.version_id, check_reports.c.passed,
                                     check_reports.c.suite_name, check_reports.c.counts,
                                     check_reports.c.created_at, check_reports.c.id)
                           .where(check_reports.c.dataset_id == ds.id)
                           .order_by(check_reports.c.created_at)):
            out.setdefault(r.version_id, {})["check"] = {
                "report": r.id, "passed": r.passed, "suite": r.suite_name, "counts": r.counts,
                "created_at": r.created_at.isoformat()}
        for r in c.execute(sa.select(releases).where(releases.c.dataset_id == ds.id)
                           .order_by(releases.c.created_at)):
            out.setdefault(r.version_id, {}).setdefault("releases", []).append({
                "tag": r.tag, "forced": r.forced, "reason": r.reason, "author": r.author,
                "report": r.check_report_id, "created_at": r.created_at.isoformat()})
    return out
