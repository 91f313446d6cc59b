"""The demo: a whole round of dataset work on embedded defaults (SQLite + local disk).

Run it with ``bash scripts/demo.sh`` (or ``python -m viewfinder.demo [FOLDER]``). It
creates a workspace, imports a generated COCO dataset with boxes, tags it, receives a
vendor's corrected labels (an import in sync mode), runs the check suite (which fails on a
box the vendor delivered twice, then passes on their fix), relabels on a branch and
merges, releases the result, then prints stats, the log and the diff, each with the
command a user would type.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

from viewfinder.synthetic import make_coco


def viewfinder(*args: str) -> None:
    """Run one CLI command in-process, echoing it as the user would type it (and its
    exit code when that is not 0, as a failing ``check`` has)."""
    from viewfinder.cli.main import app

    import shlex

    print(f"\n$ viewfinder {shlex.join(args)}", flush=True)
    try:
        code = app(list(args), standalone_mode=False)
    except SystemExit as e:
        if e.code:
            raise
        code = 0
    if code:
        print(f"(exit code {code})", flush=True)


def vendor_corrections(src: Path, seed: int = 0) -> None:
    """What a labeling vendor sends back: a few classes fixed, boxes tightened, a box
    removed and a missed one added."""
    rng = random.Random(seed)
    path = src / "annotations" / "instances_train.json"
    doc = json.loads(path.read_text())
    anns = doc["annotations"]
    for a in rng.sample(anns, 5):
        a["category_id"] = a["category_id"] % len(doc["categories"]) + 1
    for a in rng.sample(anns, 5):
        x, y, w, h = a["bbox"]
        a["bbox"] = [x + 1, y + 1, max(2, w - 2), max(2, h - 2)]
    anns.remove(rng.choice(anns))
    extra = dict(rng.choice(anns))
    extra["id"] = max(a["id"] for a in anns) + 1
    anns.append(extra)
    path.write_text(json.dumps(doc))


SUITE = """\
name: street-release
checks:
  - {name: labels follow the schema, check: schema}
  - {name: boxes are valid, check: geometry, params: {min_size: 4}}
  - {name: every sample labeled and split, check: completeness, params: {min_labeled: 1.0}}
  - name: no image shared across splits
    check: split_hygiene
    params: {near_duplicates: false}
  - name: no look-alike images across splits      # synthetic images look alike: a warning
    check: split_hygiene
    severity: warning
  - {name: classes balanced, check: class_balance, severity: warning, params: {max_ratio: 3}}
  - {name: class mix close to v1, check: drift, severity: warning, params: {reference: v1}}
"""
"""The project's check suite: the file lives with the project (and its repository)."""


def vendor_fix(src: Path) -> None:
    """The vendor's fix after a failed check: the box they delivered twice is removed."""
    path = src / "annotations" / "instances_train.json"
    doc = json.loads(path.read_text())
    seen: set[tuple[object, ...]] = set()
    kept = []
    for a in doc["annotations"]:
        k = (a["image_id"], a["category_id"], *a["bbox"])
        if k not in seen:
            seen.add(k)
            kept.append(a)
    doc["annotations"] = kept
    path.write_text(json.dumps(doc))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else "demo-workspace").resolve()
    if root.exists():
        shutil.rmtree(root)
    src = root / "incoming" / "street-batch-1"
    ws = root / "workspace"
    print(f"Generating a small street-scene detection dataset (COCO, 200 images) in {src}")
    make_coco(src, n_images=200, classes=("car", "person", "bicycle", "dog", "truck"),
              size=(320, 240), seed=42)
    viewfinder("init", str(ws))
    w = ["--workspace", str(ws)]
    viewfinder("import", str(src), "--dataset", "street", "--format", "coco",
               "-m", "batch 1 from the labeling vendor", *w)
    viewfinder("import", str(src), "--dataset", "street", *w)  # idempotent: nothing changes
    viewfinder("tag", "street@main", "v1", *w)
    viewfinder("stats", "street", *w)

    print("\nThe vendor sends corrected labels; sync makes the dataset equal to their delivery:")
    vendor_corrections(src)
    viewfinder("import", str(src), "--dataset", "street", "--mode", "sync",
               "-m", "vendor corrections, batch 1", *w)

    suite = root / "street-checks.yaml"
    suite.write_text(SUITE)
    print(f"\nBefore anyone trains on it, the project's check suite runs ({suite.name}, stored "
          "with the dataset by --save-suite; a failing error-severity check exits 1):")
    viewfinder("check", "street", "--suite", str(suite), "--save-suite",
               "--html", str(root / "reports" / "street-checks.html"), *w)
    print("\nThe vendor removes the box they delivered twice; the new version passes:")
    vendor_fix(src)
    viewfinder("import", str(src), "--dataset", "street", "--mode", "sync",
               "-m", "vendor fix: duplicate box removed", *w)
    viewfinder("check", "street", *w)

    print("\nA curator merges 'truck' into 'car' on a branch, and tags small objects on main:")
    viewfinder("branch", "street", "merge-vehicles", *w)
    viewfinder("remap", "street@merge-vehicles", "--map", "truck=car", *w)
    viewfinder("tag-samples", "street", "--filter", "label.area < 400", "--add", "small-objects", *w)
    viewfinder("merge", "street", "merge-vehicles", *w)
    viewfinder("split", "street", "--ratios", "train=0.8,val=0.2", "--stratify", "--seed", "1", *w)
    viewfinder("stats", "street", *w)
    viewfinder("query", "street", "--filter", '"small-objects" in tags and label.class == "dog"',
               "--limit", "5", *w)
    print("\nDetectors point a curator at samples to look at; findings are usable in filters:")
    viewfinder("scan", "street", "-d", "exact_duplicates,image_problems,overlapping_annotations", *w)
    viewfinder("findings", "street", "--limit", "5", *w)
    viewfinder("release", "street@main", "--tag", "v2", *w)
    viewfinder("log", "street", *w)
    viewfinder("diff", "street", "v1", "main", *w)
    viewfinder("export", "street@v1", str(root / "exports" / "street-v1-yolo"), "--format", "yolo",
               "--images", "link", *w)
    password = _bootstrap_admin(ws)
    print(f"\nDone. The workspace is in {ws}; try:\n  export VIEWFINDER_WORKSPACE={ws}\n"
          "  .venv/bin/viewfinder query street --filter 'label.class == \"car\" and label.area < 500'\n"
          "  .venv/bin/viewfinder serve        # then open http://127.0.0.1:8000 and sign in as\n"
          f"                                     # admin / {password} (head of DataOps, this demo only)")


def _bootstrap_admin(ws: Path) -> str:
    """The demo workspace's first head of DataOps, with a fresh random password."""
    import secrets

    from viewfinder.governance.users import bootstrap_admin
    from viewfinder.storage.workspace import open_workspace

    password = secrets.token_urlsafe(12)
    with open_workspace(ws) as w:
        bootstrap_admin(w, "admin", password, org="demo")
    return password


if __name__ == "__main__":
    main()
