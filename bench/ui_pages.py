#!/usr/bin/env python3
"""Web UI benchmark: how long the server takes to render each page of the UI on a large
dataset (the HTML pages; the grid's samples come from the REST API, see bench/server.py).

    .venv/bin/python bench/ui_pages.py [--samples 100000] [--labels-per-sample 10] [--repeat 5]

Builds the dataset with ``bench/server.py``'s builder (same tables and commit path, 1,000
real JPEGs as the image pool) in a fresh folder under /tmp (deleted at the end), signs in
through the UI's form as the head of DataOps, and times each page in process (the app
through Starlette's test client: routing, access checks, service calls, Jinja2
rendering; no network). Appends the figures, the machine and this command to
``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

FILTER = 'label.class == "car" and label.area < 1024'


def pages(sample_id: str) -> list[tuple[str, str]]:
    from urllib.parse import quote

    return [
        ("datasets list", "/"),
        ("browser, no filter (stats from the version summary)", "/datasets/big"),
        ("browser, filtered (class and split counts of the matches)",
         f"/datasets/big?filter={quote(FILTER)}"),
        ("sample detail (labels, findings, history)", f"/datasets/big/samples/{sample_id}"),
        ("versions (graph and table)", "/datasets/big/versions"),
        ("diff of the bulk load against the empty start (first 40 samples)", "/datasets/big/diff"),
        ("quality (no report yet)", "/datasets/big/quality"),
        ("audit log (newest 500)", "/admin/audit"),
    ]


def main() -> None:
    import server  # bench/server.py: the dataset builder and the machine description

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--labels-per-sample", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from viewfinder.server.app import Settings, create_app

    root = Path(tempfile.mkdtemp(prefix="vf-bench-ui-"))
    figures: dict[str, Any] = {"samples": args.samples,
                               "labels": args.samples * args.labels_per_sample,
                               "load_average_at_start": round(os.getloadavg()[0], 1)}
    try:
        ws_dir = root / "ws"
        server.build(ws_dir, args.samples, args.labels_per_sample)
        app = create_app(Settings(workspace=ws_dir))
        with TestClient(app, follow_redirects=False) as c:
            r = c.post("/login", data={"username": "admin", "password": server.PASSWORD})
            assert r.status_code == 303, r.text
            first = c.get("/api/v1/datasets/big/samples", params={"limit": 1}).json()
            sample_id = first["samples"][0]["id"]
            timings: dict[str, dict[str, float]] = {}
            for name, url in pages(sample_id):
                runs = []
                for _ in range(args.repeat + 1):  # the first call warms caches; not counted
                    t0 = time.perf_counter()
                    r = c.get(url)
                    runs.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, (url, r.status_code, r.text[:300])
                runs = runs[1:]
                timings[name] = {"p50_ms": round(statistics.median(runs), 1),
                                 "max_ms": round(max(runs), 1), "html_kb": round(len(r.content) / 1024, 1)}
                server.log(f"{name}: {timings[name]}")
        figures["pages"] = timings
        figures["load_average_at_end"] = round(os.getloadavg()[0], 1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if not args.no_results:
        write_results(figures, server.machine())


def write_results(f: dict[str, Any], machine: str) -> None:
    cmd = " ".join(["python", "bench/ui_pages.py", *sys.argv[1:]])
    lines = [f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — web UI pages (server render time)\n",
             (f"Machine: {machine}; 1-minute load average {f['load_average_at_start']} at the start "
              f"and {f['load_average_at_end']} at the end (shared machine: upper bounds)"),
             (f"Command: `{cmd}` ({f['samples']:,} samples / {f['labels']:,} labels; in process, "
              "SQLite catalog, local store; median and max of the timed calls after one warm-up)\n"),
             "| page | median | max | HTML |", "|---|---|---|---|"]
    lines += [f"| {name} | {t['p50_ms']} ms | {t['max_ms']} ms | {t['html_kb']} KiB |"
              for name, t in f["pages"].items()]
    lines.append(f"\nRaw figures: `{json.dumps(f, sort_keys=True)}`\n")
    with (HERE / "RESULTS.md").open("a") as fh:
        fh.write("\n".join(lines))
    print("appended to bench/RESULTS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
