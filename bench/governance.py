#!/usr/bin/env python3
"""Governance figures: audit-log append rate (one and several writer processes), chain
verification rate, policy decision latency and the argon2id hash time.

    .venv/bin/python bench/governance.py [--events 2000] [--writers 4] [--postgres URL]

Runs on a SQLite workspace, and also on PostgreSQL when ``--postgres`` names a server
(a fresh database is made there). Data goes to a fresh folder under /tmp, deleted at the
end. Prints the figures and appends a section to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def _writer(path: str, who: str, n: int) -> None:
    from viewfinder.governance import audit
    from viewfinder.governance.principal import Principal
    from viewfinder.storage.workspace import open_workspace

    ws = open_workspace(path)
    p = Principal(None, who, "user")
    for i in range(n):
        audit.record(ws, p, "bench.append", resource_kind="bench", resource_id=str(i),
                     details={"i": i, "who": who})
    ws.close()


def new_pg_database(url: str) -> str:
    import psycopg

    name = f"vf_bench_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"


def bench_backend(root: Path, catalog: str | None, events: int, writers: int) -> dict[str, float]:
    from viewfinder.governance import audit, orgs, roles, users
    from viewfinder.governance.policy import Action, decide
    from viewfinder.governance.principal import SYSTEM
    from viewfinder.services import versions as vs
    from viewfinder.storage.workspace import init_workspace

    ws = init_workspace(root, catalog=catalog)
    out: dict[str, float] = {}
    t = time.perf_counter()
    _writer(str(root), "single", events)
    out["append_1_writer_per_s"] = round(events / (time.perf_counter() - t))
    ctx = multiprocessing.get_context("spawn")
    per = events // writers
    procs = [ctx.Process(target=_writer, args=(str(root), f"w{i}", per)) for i in range(writers)]
    t = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    out[f"append_{writers}_writers_per_s"] = round(per * writers / (time.perf_counter() - t))
    t = time.perf_counter()
    res = audit.verify(ws)
    assert res.ok, res
    out["verify_events"] = res.events
    out["verify_per_s"] = round(res.events / (time.perf_counter() - t))

    vs.create_dataset(ws, "street")
    orgs.create_org(ws, SYSTEM, "acme")
    orgs.create_team(ws, SYSTEM, "acme", "eu")
    orgs.create_project(ws, SYSTEM, "peds", org="acme", team="eu", dataset_names=["street"])
    users.create_user(ws, SYSTEM, "cora", "a long enough password")
    roles.grant(ws, SYSTEM, "cora", "curator", scope_kind="project", scope_name="peds",
                slice='metadata.region == "APAC"')
    cora = users.authenticate(ws, "cora", "a long enough password")
    times = []
    for _ in range(200):
        t = time.perf_counter()
        decide(ws, cora, Action.DATASET_READ, dataset="street")
        times.append(time.perf_counter() - t)
    out["decide_median_ms"] = round(statistics.median(times) * 1000, 2)
    ws.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--postgres", help="postgresql://... of a server to also measure on")
    args = ap.parse_args()
    from viewfinder.governance import passwords

    tmp = Path(tempfile.mkdtemp(prefix="vf-bench-gov-"))
    figures: dict[str, dict[str, float]] = {}
    try:
        t = time.perf_counter()
        for _ in range(5):
            passwords.hash_password("a long enough password")
        figures["argon2id"] = {"hash_ms": round((time.perf_counter() - t) / 5 * 1000, 1)}
        log("SQLite")
        figures["sqlite"] = bench_backend(tmp / "sqlite", None, args.events, args.writers)
        if args.postgres:
            log("PostgreSQL")
            figures["postgresql"] = bench_backend(tmp / "pg", new_pg_database(args.postgres),
                                                  args.events, args.writers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    import duckdb

    machine = (f"{platform.processor() or platform.machine()}, {multiprocessing.cpu_count()} cores, "
               f"Linux {platform.release()}, Python {platform.python_version()}, duckdb {duckdb.__version__}")
    cmd = " ".join(["python", "bench/governance.py", *sys.argv[1:]])
    rows = []
    for backend in ("sqlite", "postgresql"):
        f = figures.get(backend)
        if f:
            rows += [
                f"| audit appends, 1 writer ({backend}) | {f['append_1_writer_per_s']:,}/s |",
                (f"| audit appends, {args.writers} writer processes, one chain ({backend}) | "
                 f"{f[f'append_{args.writers}_writers_per_s']:,}/s |"),
                f"| audit verify ({backend}, {f['verify_events']:,} events) | {f['verify_per_s']:,} events/s |",
                f"| policy decision, sliced project curator ({backend}) | {f['decide_median_ms']} ms median |",
            ]
    rows.append(f"| argon2id password hash (argon2-cffi defaults) | {figures['argon2id']['hash_ms']} ms |")
    section = (f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: governance\n\nMachine: {machine}\n"
               f"Command: `{cmd}`\n\n| figure | measured |\n|---|---|\n" + "\n".join(rows) +
               f"\n\nRaw figures: `{json.dumps(figures, sort_keys=True)}`\n")
    with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
        f.write(section)


if __name__ == "__main__":
    main()
