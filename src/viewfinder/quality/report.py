"""Check reports: what a suite found on one dataset version, as data, JSON and JUnit XML.

A :class:`CheckReport` holds one :class:`CheckOutcome` per check of the suite. An outcome
is ``passed``, ``failed``, ``skipped`` (the check needs pixels and the suite ran without)
or ``error`` (the check could not run, e.g. a detector's optional dependency is missing).
The report *passes* when no ``error``-severity check failed or errored; warnings and info
are shown, never blocking.

JUnit XML (one ``<testcase>`` per check) lets any CI gate on the report: error-severity
failures are ``<failure>``, errors are ``<error>``, skipped checks ``<skipped>``, and a
failing warning or info check passes with its message in ``<system-out>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from viewfinder.quality.checks.result import CheckResult

Status = Literal["passed", "failed", "skipped", "error"]


@dataclass(frozen=True)
class CheckOutcome:
    """One check of a suite on one version."""

    name: str
    check: str
    severity: str
    filter: str | None
    params: dict[str, Any]          # the effective parameters (defaults filled in)
    status: Status
    seconds: float
    result: CheckResult | None = None
    error: str | None = None        # why it was skipped or could not run

    @property
    def blocking(self) -> bool:
        """Whether this outcome fails the report (an error-severity failure or error)."""
        return self.severity == "error" and self.status in ("failed", "error")

    @property
    def message(self) -> str:
        return self.result.message if self.result is not None else (self.error or "")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "check": self.check, "severity": self.severity,
                "filter": self.filter, "params": self.params, "status": self.status,
                "seconds": round(self.seconds, 4), "error": self.error,
                "result": self.result.to_dict() if self.result is not None else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckOutcome:
        return cls(name=d["name"], check=d["check"], severity=d["severity"], filter=d["filter"],
                   params=d["params"], status=d["status"], seconds=float(d["seconds"]),
                   result=CheckResult.from_dict(d["result"]) if d.get("result") else None,
                   error=d.get("error"))


@dataclass(frozen=True)
class CheckReport:
    """A suite's outcomes on one dataset version."""

    dataset: str
    version: str
    ref: str
    suite: str
    suite_hash: str
    outcomes: list[CheckOutcome]
    created_at: datetime
    pixels: bool = True
    id: str | None = None           # the catalog row, once stored
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not any(o.blocking for o in self.outcomes)

    @property
    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "skipped": 0, "error": 0, "blocking": 0}
        for o in self.outcomes:
            out[o.status] += 1
            out["blocking"] += int(o.blocking)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "dataset": self.dataset, "version": self.version, "ref": self.ref,
                "suite": self.suite, "suite_hash": self.suite_hash, "passed": self.passed,
                "counts": self.counts, "pixels": self.pixels,
                "created_at": self.created_at.isoformat(), "seconds": round(self.seconds, 3),
                "checks": [o.to_dict() for o in self.outcomes], **({"extra": self.extra} if self.extra else {})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckReport:
        return cls(dataset=d["dataset"], version=d["version"], ref=d["ref"], suite=d["suite"],
                   suite_hash=d["suite_hash"], outcomes=[CheckOutcome.from_dict(o) for o in d["checks"]],
                   created_at=datetime.fromisoformat(d["created_at"]), pixels=bool(d.get("pixels", True)),
                   id=d.get("id"), seconds=float(d.get("seconds", 0.0)), extra=dict(d.get("extra", {})))


def junit_xml(report: CheckReport) -> str:
    """The report as JUnit XML (``<testsuites>`` with one ``<testsuite>``)."""
    import xml.etree.ElementTree as ET

    c = report.counts
    failures = sum(1 for o in report.outcomes if o.severity == "error" and o.status == "failed")
    errors = sum(1 for o in report.outcomes if o.severity == "error" and o.status == "error")
    root = ET.Element("testsuites", name=f"viewfinder check {report.dataset}")
    ts = ET.SubElement(root, "testsuite", {
        "name": f"{report.dataset}@{report.ref} ({report.suite})", "tests": str(len(report.outcomes)),
        "failures": str(failures), "errors": str(errors), "skipped": str(c["skipped"]),
        "time": f"{report.seconds:.3f}", "timestamp": report.created_at.isoformat()})
    props = ET.SubElement(ts, "properties")
    for k, v in (("dataset", report.dataset), ("version", report.version), ("ref", report.ref),
                 ("suite", report.suite), ("suite_hash", report.suite_hash)):
        ET.SubElement(props, "property", name=k, value=v)
    for o in report.outcomes:
        tc = ET.SubElement(ts, "testcase", {"classname": f"viewfinder.{report.dataset}.{o.check}",
                                            "name": o.name, "time": f"{o.seconds:.3f}"})
        body = _failure_text(o)
        if o.status == "skipped":
            ET.SubElement(tc, "skipped", message=o.message)
        elif o.blocking and o.status == "error":
            ET.SubElement(tc, "error", message=o.message, type="CheckError").text = body
        elif o.blocking:
            ET.SubElement(tc, "failure", message=o.message, type=f"{o.check} failed").text = body
        elif o.status in ("failed", "error"):
            ET.SubElement(tc, "system-out").text = f"[{o.severity}] {o.status}: {body}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _failure_text(o: CheckOutcome) -> str:
    lines = [o.message]
    r = o.result
    if r is not None:
        lines.append(f"value: {r.value}  threshold: {r.threshold}")
        if r.sample_count:
            lines.append(f"failing samples ({r.sample_count}): {' '.join(r.sample_ids)}"
                         + (" ..." if r.sample_count > len(r.sample_ids) else ""))
        if r.label_count:
            lines.append(f"failing labels ({r.label_count}): {' '.join(r.label_ids)}"
                         + (" ..." if r.label_count > len(r.label_ids) else ""))
    return "\n".join(lines)
