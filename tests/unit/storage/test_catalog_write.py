"""Catalog write transactions on SQLite queue instead of failing."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from viewfinder.storage.catalog import Catalog, migrate


def test_read_then_write_transactions_queue_instead_of_failing(tmp_path: Path) -> None:
    """Two writers that each read, pause, then write: with a deferred BEGIN the second
    fails at once with "database is locked"; with Catalog.write() it waits its turn."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(url)
    cat = Catalog(url)
    with cat.write() as c:
        c.exec_driver_sql("CREATE TABLE counter (n INTEGER)")
        c.exec_driver_sql("INSERT INTO counter VALUES (0)")
    both_read = threading.Barrier(2, timeout=5)
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            with cat.write() as c:
                n = c.execute(sa.text("SELECT n FROM counter")).scalar()
                try:
                    both_read.wait(timeout=1)  # the other writer is queued: it cannot read yet
                except threading.BrokenBarrierError:
                    pass
                c.execute(sa.text("UPDATE counter SET n = :n"), {"n": n + 1})
        except BaseException as e:  # noqa: BLE001  (collected for the assertion)
            errors.append(e)

    threads = [threading.Thread(target=bump) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with cat.engine.connect() as c:
        assert c.execute(sa.text("SELECT n FROM counter")).scalar() == 2  # no lost update
    cat.close()
