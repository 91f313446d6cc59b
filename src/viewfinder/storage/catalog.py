"""The catalog: the SQL source of truth for datasets, versions, refs and runs.

SQLite (WAL, busy timeout) by default, PostgreSQL for a team, chosen by URL. The schema is
created and upgraded only by Alembic migrations (``storage/migrations``); the ``Table``
objects here describe it for queries, and a test checks the two agree.

Writes to a dataset are serialized by :meth:`Catalog.dataset_lock`: a transaction that
starts by bumping the dataset row's ``lock_counter``. That takes a row lock on PostgreSQL
and the database write lock on SQLite, so two writers of one dataset queue instead of
racing, on any number of processes.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from viewfinder.errors import AlreadyExists, DatasetNotFound, RefNotFound, StorageError

metadata = sa.MetaData()

datasets = sa.Table(
    "datasets", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("classes", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("lock_counter", sa.BigInteger, nullable=False, server_default="0"),
)

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), nullable=True),
    sa.Column("operation", sa.String(100), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("code_version", sa.String(100), nullable=False),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("outputs", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
)

versions = sa.Table(
    "versions", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), nullable=False, index=True),
    sa.Column("parents", sa.JSON, nullable=False),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("samples_table_version", sa.BigInteger, nullable=False),
    sa.Column("labels_table_version", sa.BigInteger, nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
    sa.Column("changes", sa.JSON, nullable=False),
    sa.Column("extra", sa.JSON, nullable=False),
)

refs = sa.Table(
    "refs", metadata,
    sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),  # "branch" | "tag"
    sa.Column("version_id", sa.String(32), sa.ForeignKey("versions.id"), nullable=False),
    sa.Column("protected", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# -- data quality (migration 0002) -------------------------------------------------------

check_reports = sa.Table(
    "check_reports", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), nullable=False),
    sa.Column("version_id", sa.String(32), sa.ForeignKey("versions.id"), nullable=False),
    sa.Column("suite_name", sa.String(200), nullable=False),
    sa.Column("suite_hash", sa.String(64), nullable=False),   # sha256 of the canonical suite
    sa.Column("passed", sa.Boolean, nullable=False),          # no error-severity failure
    sa.Column("counts", sa.JSON, nullable=False),             # {"passed": n, "failed": n, ...}
    sa.Column("report", sa.JSON, nullable=False),             # the full CheckReport
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_check_reports_version", "dataset_id", "version_id"),
)

releases = sa.Table(
    "releases", metadata,
    sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), primary_key=True),
    sa.Column("tag", sa.String(200), primary_key=True),
    sa.Column("version_id", sa.String(32), sa.ForeignKey("versions.id"), nullable=False),
    sa.Column("check_report_id", sa.String(32), sa.ForeignKey("check_reports.id"), nullable=True),
    sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reason", sa.Text, nullable=True),              # required when forced
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


# -- governance (migration 0003) ---------------------------------------------------------
# Organization -> teams -> projects (one prediction task each, owning datasets); users,
# their sessions and API tokens (only hashes are stored), role bindings with an optional
# slice filter, login attempts (the rate limit shared by every server process), and the
# hash-chained audit log whose head row serializes appends.

organizations = sa.Table(
    "organizations", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

teams = sa.Table(
    "teams", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("org_id", sa.String(32), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

projects = sa.Table(
    "projects", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("org_id", sa.String(32), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("team_id", sa.String(32), sa.ForeignKey("teams.id"), nullable=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("task_type", sa.String(50), nullable=False),
    sa.Column("label_schema", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

project_datasets = sa.Table(  # a dataset belongs to at most one project
    "project_datasets", metadata,
    sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), primary_key=True),
    sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id"), nullable=False, index=True),
)

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("username", sa.String(100), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=True),  # argon2id; null: no password login
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),   # sha256 of the cookie value
    sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("csrf_hash", sa.String(64), nullable=False),      # sha256 of the CSRF token
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(500), nullable=True),
)

api_tokens = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(20), nullable=False),          # shown in lists, not secret
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
)

role_bindings = sa.Table(
    "role_bindings", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("role", sa.String(50), nullable=False),
    sa.Column("scope_kind", sa.String(10), nullable=False),     # "org" | "team" | "project"
    sa.Column("scope_id", sa.String(32), nullable=False),
    sa.Column("slice", sa.Text, nullable=True),                 # filter expression (curators)
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

login_attempts = sa.Table(
    "login_attempts", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("username", sa.String(100), nullable=False),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Index("ix_login_attempts_username_at", "username", "at"),
    sa.Index("ix_login_attempts_ip_at", "ip", "at"),
)

audit_events = sa.Table(  # append-only; seq is assigned under the audit_head lock (no gaps)
    "audit_events", metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("resource_kind", sa.String(50), nullable=False),
    sa.Column("resource_id", sa.String(300), nullable=True),
    sa.Column("ip", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(500), nullable=True),
    sa.Column("details", sa.JSON, nullable=True),
    sa.Column("before", sa.JSON, nullable=True),
    sa.Column("after", sa.JSON, nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_events_actor", "actor"),
    sa.Index("ix_audit_events_action", "action"),
)

audit_head = sa.Table(  # one row (id 1): the chain's last seq and hash; its lock orders appends
    "audit_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# -- jobs (migration 0004) ---------------------------------------------------------------

jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(50), nullable=False),                 # "export"
    sa.Column("status", sa.String(20), nullable=False),               # server.jobs.JobStatus
    sa.Column("owner", sa.String(200), nullable=False),               # the principal's user id
    sa.Column("dataset", sa.String(200), nullable=True),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("progress", sa.JSON, nullable=True),                    # {"stage", "done", "total"}
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("runner", sa.String(200), nullable=False),              # host:pid:nonce running it
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_jobs_owner", "owner", "created_at"),
)


def new_id(nbytes: int = 8) -> str:
    return secrets.token_hex(nbytes)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    name: str
    classes: list[str]
    created_at: datetime
    created_by: str
    description: str = ""


@dataclass(frozen=True)
class VersionRecord:
    id: str
    dataset_id: str
    parents: list[str]
    author: str
    message: str
    created_at: datetime
    run_id: str | None
    samples_table_version: int
    labels_table_version: int
    summary: dict[str, Any]
    changes: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "parents": self.parents, "author": self.author,
            "message": self.message, "created_at": self.created_at.isoformat(),
            "run_id": self.run_id, "summary": self.summary, "changes": self.changes,
            "extra": self.extra,
        }


@dataclass(frozen=True)
class RefRecord:
    name: str
    kind: str
    version_id: str
    protected: bool


@dataclass(frozen=True)
class DatasetAt:
    """A dataset at one version: what ``NAME@REF`` names."""

    dataset: DatasetRecord
    version: VersionRecord
    ref: str  # as the user wrote it (branch, tag or id)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _version(row: Any) -> VersionRecord:
    return VersionRecord(
        id=row.id, dataset_id=row.dataset_id, parents=list(row.parents), author=row.author,
        message=row.message, created_at=_aware(row.created_at), run_id=row.run_id,
        samples_table_version=int(row.samples_table_version),
        labels_table_version=int(row.labels_table_version),
        summary=row.summary, changes=row.changes, extra=row.extra or {},
    )


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings Viewfinder relies on."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 120})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below take over
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=120000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Writers (Catalog.write) take the write lock up front: a deferred transaction
            # that reads and then writes fails at once with "database is locked" when
            # another writer committed in between; an immediate one waits its turn.
            # Readers stay deferred, so in WAL mode they never wait for a writer.
            immediate = conn.get_execution_options().get("viewfinder_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return sa.create_engine(url, pool_pre_ping=True)


SCHEMA_REVISION = "0004"  # the newest migration; bump with every new migration file


def migrate(url: str) -> None:
    """Create or upgrade the catalog schema to the newest migration."""
    from alembic import command
    from alembic.config import Config

    here = Path(__file__).parent / "migrations"
    cfg = Config()
    cfg.set_main_option("script_location", str(here))
    cfg.attributes["url"] = url
    command.upgrade(cfg, "head")


class Catalog:
    """Typed access to the catalog tables. Every method is one short transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def write(self) -> Any:
        """A write transaction (``with catalog.write() as c:``); commits on clean exit.

        On SQLite it takes the database's write lock when it starts, so a transaction that
        reads before it writes queues behind other writers instead of failing."""
        return self.engine.execution_options(viewfinder_write=True).begin()

    def ensure_schema(self) -> None:
        """Upgrade a catalog made by an older Viewfinder to :data:`SCHEMA_REVISION`."""
        try:
            with self.engine.connect() as c:
                current = c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except sa.exc.SQLAlchemyError:
            current = None
        if current != SCHEMA_REVISION:
            migrate(self.url)

    # -- datasets ---------------------------------------------------------------------

    def create_dataset(self, name: str, *, author: str, classes: list[str] | None = None) -> DatasetRecord:
        rec = DatasetRecord(id=new_id(), name=name, classes=list(classes or []),
                            created_at=utcnow(), created_by=author)
        try:
            with self.write() as c:
                c.execute(datasets.insert().values(
                    id=rec.id, name=rec.name, classes=rec.classes, created_at=rec.created_at,
                    created_by=rec.created_by, description=""))
        except sa.exc.IntegrityError:
            raise AlreadyExists(f"dataset {name!r} already exists", dataset=name) from None
        return rec

    def get_dataset(self, name: str) -> DatasetRecord:
        with self.engine.connect() as c:
            row = c.execute(sa.select(datasets).where(datasets.c.name == name)).first()
        if row is None:
            raise DatasetNotFound(f"no dataset named {name!r}", dataset=name)
        return DatasetRecord(id=row.id, name=row.name, classes=list(row.classes),
                             created_at=_aware(row.created_at), created_by=row.created_by,
                             description=row.description)

    def list_datasets(self) -> list[DatasetRecord]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(datasets).order_by(datasets.c.name)).all()
        return [DatasetRecord(id=r.id, name=r.name, classes=list(r.classes),
                              created_at=_aware(r.created_at), created_by=r.created_by,
                              description=r.description) for r in rows]

    @contextmanager
    def dataset_lock(self, dataset_id: str) -> Iterator[Connection]:
        """A transaction holding the dataset's write lock; commit on clean exit."""
        try:
            with self.write() as c:
                c.execute(datasets.update().where(datasets.c.id == dataset_id)
                          .values(lock_counter=datasets.c.lock_counter + 1))
                yield c
        except sa.exc.OperationalError as e:
            raise StorageError(f"catalog write failed: {e.orig}") from e

    # -- versions and refs (inside or outside a lock) ---------------------------------

    def insert_version(self, c: Connection, rec: VersionRecord) -> None:
        c.execute(versions.insert().values(
            id=rec.id, dataset_id=rec.dataset_id, parents=rec.parents, author=rec.author,
            message=rec.message, created_at=rec.created_at, run_id=rec.run_id,
            samples_table_version=rec.samples_table_version,
            labels_table_version=rec.labels_table_version, summary=rec.summary,
            changes=rec.changes, extra=rec.extra))

    def set_ref(self, c: Connection, dataset_id: str, name: str, kind: str, version_id: str,
                *, protected: bool = False, create: bool = False) -> None:
        now = utcnow()
        if create:
            exists = c.execute(sa.select(refs.c.name).where(
                refs.c.dataset_id == dataset_id, refs.c.name == name)).first()
            if exists:
                raise AlreadyExists(f"a branch or tag named {name!r} already exists")
            c.execute(refs.insert().values(dataset_id=dataset_id, name=name, kind=kind,
                                           version_id=version_id, protected=protected,
                                           created_at=now, updated_at=now))
        else:
            c.execute(refs.update().where(refs.c.dataset_id == dataset_id, refs.c.name == name)
                      .values(version_id=version_id, updated_at=now))

    def _first(self, q: sa.Select, c: Connection | None) -> Any:
        """The first row of ``q``, inside the caller's transaction when one is given."""
        if c is not None:
            return c.execute(q).first()
        with self.engine.connect() as conn:
            return conn.execute(q).first()

    def get_ref(self, dataset_id: str, name: str, c: Connection | None = None) -> RefRecord | None:
        row = self._first(sa.select(refs).where(refs.c.dataset_id == dataset_id, refs.c.name == name), c)
        return RefRecord(row.name, row.kind, row.version_id, row.protected) if row else None

    def list_refs(self, dataset_id: str) -> list[RefRecord]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(refs).where(refs.c.dataset_id == dataset_id)
                             .order_by(refs.c.kind, refs.c.name)).all()
        return [RefRecord(r.name, r.kind, r.version_id, r.protected) for r in rows]

    def get_version(self, dataset_id: str, version_id: str, c: Connection | None = None) -> VersionRecord | None:
        row = self._first(sa.select(versions).where(versions.c.dataset_id == dataset_id,
                                                    versions.c.id == version_id), c)
        return _version(row) if row else None

    def get_version_at_ref(self, dataset_id: str, name: str) -> VersionRecord | None:
        """The version a branch or tag points to (one query: every request resolves one)."""
        row = self._first(sa.select(versions).join(
            refs, sa.and_(refs.c.dataset_id == versions.c.dataset_id, refs.c.version_id == versions.c.id))
            .where(refs.c.dataset_id == dataset_id, refs.c.name == name), None)
        return _version(row) if row else None

    def find_versions_by_prefix(self, dataset_id: str, prefix: str) -> list[str]:
        with self.engine.connect() as c:
            return [r.id for r in c.execute(
                sa.select(versions.c.id).where(versions.c.dataset_id == dataset_id,
                                               versions.c.id.startswith(prefix, autoescape=True))
                .limit(2))]

    def all_versions(self, dataset_id: str) -> dict[str, VersionRecord]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(versions).where(versions.c.dataset_id == dataset_id)).all()
        return {r.id: _version(r) for r in rows}

    # -- runs -------------------------------------------------------------------------

    def start_run(self, *, dataset_id: str | None, operation: str, params: dict[str, Any],
                  author: str, code_version: str) -> str:
        run_id = new_id()
        with self.write() as c:
            c.execute(runs.insert().values(
                id=run_id, dataset_id=dataset_id, operation=operation,
                params=json.loads(json.dumps(params, default=str)), code_version=code_version,
                author=author, status="running", started_at=utcnow(), outputs={}))
        return run_id

    def finish_run(self, run_id: str, *, status: str, outputs: dict[str, Any] | None = None,
                   error: str | None = None) -> None:
        with self.write() as c:
            c.execute(runs.update().where(runs.c.id == run_id).values(
                status=status, finished_at=utcnow(), outputs=outputs or {}, error=error))

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        return dict(row._mapping) if row else None


def resolve_ref_name(catalog: Catalog, dataset: DatasetRecord, ref: str) -> VersionRecord:
    """A version from a branch name, tag name, full version id or unique id prefix."""
    v = catalog.get_version_at_ref(dataset.id, ref)
    if v is not None:
        return v
    v = catalog.get_version(dataset.id, ref)
    if v is not None:
        return v
    if len(ref) >= 4:
        ids = catalog.find_versions_by_prefix(dataset.id, ref)
        if len(ids) == 1:
            v = catalog.get_version(dataset.id, ids[0])
            assert v is not None
            return v
        if len(ids) > 1:
            raise RefNotFound(f"version prefix {ref!r} is ambiguous in {dataset.name!r}",
                              dataset=dataset.name)
    raise RefNotFound(f"no branch, tag or version {ref!r} in dataset {dataset.name!r}",
                      dataset=dataset.name)
