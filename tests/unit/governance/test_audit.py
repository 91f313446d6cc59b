"""The audit log is append-only and hash-chained: tampering is found, concurrent writers
on several processes keep one chain. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import multiprocessing
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import make_workspace
from viewfinder.governance import audit
from viewfinder.governance.principal import SYSTEM, Principal
from viewfinder.storage.catalog import utcnow
from viewfinder.storage.workspace import Workspace, open_workspace


@pytest.fixture(params=["sqlite-local", "postgres-local"])
def cat_ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    w = make_workspace(tmp_path, request.param)
    yield w._ws
    w.close()


def _fill(ws: Workspace, n: int = 5) -> None:
    ana = Principal("u1", "ana", "user")
    for i in range(n):
        audit.record(ws, ana if i % 2 else SYSTEM, f"dataset.action{i}", resource_kind="dataset",
                     resource_id="street", ip="10.0.0.1", user_agent="pytest",
                     details={"i": i, "nested": {"b": [1, 2.5, "x"], "a": None}},
                     before={"version": f"v{i}"}, after={"version": f"v{i + 1}"})


def _sql(ws: Workspace, *statements: str) -> None:
    with ws.catalog.engine.begin() as c:
        for s in statements:
            c.execute(sa.text(s))


def test_untouched_chain_verifies_and_links(cat_ws: Workspace) -> None:
    _fill(cat_ws)
    res = audit.verify(cat_ws)
    assert (res.ok, res.events, res.bad_seq) == (True, 5, None)
    evs = audit.query(cat_ws)
    assert [e.seq for e in evs] == [1, 2, 3, 4, 5]
    assert evs[0].prev_hash == audit.GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(evs))


def test_edited_event_is_found(cat_ws: Workspace) -> None:
    _fill(cat_ws)
    _sql(cat_ws, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
    res = audit.verify(cat_ws)
    assert (res.ok, res.bad_seq) == (False, 3) and "edited" in (res.problem or "")


def test_edited_json_details_are_found(cat_ws: Workspace) -> None:
    _fill(cat_ws)
    _sql(cat_ws, """UPDATE audit_events SET details = '{"i": 99}' WHERE seq = 2""")
    assert audit.verify(cat_ws).bad_seq == 2


def test_edit_with_a_recomputed_hash_breaks_the_next_link(cat_ws: Workspace) -> None:
    _fill(cat_ws)
    ev = audit.query(cat_ws)[2]
    content = {**ev.to_dict(), "actor": "mallory"}
    for k in ("prev_hash", "hash"):
        content.pop(k)
    forged = audit.event_hash(content, ev.prev_hash)
    _sql(cat_ws, f"UPDATE audit_events SET actor = 'mallory', hash = '{forged}' WHERE seq = 3")
    assert audit.verify(cat_ws).bad_seq == 4


def test_deleted_event_is_found(cat_ws: Workspace) -> None:
    _fill(cat_ws)
    _sql(cat_ws, "DELETE FROM audit_events WHERE seq = 3")
    res = audit.verify(cat_ws)
    assert (res.ok, res.bad_seq) == (False, 3) and "missing" in (res.problem or "")


def test_deleted_newest_event_is_found(cat_ws: Workspace) -> None:
    _fill(cat_ws)
    _sql(cat_ws, "DELETE FROM audit_events WHERE seq = 5")
    res = audit.verify(cat_ws)
    assert (res.ok, res.bad_seq) == (False, 5)


def test_reordered_events_are_found(cat_ws: Workspace) -> None:
    _fill(cat_ws)
    _sql(cat_ws, "UPDATE audit_events SET seq = -1 WHERE seq = 2",
         "UPDATE audit_events SET seq = 2 WHERE seq = 3",
         "UPDATE audit_events SET seq = 3 WHERE seq = -1")
    assert audit.verify(cat_ws).bad_seq == 2


def test_query_filters_and_jsonl_export(cat_ws: Workspace, tmp_path: Path) -> None:
    _fill(cat_ws)
    assert [e.seq for e in audit.query(cat_ws, audit.AuditFilter(actor="ana"))] == [2, 4]
    assert [e.action for e in audit.query(cat_ws, audit.AuditFilter(action="dataset.action1"))] == ["dataset.action1"]
    assert len(audit.query(cat_ws, audit.AuditFilter(action="dataset."))) == 5
    assert audit.query(cat_ws, audit.AuditFilter(since=utcnow() + timedelta(minutes=1))) == []
    assert len(audit.query(cat_ws, audit.AuditFilter(since=utcnow() - timedelta(minutes=5)))) == 5
    n = audit.export_jsonl(cat_ws, tmp_path / "a.jsonl", audit.AuditFilter(actor="system"))
    lines = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert n == len(lines) == 3
    assert lines[0]["details"] == {"i": 0, "nested": {"a": None, "b": [1, 2.5, "x"]}}
    assert set(lines[0]) >= {"seq", "at", "actor", "action", "ip", "user_agent", "before",
                             "after", "prev_hash", "hash"}


def _append_many(path: str, who: str, n: int) -> None:
    ws = open_workspace(path)
    p = Principal(None, who, "user")
    for i in range(n):
        audit.record(ws, p, "test.append", resource_kind="test", resource_id=f"{who}-{i}")
    ws.close()


def test_concurrent_appends_from_two_processes_keep_one_chain(cat_ws: Workspace) -> None:
    n = 40
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(cat_ws.path), who, n)) for who in ("p1", "p2")]
    for p in procs:
        p.start()
    _append_many(str(cat_ws.path), "p0", n)  # and this process at the same time
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    res = audit.verify(cat_ws)
    assert (res.ok, res.events) == (True, 3 * n), res
    evs = audit.query(cat_ws)
    assert [e.seq for e in evs] == list(range(1, 3 * n + 1))
    assert {e.actor for e in evs} == {"p0", "p1", "p2"}
    interleaved = sum(1 for a, b in itertools.pairwise(evs) if a.actor != b.actor)
    assert interleaved >= 2  # the writers really ran at the same time


def test_client_supplied_text_is_bounded_not_an_error(cat_ws: Workspace) -> None:
    ev = audit.record(cat_ws, SYSTEM, "auth.login_failed", resource_kind="user",
                      resource_id="x" * 1000, ip="1" * 100, user_agent="Mozilla " * 200)
    stored = audit.query(cat_ws)[0]
    assert (len(stored.user_agent or ""), len(stored.ip or ""), len(stored.resource_id or "")) == (500, 64, 300)
    assert stored.hash == ev.hash and audit.verify(cat_ws).ok
