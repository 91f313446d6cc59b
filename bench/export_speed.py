#!/usr/bin/env python3
"""Export speed: `viewfinder export` of a 10k-image COCO set, each mode timed N times.

    .venv/bin/python bench/export_speed.py [--images 10000] [--runs 5]
        [--source COCO_DIR] [--baseline-src OTHER/src] [--note TEXT] [--keep] [--no-write]

Generates a synthetic COCO set with ``bench/generate.py`` (or reuses ``--source``),
imports it into a fresh workspace, then times the CLI command, wall clock, for each
mode (YOLO with ``--images link``, COCO and YOLO with ``--images copy``). Runs go round
robin (mode after mode, and with ``--baseline-src`` the two code trees alternately), each
into a new folder, and nothing is deleted before the end: this machine's file system is
3–4× slower at creating files for minutes after many were deleted, and the machine is
shared, so alternating spreads any slowdown over every contender.

``--baseline-src`` runs the same commands with another checkout's ``src`` folder on
``PYTHONPATH`` (e.g. the code before a change), so before/after figures come from the
same run. The "start" row is the floor every command pays: starting Python and importing
the CLI, the service layer, Lance and DuckDB.

Prints a table (median, min and max seconds per mode) and appends it to
``bench/RESULTS.md`` with the machine and this exact command. Everything is written
under a fresh folder in /tmp, deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = str(ROOT / ".venv" / "bin" / "python")
sys.path.insert(0, str(HERE))

from run import REFERENCE, log, machine  # bench/run.py: the shared style

MODES = (("yolo", "link"), ("coco", "copy"), ("yolo", "copy"))
CLI = "import sys; from viewfinder.cli.main import main; sys.argv[0] = 'viewfinder'; sys.exit(main())"
START = ("import viewfinder.cli.main, viewfinder.services.access, viewfinder.services.export, "
         "lance, duckdb")
TARGETS = {
    ("yolo", "link"): (REFERENCE["fiftyone_yolo_export_10k"] / 10,
                       (f"≥ 10× FiftyOne YOLO export ({REFERENCE['fiftyone_yolo_export_10k']} s) → ≤ "
                        f"{REFERENCE['fiftyone_yolo_export_10k'] / 10:.1f} s")),
    ("coco", "copy"): (REFERENCE["datumaro_coco_to_yolo_10k"],
                       f"< Datumaro COCO→YOLO ({REFERENCE['datumaro_coco_to_yolo_10k']} s)"),
    ("yolo", "copy"): (REFERENCE["datumaro_coco_to_yolo_10k"],
                       f"< Datumaro COCO→YOLO ({REFERENCE['datumaro_coco_to_yolo_10k']} s)"),
}


def _env(src: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    return env


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_export(src: str | None, ws: Path, out: Path, fmt: str,
                 images: str) -> tuple[float, float, float]:
    """One CLI export: wall seconds, the seconds the export itself reports (no process
    start), and CPU seconds (user + system; less sensitive than wall to other users)."""
    cmd = [PY, "-c", CLI, "export", "b", str(out), "--format", fmt, "--images", images,
           "-w", str(ws), "--json"]
    cpu, t = _cpu(), time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env(src))
    wall = time.perf_counter() - t
    return wall, float(json.loads(done.stdout)["seconds"]), _cpu() - cpu


def timed_start(src: str | None) -> float:
    t = time.perf_counter()
    subprocess.run([PY, "-c", START], check=True, env=_env(src))
    return time.perf_counter() - t


def prepare(work: Path, n: int, source: Path | None) -> tuple[Path, dict]:
    """A workspace holding dataset ``b`` (``source`` or a generated set, imported), and
    ``viewfinder stats`` of it."""
    if source is None:
        source = work / f"coco{n}"
        log(f"generating {n:,} images")
        subprocess.run([PY, str(HERE / "generate.py"), str(source), "--images", str(n),
                        "--workers", "2"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    ws = work / "ws"
    vf = [PY, "-c", CLI]
    subprocess.run([*vf, "init", str(ws)], check=True, stdout=subprocess.DEVNULL)
    log(f"importing {source}")
    subprocess.run([*vf, "import", str(source), "-d", "b", "--format", "coco", "-w", str(ws)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stats = subprocess.run([*vf, "stats", "b", "--json", "-w", str(ws)], check=True,
                           capture_output=True, text=True).stdout
    return ws, json.loads(stats)


def run(work: Path, ws: Path, runs: int, contenders: dict[str, str | None]) -> dict:
    """``{contender: {"start": [s...], "yolo link": [(wall, reported, cpu)...], ...}}``."""
    times: dict[str, dict[str, list]] = {c: {"start": []} for c in contenders}
    for r in range(runs):
        for fmt, images in MODES:
            for name, src in contenders.items():
                out = work / f"out-{r}-{fmt}-{images}-{name}"
                wall, reported, cpu = timed_export(src, ws, out, fmt, images)
                times[name].setdefault(f"{fmt} {images}", []).append((wall, reported, cpu))
                log(f"run {r + 1}/{runs} {name:>8} {fmt} --images {images}: {wall:.2f} s "
                    f"(export itself {reported:.2f} s, CPU {cpu:.2f} s)")
        for name, src in contenders.items():
            times[name]["start"].append(timed_start(src))
    return times


def table(times: dict) -> list[str]:
    lines = ["| code | export | target | wall, median (min–max) | export itself, median | CPU, median |",
             "|---|---|---|---|---|---|"]
    for name, modes in times.items():
        for fmt, images in MODES:
            runs = modes[f"{fmt} {images}"]
            walls = [w for w, _, _ in runs]
            limit, target = TARGETS[(fmt, images)]
            med = statistics.median(walls)
            verdict = "met" if med <= limit else "not met"
            lines.append(f"| {name} | {fmt} --images {images} | {target} | "
                         f"{med:.2f} s ({min(walls):.2f}–{max(walls):.2f}), {verdict} | "
                         f"{statistics.median(r for _, r, _ in runs):.2f} s | "
                         f"{statistics.median(c for _, _, c in runs):.2f} s |")
        start = modes["start"]
        lines.append(f"| {name} | start: Python + CLI + service + Lance + DuckDB imports | — | "
                     f"{statistics.median(start):.2f} s ({min(start):.2f}–{max(start):.2f}) | — | — |")
    return lines


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 2)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v) for v in obj]
    return obj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10_000, help="images to generate")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each mode")
    ap.add_argument("--source", type=Path, help="reuse this COCO folder instead of generating")
    ap.add_argument("--baseline-src", help="also time the code in this src folder, alternately")
    ap.add_argument("--note", help="a line for RESULTS.md, e.g. what the baseline code is")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vf-export-bench-"))
    contenders: dict[str, str | None] = {"current": str(ROOT / "src")}
    if args.baseline_src:
        contenders = {"baseline": str(Path(args.baseline_src).resolve()), **contenders}
    try:
        ws, stats = prepare(work, args.images, args.source)
        times = run(work, ws, args.runs, contenders)
        lines = [f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — export speed (`bench/export_speed.py`)", "",
                 f"Machine: {machine()}",
                 f"Command: `{shlex.join(['.venv/bin/python', 'bench/export_speed.py', *sys.argv[1:]])}`",
                 (f"Data: {stats['samples']:,} images, "
                  f"{stats['labels']:,} boxes, imported from COCO into a fresh workspace"),
                 (f"Load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
                  "(the machine is shared; every figure is wall clock of the CLI command)"),
                 *([f"Note: {args.note}"] if args.note else []),
                 "", *table(times), "",
                 "Raw figures (wall, export itself, CPU): `" + json.dumps(_rounded(times)) + "`", ""]
        text = "\n".join(lines)
        print(text)
        if not args.no_write:
            with open(HERE / "RESULTS.md", "a") as f:
                f.write("\n" + text)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
