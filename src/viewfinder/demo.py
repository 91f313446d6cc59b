"""The demo: a whole round of dataset work on embedded defaults (SQLite + local disk).

Run it with ``bash scripts/demo.sh`` (or ``python -m viewfinder.demo [FOLDER]``). It
creates a workspace, imports a generated COCO dataset with boxes, tags it, receives a
vendor's corrected labels (an import in sync mode), relabels on a branch and merges,
then prints stats, the log and the diff, each with the command a user would type.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

from viewfinder.synthetic import make_coco


def viewfinder(*args: str) -> None:
    """Run one CLI command in-process, echoing it as the user would type it."""
    from viewfinder.cli.main import app

    import shlex

    print(f"\n$ viewfinder {shlex.join(args)}", flush=True)
    try:
        app(list(args), standalone_mode=False)
    except SystemExit as e:
        if e.code:
            raise


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

    print("\nA curator merges 'truck' into 'car' on a branch, and tags small objects on main:")
    viewfinder("branch", "street", "merge-vehicles", *w)
    viewfinder("remap", "street@merge-vehicles", "--map", "truck=car", *w)
    viewfinder("tag-samples", "street", "--filter", "label.area < 400", "--add", "small-objects", *w)
    viewfinder("merge", "street", "merge-vehicles", *w)
    viewfinder("split", "street", "--ratios", "train=0.8,val=0.2", "--stratify", "--seed", "1", *w)
    viewfinder("stats", "street", *w)
    viewfinder("query", "street", "--filter", '"small-objects" in tags and label.class == "dog"',
               "--limit", "5", *w)
    viewfinder("log", "street", *w)
    viewfinder("diff", "street", "v1", "main", *w)
    viewfinder("export", "street@v1", str(root / "exports" / "street-v1-yolo"), "--format", "yolo",
               "--images", "link", *w)
    print(f"\nDone. The workspace is in {ws}; try:\n  export VIEWFINDER_WORKSPACE={ws}\n"
          "  .venv/bin/viewfinder query street --filter 'label.class == \"car\" and label.area < 500'")


if __name__ == "__main__":
    main()
