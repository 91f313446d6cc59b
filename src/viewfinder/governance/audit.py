"""The audit log: append-only, hash-chained, shared by every process.

Every event's ``hash`` is the SHA-256 of its canonical content (seq, time, actor, action,
resource, origin, details, before, after) followed by the previous event's hash, so
editing, deleting or re-ordering any stored event breaks the chain from that event on,
and :func:`verify` names the first bad ``seq``.

Appends are serialized by the single ``audit_head`` row: a writer first updates that row
(a row lock on PostgreSQL, the write lock on SQLite), reads the last seq and hash, inserts
the event with ``seq + 1`` and moves the head, all in one transaction. Concurrent writers
on any number of processes queue on the lock, so the chain never forks and seq has no
gaps; and since the head records the last seq and hash, deleting the newest events is
detected too.

Example:
    >>> ev = record(ws, SYSTEM, "dataset.export", resource_kind="dataset",
    ...             resource_id="street")                                   # doctest: +SKIP
    >>> verify(ws).ok                                                       # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from viewfinder.errors import InvalidInput, StorageError
from viewfinder.governance.principal import Principal
from viewfinder.storage.catalog import audit_events, audit_head, utcnow
from viewfinder.storage.workspace import Workspace

GENESIS_HASH = "0" * 64
_BATCH = 1000


@dataclass(frozen=True)
class AuditEvent:
    """One stored event. ``before``/``after`` hold ids (e.g. version ids), not data."""

    seq: int
    at: datetime
    actor: str
    action: str
    resource_kind: str
    resource_id: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any] | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["at"] = _iso(self.at)
        return d


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify`: ``ok``, how many events were checked, and where the
    chain first breaks (``bad_seq``) with the reason."""

    ok: bool
    events: int
    bad_seq: int | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AuditFilter:
    """Which events :func:`query` returns; every field is optional."""

    actor: str | None = None
    action: str | None = None        # exact, or a prefix ending in "." ("auth.")
    since: datetime | None = None
    until: datetime | None = None
    resource_kind: str | None = None
    resource_id: str | None = None


def _iso(at: datetime) -> str:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _utc(at: datetime) -> datetime:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


def _plain(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """``value`` as it will read back from the JSON column (so the hash is reproducible)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("audit details, before and after must be JSON objects")
    return json.loads(json.dumps(value, default=str))


def event_hash(content: dict[str, Any], prev_hash: str) -> str:
    """SHA-256 over the canonical JSON of an event's content and the previous hash."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{canonical}\n{prev_hash}".encode()).hexdigest()


def _content(seq: int, at: datetime, actor: str, action: str, resource_kind: str,
             resource_id: str | None, ip: str | None, user_agent: str | None,
             details: dict[str, Any] | None, before: dict[str, Any] | None,
             after: dict[str, Any] | None) -> dict[str, Any]:
    return {"seq": seq, "at": _iso(at), "actor": actor, "action": action,
            "resource_kind": resource_kind, "resource_id": resource_id, "ip": ip,
            "user_agent": user_agent, "details": details, "before": before, "after": after}


def lock_head(c: Connection) -> tuple[int, str]:
    """Take the chain lock inside transaction ``c``; the last ``(seq, hash)``.

    The update comes first so SQLite takes its write lock before reading (a read first
    could not be upgraded under concurrency). Other governance writes that must be
    serialized with the log (the first-admin bootstrap) take this lock too.
    """
    updated = c.execute(audit_head.update().where(audit_head.c.id == 1)
                        .values(seq=audit_head.c.seq)).rowcount
    if not updated:  # a catalog whose head row was removed: start it again at the tail
        last = c.execute(sa.select(audit_events.c.seq, audit_events.c.hash)
                         .order_by(audit_events.c.seq.desc()).limit(1)).first()
        c.execute(audit_head.insert().values(id=1, seq=last.seq if last else 0,
                                             hash=last.hash if last else GENESIS_HASH))
    row = c.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    return int(row.seq), row.hash


def record(ws: Workspace, principal: Principal, action: str, *, resource_kind: str,
           resource_id: str | None, ip: str | None = None, user_agent: str | None = None,
           details: dict[str, Any] | None = None, before: dict[str, Any] | None = None,
           after: dict[str, Any] | None = None, conn: Connection | None = None) -> AuditEvent:
    """Append one event to the chain.

    Args:
        ws: the workspace.
        principal: who acted (its ``username`` is recorded as the actor).
        action: what was done, dotted (``auth.login``, ``dataset.export``, ``role.grant``).
        resource_kind: ``dataset``, ``user``, ``role_binding``, ``token``, ...
        resource_id: which one (a name or id).
        ip: where the request came from, when known.
        user_agent: the client's user agent, when known.
        details: anything else worth keeping (a JSON object).
        before: ids before the change (e.g. ``{"version": ...}``).
        after: ids after the change.
        conn: the caller's open transaction, to make the event atomic with the change it
            records (the event then commits or rolls back with it).

    Returns:
        The stored event with its seq and hash.
    """
    details, before, after = _plain(details), _plain(before), _plain(after)
    # client-supplied text is bounded to the column sizes (a long user agent is no error)
    ip, user_agent = (ip or None) and ip[:64], (user_agent or None) and user_agent[:500]
    resource_id = resource_id if resource_id is None else resource_id[:300]
    at = utcnow()

    def append(c: Connection) -> AuditEvent:
        seq, prev = lock_head(c)
        seq += 1
        content = _content(seq, at, principal.username, action, resource_kind, resource_id,
                           ip, user_agent, details, before, after)
        h = event_hash(content, prev)
        c.execute(audit_events.insert().values(
            seq=seq, at=at, actor=principal.username, action=action,
            resource_kind=resource_kind, resource_id=resource_id, ip=ip,
            user_agent=user_agent, details=details, before=before, after=after,
            prev_hash=prev, hash=h))
        c.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=h))
        return AuditEvent(seq, at, principal.username, action, resource_kind, resource_id,
                          ip, user_agent, details, before, after, prev, h)

    if conn is not None:
        return append(conn)
    try:
        with ws.catalog.write() as c:
            return append(c)
    except sa.exc.OperationalError as e:
        raise StorageError(f"could not append to the audit log: {e.orig}") from e


def _event(row: Any) -> AuditEvent:
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    return AuditEvent(int(row.seq), at.astimezone(UTC), row.actor, row.action, row.resource_kind,
                      row.resource_id, row.ip, row.user_agent, row.details, row.before,
                      row.after, row.prev_hash, row.hash)


def _scan(ws: Workspace, where: list[Any]) -> Iterator[AuditEvent]:
    """Events in seq order, read in batches (the log can be long)."""
    after = 0
    while True:
        with ws.catalog.engine.connect() as c:
            rows = c.execute(sa.select(audit_events).where(audit_events.c.seq > after, *where)
                             .order_by(audit_events.c.seq).limit(_BATCH)).all()
        for r in rows:
            yield _event(r)
        if len(rows) < _BATCH:
            return
        after = int(rows[-1].seq)


def verify(ws: Workspace) -> VerifyResult:
    """Recompute the chain and compare it with what is stored.

    Detects an edited event (its hash no longer matches its content), a deleted event
    (a gap in seq, or the head pointing past the last event), a re-ordered or re-linked
    event (its ``prev_hash`` is not the previous event's hash) and a truncated tail.

    Returns:
        ``ok`` and, when not ok, the first bad ``seq`` and what is wrong with it.
    """
    prev, expected, n = GENESIS_HASH, 1, 0
    for ev in _scan(ws, []):
        if ev.seq != expected:
            return VerifyResult(False, n, expected, f"event {expected} is missing "
                                f"(the next stored event is {ev.seq})")
        if ev.prev_hash != prev:
            return VerifyResult(False, n, ev.seq, "prev_hash does not match the previous "
                                "event's hash (events deleted, re-ordered or re-linked)")
        content = _content(ev.seq, ev.at, ev.actor, ev.action, ev.resource_kind, ev.resource_id,
                           ev.ip, ev.user_agent, ev.details, ev.before, ev.after)
        if event_hash(content, prev) != ev.hash:
            return VerifyResult(False, n, ev.seq, "content does not match its hash (edited)")
        prev, expected, n = ev.hash, expected + 1, n + 1
    with ws.catalog.engine.connect() as c:
        head = c.execute(sa.select(audit_head.c.seq, audit_head.c.hash)
                         .where(audit_head.c.id == 1)).first()
    if head is None:
        return VerifyResult(False, n, expected, "the audit head row is missing")
    if int(head.seq) != expected - 1 or head.hash != prev:
        return VerifyResult(False, n, min(int(head.seq), expected),
                            f"the chain head says the last event is {head.seq} but the stored "
                            f"chain ends at {expected - 1} (newest events deleted or head edited)")
    return VerifyResult(True, n)


def _where(f: AuditFilter) -> list[Any]:
    where: list[Any] = []
    if f.actor:
        where.append(audit_events.c.actor == f.actor)
    if f.action:
        where.append(audit_events.c.action.startswith(f.action, autoescape=True)
                     if f.action.endswith(".") else audit_events.c.action == f.action)
    if f.since:
        where.append(audit_events.c.at >= _utc(f.since))
    if f.until:
        where.append(audit_events.c.at < _utc(f.until))
    if f.resource_kind:
        where.append(audit_events.c.resource_kind == f.resource_kind)
    if f.resource_id:
        where.append(audit_events.c.resource_id == f.resource_id)
    return where


def query(ws: Workspace, filters: AuditFilter | None = None, *, limit: int | None = None) -> list[AuditEvent]:
    """Events matching ``filters`` in seq order (oldest first); at most ``limit``."""
    out: list[AuditEvent] = []
    for ev in _scan(ws, _where(filters or AuditFilter())):
        out.append(ev)
        if limit is not None and len(out) >= limit:
            break
    return out


def export_jsonl(ws: Workspace, out: str | Path, filters: AuditFilter | None = None) -> int:
    """Write the matching events, one JSON object a line, to ``out``; how many.

    The file is written next to ``out`` and renamed into place, so a failed export never
    leaves a partial file.
    """
    import os
    import tempfile

    path = Path(out).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for ev in _scan(ws, _where(filters or AuditFilter())):
                f.write(json.dumps(ev.to_dict(), sort_keys=True, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
