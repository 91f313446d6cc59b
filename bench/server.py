#!/usr/bin/env python3
"""Server benchmark: browsing a 1M-sample / 10M-label dataset through the REST API.

    .venv/bin/python bench/server.py [--samples 1000000] [--labels-per-sample 10]
                                     [--workers 4] [--users 50] [--seconds 60]

Builds the dataset the way ``bench/scale.py`` does (same tables, same commit path), with
1,000 real 640×480 JPEGs in the object store as the shared image pool, in a fresh folder
under /tmp (deleted at the end). Then starts ``viewfinder serve --workers N`` and measures,
from the ``Server-Timing`` header (server time) and the client's clock:

* a grid page: 100 samples with their labels under a filter (several filters, offsets);
* a sample detail (labels and history);
* thumbnail generation throughput (cache cold; every thumbnail a different image) and a
  cached thumbnail;
* a load test: N simulated users (async httpx) sign in over --ramp-up seconds (not
  timed), then all browse for S seconds (page → 6 thumbnails → one detail, then a think
  time, repeat): errors and latency of every request of that window, and of its steady
  state.

Appends the figures, the machine and this command to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

FILTERS = [
    'label.class == "car" and label.area < 1024',
    'metadata.region == "APAC" and split == "val"',
    'label.class == "dog" and metadata.region == "EU"',
    'split == "train"',
]
PASSWORD = "bench-password-1234"
STEADY_AFTER_S = 10.0
"""Seconds into the browsing window from which the load test's steady state counts."""


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def jpeg_pool(n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``n`` distinct 640×480 JPEGs (noise and boxes), with their sha256."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        base = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
        im = Image.fromarray(base).resize((640, 480), Image.Resampling.BILINEAR)
        d = ImageDraw.Draw(im)
        for _ in range(6):
            x, y = int(rng.integers(0, 560)), int(rng.integers(0, 400))
            d.rectangle([x, y, x + int(rng.integers(10, 80)), y + int(rng.integers(10, 80))],
                        outline=(255, 255, 0), width=2)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=85)
        data = buf.getvalue()
        out.append((hashlib.sha256(data).hexdigest(), data))
    return out


def build(ws_dir: Path, n_samples: int, per_sample: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import scale

    from viewfinder.governance import orgs, roles, users
    from viewfinder.governance.principal import SYSTEM
    from viewfinder.services import versions as vs
    from viewfinder.storage import rows
    from viewfinder.storage.tables import TableChange
    from viewfinder.storage.workspace import init_workspace

    t0 = time.perf_counter()
    samples, labels = scale.build_tables(n_samples, per_sample)
    ws = init_workspace(ws_dir)
    pool = jpeg_pool(1000)
    for h, data in pool:
        ws.blobs.put_bytes(data, h)
    # scale.py's pool of 1,000 placeholder hashes → the 1,000 real images (same spread)
    fake = [f"{i:064x}" for i in range(1000)]
    index = pc.index_in(samples.column("content_hash"), value_set=pa.array(fake))
    real = pa.array([h for h, _ in pool]).take(index)
    samples = samples.set_column(samples.column_names.index("content_hash"), "content_hash", real)
    samples = rows.with_row_hash(samples.drop_columns(["row_hash"]), "samples")
    ds = vs.create_dataset(ws, "big", classes=scale.CLASSES).dataset

    def changes(head, tables):  # type: ignore[no-untyped-def]
        ch = vs.Changes(samples=TableChange(upserts=samples), labels=TableChange(upserts=labels))
        ch.counts["samples"]["added"], ch.counts["labels"]["added"] = samples.num_rows, labels.num_rows
        return ch

    vs.commit(ws, ds, "main", changes, message="bulk load")
    log(f"built and committed {n_samples:,} samples / {labels.num_rows:,} labels in "
        f"{time.perf_counter() - t0:.1f} s")
    users.bootstrap_admin(ws, "admin", PASSWORD)
    org = orgs.list_orgs(ws)[0].name
    orgs.create_project(ws, SYSTEM, "bench", org=org, dataset_names=["big"])
    users.create_user(ws, SYSTEM, "curator", PASSWORD)
    roles.grant(ws, SYSTEM, "curator", "curator", scope_kind="project", scope_name="bench")
    t0 = time.perf_counter()
    from viewfinder.services import look

    look.count(ws, "big", FILTERS[0])  # builds the version's query cache once
    log(f"query cache built in {time.perf_counter() - t0:.1f} s")
    ws.close()
    del np


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(ws_dir: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "viewfinder"), "serve", "--workspace", str(ws_dir),
         "--port", str(port), "--workers", str(workers), "--max-body-mb", "4"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    import httpx

    for _ in range(600):
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.2)
    raise SystemExit("server did not start")


def server_ms(r: Any) -> float:
    st = r.headers.get("server-timing", "")
    return float(st.split("dur=")[1]) if "dur=" in st else float("nan")


def login(client: Any, username: str) -> None:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    r.raise_for_status()
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]


def sequential(base: str, n_samples: int) -> dict[str, Any]:
    import httpx

    out: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=60) as c:
        login(c, "curator")
        for f in FILTERS:  # first touch of each filter (opens the cache in every worker)
            c.get("/api/v1/datasets/big/samples", params={"filter": f, "limit": 100}).raise_for_status()
        rng = random.Random(1)
        page_srv, page_cli, det_srv, det_cli, ids = [], [], [], [], []
        for i in range(200):
            f = FILTERS[i % len(FILTERS)]
            t = time.perf_counter()
            r = c.get("/api/v1/datasets/big/samples",
                      params={"filter": f, "limit": 100, "offset": rng.randrange(0, 2000)})
            page_cli.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
            page_srv.append(server_ms(r))
            ids.extend(s["id"] for s in r.json()["samples"][:3])
        assert sum(len(s["labels"]) for s in r.json()["samples"]) > 0
        hist_srv = []
        for sid in rng.sample(ids, 200):
            t = time.perf_counter()
            r = c.get(f"/api/v1/datasets/big/samples/{sid}", params={"history": "false"})
            det_cli.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
            det_srv.append(server_ms(r))
        for sid in rng.sample(ids, 20):
            r = c.get(f"/api/v1/datasets/big/samples/{sid}")
            r.raise_for_status()
            hist_srv.append(server_ms(r))
        # a filter no worker has run yet: the whole match is computed (pages after it in
        # the same worker are slices of it); 40 different filters, first page each
        new_srv = []
        for i in range(40):
            r = c.get("/api/v1/datasets/big/samples", params={
                "filter": f'{FILTERS[i % 4]} and width > {i}', "limit": 100})
            r.raise_for_status()
            new_srv.append(server_ms(r))
        out["page_100_new_filter_server_ms"] = {"p50": pct(new_srv, 50), "p95": pct(new_srv, 95)}
        out["sample_detail_with_history_server_ms"] = {"p50": pct(hist_srv, 50), "p95": pct(hist_srv, 95)}
        out["page_100_filtered_server_ms"] = {"p50": pct(page_srv, 50), "p95": pct(page_srv, 95)}
        out["page_100_filtered_client_ms"] = {"p50": pct(page_cli, 50), "p95": pct(page_cli, 95)}
        out["sample_detail_server_ms"] = {"p50": pct(det_srv, 50), "p95": pct(det_srv, 95)}
        out["sample_detail_client_ms"] = {"p50": pct(det_cli, 50), "p95": pct(det_cli, 95)}
    return out


async def thumbnails(base: str, concurrency: int = 8) -> dict[str, Any]:
    """Cold thumbnails: one sample per pooled image (1,000 distinct renders)."""
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        r = await c.post("/api/v1/auth/login", json={"username": "curator", "password": PASSWORD})
        r.raise_for_status()
        urls: dict[str, str] = {}  # one sample per pooled image: every request a new render
        offset = 0
        while len(urls) < 1000 and offset < 50_000:
            page = (await c.get("/api/v1/datasets/big/samples",
                                params={"limit": 500, "offset": offset})).json()
            for s in page["samples"]:
                urls.setdefault(s["content_hash"], s["thumbnail"])
            offset += 500
        todo = list(urls.values())
        sem = asyncio.Semaphore(concurrency)
        misses = 0

        async def one(u: str) -> None:
            nonlocal misses
            async with sem:
                resp = await c.get(u)
                resp.raise_for_status()
                misses += resp.headers.get("x-thumbnail-cache") == "miss"

        t = time.perf_counter()
        await asyncio.gather(*(one(u) for u in todo))
        cold = time.perf_counter() - t
        hit_ms = []
        for u in todo[:200]:
            t1 = time.perf_counter()
            resp = await c.get(u)
            hit_ms.append((time.perf_counter() - t1) * 1000)
            assert resp.headers.get("x-thumbnail-cache") == "hit"
    return {"thumbnails_rendered": misses, "thumbnail_cold_per_s": round(misses / cold, 1),
            "thumbnail_cached_client_ms_p50": round(pct(hit_ms, 50), 2)}


def render_one_core() -> float:
    """Thumbnails per second rendered in this process on one core (640×480 → 256)."""
    from viewfinder.server.thumbnails import render

    pool = jpeg_pool(100, seed=3)
    t = time.perf_counter()
    for _, data in pool:
        render(data, 256)
    return round(len(pool) / (time.perf_counter() - t), 1)


async def load_test(base: str, users: int, seconds: float,
                    think: tuple[float, float] = (0.2, 0.6), ramp_up: float = 5.0) -> dict[str, Any]:
    import httpx

    lat: list[float] = []
    srv: list[float] = []
    started: list[float] = []  # when each request was sent, for the steady-state figures
    errors: list[str] = []
    limits = httpx.Limits(max_connections=users * 2, max_keepalive_connections=users * 2)
    # Sign-in comes first and is not timed (argon2 is slow on purpose: 50 sign-ins are
    # seconds of both cores); the browsing window starts when everyone is signed in.
    signed_in, everyone_in = 0, asyncio.Event()
    window: dict[str, float] = {}

    async def timed_get(c: Any, url: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``url``, recording its latency, server time and any error; the answer when
        it is a 200, else None."""
        t = time.perf_counter()
        try:
            resp = await c.get(url, params=params)
        except httpx.HTTPError as e:
            errors.append(type(e).__name__)
            return None
        lat.append((time.perf_counter() - t) * 1000)
        srv.append(server_ms(resp))
        started.append(t)
        if resp.status_code != 200:
            errors.append(str(resp.status_code))
            return None
        return resp

    async def user(i: int) -> None:
        nonlocal signed_in
        rng = random.Random(i)
        await asyncio.sleep(ramp_up * i / users)  # people arrive over a few seconds
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as c:
            r = await c.post("/api/v1/auth/login", json={"username": "curator", "password": PASSWORD})
            signed_in += 1
            if signed_in == users:
                window["start"] = time.perf_counter()
                window["stop"] = window["start"] + seconds
                everyone_in.set()
            if r.status_code != 200:
                errors.append(f"login {r.status_code}")
                return
            await everyone_in.wait()
            await asyncio.sleep(rng.uniform(0, think[1]))  # not all at the same instant
            while time.perf_counter() < window["stop"]:
                resp = await timed_get(c, "/api/v1/datasets/big/samples", {
                    "filter": rng.choice(FILTERS), "limit": 100, "offset": rng.randrange(0, 5000)})
                if resp is not None:
                    samples = resp.json()["samples"]
                    follow = [s["thumbnail"] for s in samples[:6]]
                    if samples:
                        follow.append(f"/api/v1/datasets/big/samples/{rng.choice(samples)['id']}"
                                      "?history=false")
                    for u in follow:
                        await timed_get(c, u)
                await asyncio.sleep(rng.uniform(*think))  # think time between pages

    await asyncio.gather(*(user(i) for i in range(users)))
    t0 = window["start"]
    wall = time.perf_counter() - t0
    # steady state: after the first page of each filter in each server process (which
    # computes the filter's match) and the first reads of every table
    settle = t0 + STEADY_AFTER_S
    steady = [x for x, t in zip(lat, started, strict=True) if t >= settle]
    steady_srv = [x for x, t in zip(srv, started, strict=True) if t >= settle]
    return {"users": users, "think_s": list(think), "ramp_up_s": ramp_up, "seconds": round(wall, 1),
            "requests": len(lat),
            "requests_per_s": round(len(lat) / wall, 1), "errors": len(errors),
            "error_kinds": sorted(set(errors))[:10],
            "client_ms": {"p50": round(pct(lat, 50), 1), "p95": round(pct(lat, 95), 1),
                          "p99": round(pct(lat, 99), 1)},
            "server_ms": {"p50": round(pct(srv, 50), 1), "p95": round(pct(srv, 95), 1),
                          "p99": round(pct(srv, 99), 1)},
            "steady_after_s": STEADY_AFTER_S, "steady_requests": len(steady),
            "steady_client_ms": {"p50": round(pct(steady, 50), 1), "p95": round(pct(steady, 95), 1),
                                 "p99": round(pct(steady, 99), 1)},
            "steady_server_ms": {"p50": round(pct(steady_srv, 50), 1),
                                 "p95": round(pct(steady_srv, 95), 1),
                                 "p99": round(pct(steady_srv, 99), 1)}}


def machine() -> str:
    import duckdb
    import lance

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) // 1024 // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    return (f"{cpu}, {os.cpu_count()} cores, {mem} GiB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}, pylance {lance.__version__}, duckdb {duckdb.__version__}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--labels-per-sample", type=int, default=10)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--think", type=float, nargs=2, default=(0.2, 0.6), metavar=("MIN", "MAX"),
                    help="seconds a user looks at a page before the next (uniform)")
    ap.add_argument("--ramp-up", type=float, default=5.0,
                    help="seconds over which the users arrive (user i starts at i/N of it; "
                         "0: all sign in at once)")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark folder")
    ap.add_argument("--reuse", type=Path, metavar="WORKSPACE",
                    help="a workspace this script built before (with --keep): skip the build")
    ap.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="vf-bench-server-"))
    proc = None
    try:
        ws_dir = args.reuse or root / "ws"
        if args.reuse is None:
            build(ws_dir, args.samples, args.labels_per_sample)
        else:  # thumbnails must be rendered again for the cold figure
            shutil.rmtree(ws_dir / "cache" / "thumbnails", ignore_errors=True)
        proc, base = start_server(ws_dir, args.workers)
        log(f"server up at {base} with {args.workers} workers")
        figures: dict[str, Any] = {"samples": args.samples,
                                   "labels": args.samples * args.labels_per_sample,
                                   "workers": args.workers,
                                   "load_average_at_start": round(os.getloadavg()[0], 1)}
        figures |= sequential(base, args.samples)
        log(f"sequential: {figures}")
        figures |= asyncio.run(thumbnails(base))
        figures["thumbnail_render_one_core_per_s"] = render_one_core()
        log(f"thumbnails: {figures['thumbnail_cold_per_s']}/s cold over HTTP")
        figures["load"] = asyncio.run(load_test(base, args.users, args.seconds, tuple(args.think),
                                                args.ramp_up))
        log(f"load: {figures['load']}")
        figures["load_average_at_end"] = round(os.getloadavg()[0], 1)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if not args.no_results:
        write_results(figures, args)


def write_results(f: dict[str, Any], args: argparse.Namespace) -> None:
    cmd = " ".join(["python", "bench/server.py", *sys.argv[1:]])
    load = f["load"]
    rows = [
        ("grid page: 100 samples + labels under a filter (random pages of 4 filters), server time", "p95 < 100 ms",
         f"p50 {f['page_100_filtered_server_ms']['p50']:.1f} ms, p95 {f['page_100_filtered_server_ms']['p95']:.1f} ms"),
        ("grid page under a filter no server process has run yet (first page), server time", "p95 < 100 ms",
         (f"p50 {f['page_100_new_filter_server_ms']['p50']:.1f} ms, "
          f"p95 {f['page_100_new_filter_server_ms']['p95']:.1f} ms")),
        ("same, client time (HTTP, JSON decode)", "—",
         f"p50 {f['page_100_filtered_client_ms']['p50']:.1f} ms, p95 {f['page_100_filtered_client_ms']['p95']:.1f} ms"),
        ("sample detail (sample + labels, `history=false`), server time", "p95 < 50 ms",
         f"p50 {f['sample_detail_server_ms']['p50']:.1f} ms, p95 {f['sample_detail_server_ms']['p95']:.1f} ms"),
        ("sample detail with its history (every version's tables read), server time", "—",
         (f"p50 {f['sample_detail_with_history_server_ms']['p50']:.1f} ms, "
          f"p95 {f['sample_detail_with_history_server_ms']['p95']:.1f} ms")),
        (f"{load['users']} users browsing {load['seconds']:.0f} s (page → 6 thumbnails → detail, "
         f"then {load['think_s'][0]:g}–{load['think_s'][1]:g} s looking at it; all requests of the "
         f"window, which starts once all have signed in over {load.get('ramp_up_s', 0):g} s)",
         "0 errors, p99 < 500 ms",
         (f"{load['errors']} errors, {load['requests']:,} requests ({load['requests_per_s']}/s), "
          f"client p50 {load['client_ms']['p50']} / p95 {load['client_ms']['p95']} / "
          f"p99 {load['client_ms']['p99']} ms; server p99 {load['server_ms']['p99']} ms")),
        (f"same, steady state (requests sent {load.get('steady_after_s', 0):g} s or more into the window)",
         "p99 < 500 ms",
         (f"{load.get('steady_requests', 0):,} requests, client p50 {load.get('steady_client_ms', {}).get('p50')} / "
          f"p95 {load.get('steady_client_ms', {}).get('p95')} / p99 {load.get('steady_client_ms', {}).get('p99')} ms; "
          f"server p99 {load.get('steady_server_ms', {}).get('p99')} ms")),
        ("thumbnail generation, cold cache, over HTTP (640×480 JPEG → 256 px)", "report",
         f"{f['thumbnail_cold_per_s']}/s ({f['thumbnails_rendered']} renders, {f['workers']} workers)"),
        ("thumbnail render, one core, in process", "report", f"{f['thumbnail_render_one_core_per_s']}/s"),
        ("cached thumbnail, client time", "—", f"p50 {f['thumbnail_cached_client_ms_p50']} ms"),
    ]
    lines = [f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — server (`viewfinder serve`)\n",
             (f"Machine: {machine()}; 1-minute load average {f['load_average_at_start']} at the "
              f"start and {f['load_average_at_end']} at the end (the machine is shared: other "
              "jobs were running, so these are upper bounds)"),
             (f"Command: `{cmd}` ({f['samples']:,} samples / {f['labels']:,} labels; "
              f"uvicorn with {f['workers']} workers; SQLite catalog, local store)\n"),
             "| figure | target | measured |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines.append(f"\nRaw figures: `{json.dumps(f, sort_keys=True)}`\n")
    with (HERE / "RESULTS.md").open("a") as fh:
        fh.write("\n".join(lines))
    log("appended to bench/RESULTS.md")


if __name__ == "__main__":
    main()
