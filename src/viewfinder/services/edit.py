"""Edits that create a version: remap classes, assign splits, tag samples."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from viewfinder.errors import InvalidInput
from viewfinder.services import versions as vs
from viewfinder.services.look import VersionReader
from viewfinder.storage import duck, rows
from viewfinder.storage.catalog import VersionRecord
from viewfinder.storage.tables import DatasetTables, TableChange
from viewfinder.storage.workspace import Workspace


def parse_mapping(text: str) -> dict[str, str]:
    """``"old=new,old2=new2"`` → dict. Class names may not contain ``=`` or ``,``."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        old, sep, new = part.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InvalidInput(f"expected old=new in the class map, got {part!r}")
        out[old.strip()] = new.strip()
    if not out:
        raise InvalidInput("the class map is empty")
    return out


def parse_ratios(text: str) -> dict[str, float]:
    """``"train=0.8,val=0.2"`` → dict; ratios must be positive and sum to 1."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, val = part.partition("=")
        try:
            r = float(val)
        except ValueError:
            r = -1.0
        if not sep or not name.strip() or not r > 0:
            raise InvalidInput(f"expected split=ratio with a positive ratio, got {part!r}")
        out[vs.check_name("split", name.strip())] = r
    total = sum(out.values())
    if not out or abs(total - 1.0) > 1e-6:
        raise InvalidInput(f"split ratios must add up to 1, not {total:g}")
    return out


def remap(ws: Workspace, spec: str, mapping: dict[str, str], *, message: str | None = None,
          author: str | None = None) -> vs.CommitResult:
    """Rename classes (several old names may map to one new name: a merge of classes)."""
    at = vs.resolve(ws, spec)
    branch = vs.branch_of(ws, at)

    def build(head: VersionRecord, tables: DatasetTables) -> vs.Changes:
        con = duck.connect(l=tables.open("labels", head.labels_table_version),
                           m=pa.table({"old": list(mapping), "new": list(mapping.values())}))
        changed = duck.query(con, """SELECT l.* REPLACE (m.new AS class_name)
            FROM l JOIN m ON l.class_name = m.old""")
        con.close()
        changes = vs.Changes()
        if changed.num_rows:
            changes.labels = TableChange(upserts=rows.with_row_hash(changed, "labels"))
            changes.counts["labels"]["changed"] = changed.num_rows
        old = head.summary.get("class_list", [])
        new_classes = list(dict.fromkeys(mapping.get(c, c) for c in old))
        if new_classes != old:
            changes.classes = new_classes
        return changes

    desc = ", ".join(f"{k}={v}" for k, v in mapping.items())
    return vs.commit(ws, at.dataset, branch, build, message=message or f"remap {desc}",
                     author=author, operation="remap", params={"map": mapping})


def _unit(seed: int, key: str) -> float:
    h = hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def assign_splits(groups: dict[str, str | None], ratios: dict[str, float], seed: int) -> dict[str, str]:
    """Split names for group keys: deterministic, proportional within each stratum.

    ``groups`` maps a group key to its stratum (or None). Within a stratum, groups are
    ordered by a seeded hash and cut at the cumulative ratios (largest remainder), so the
    same input and seed always give the same splits.
    """
    by_stratum: dict[str | None, list[str]] = defaultdict(list)
    for g, stratum in groups.items():
        by_stratum[stratum].append(g)
    names = list(ratios)
    out: dict[str, str] = {}
    for stratum in sorted(by_stratum, key=lambda s: (s is None, s or "")):
        members = sorted(by_stratum[stratum], key=lambda g: (_unit(seed, g), g))
        n = len(members)
        quotas = [ratios[s] * n for s in names]
        counts = [int(q) for q in quotas]
        for i in sorted(range(len(names)), key=lambda i: -(quotas[i] - counts[i]))[: n - sum(counts)]:
            counts[i] += 1
        pos = 0
        for name, c in zip(names, counts, strict=True):
            for g in members[pos:pos + c]:
                out[g] = name
            pos += c
    return out


def split(ws: Workspace, spec: str, ratios: dict[str, float], *, stratify: bool = False,
          group_by: str | None = None, seed: int = 0, message: str | None = None,
          author: str | None = None) -> vs.CommitResult:
    """Assign every sample a split, deterministically.

    ``stratify`` keeps class proportions (a sample's stratum is its most frequent class).
    ``group_by`` (``metadata.X`` or ``folder``) keeps samples sharing that value in one
    split, so near-identical frames of one scene never leak across splits.
    """
    at = vs.resolve(ws, spec)
    branch = vs.branch_of(ws, at)
    if group_by is not None and group_by != "folder" and not group_by.startswith("metadata."):
        raise InvalidInput(f"--group-by takes metadata.FIELD or folder, not {group_by!r}")

    def build(head: VersionRecord, tables: DatasetTables) -> vs.Changes:
        samples = tables.read("samples", head.samples_table_version)
        ids = samples.column("id").to_pylist()
        group_of: dict[str, str] = {}
        if group_by is None:
            group_of = {i: i for i in ids}
        elif group_by == "folder":
            group_of = {i: k.rsplit("/", 1)[0] if "/" in k else "" for i, k in
                        zip(ids, samples.column("key").to_pylist(), strict=True)}
        else:
            path = group_by.split(".")[1:]
            for i, m in zip(ids, samples.column("metadata").to_pylist(), strict=True):
                v: Any = json.loads(m or "{}")
                for p in path:
                    v = v.get(p) if isinstance(v, dict) else None
                group_of[i] = f"value:{json.dumps(v, sort_keys=True)}" if v is not None else f"sample:{i}"
        strata: dict[str, str | None] = {g: None for g in group_of.values()}
        if stratify:
            con = duck.connect(l=tables.open("labels", head.labels_table_version))
            per_sample = duck.query(con, "SELECT sample_id, class_name, count(*) AS n FROM l "
                                         "GROUP BY 1, 2").to_pylist()
            con.close()
            counts: dict[str, Counter[str]] = defaultdict(Counter)
            for r in per_sample:
                counts[group_of.get(r["sample_id"], r["sample_id"])][r["class_name"]] += r["n"]
            for g in strata:
                if counts[g]:
                    strata[g] = min(counts[g].items(), key=lambda kv: (-kv[1], kv[0]))[0]
        assigned = assign_splits(strata, ratios, seed)
        new_split = pa.array([assigned[group_of[i]] for i in ids], pa.string())
        mask = pc.fill_null(pc.not_equal(samples.column("split"), new_split), True)
        changed = samples.set_column(samples.schema.get_field_index("split"), "split", new_split).filter(mask)
        changes = vs.Changes()
        if changed.num_rows:
            changes.samples = TableChange(upserts=rows.with_row_hash(changed, "samples"))
            changes.counts["samples"]["changed"] = changed.num_rows
        return changes

    desc = ",".join(f"{k}={v:g}" for k, v in ratios.items())
    extra = {"ratios": ratios, "stratify": stratify, "group_by": group_by, "seed": seed}
    return vs.commit(ws, at.dataset, branch, build, extra=extra, author=author,
                     operation="split", params=extra,
                     message=message or f"split {desc} (seed {seed}"
                                        f"{', stratified' if stratify else ''}"
                                        f"{f', grouped by {group_by}' if group_by else ''})")


def tag_samples(ws: Workspace, spec: str, filter: str | None, *, add: list[str] | None = None,
                remove: list[str] | None = None, message: str | None = None,
                author: str | None = None) -> vs.CommitResult:
    """Add and/or remove tags on every sample matching ``filter``."""
    add, remove = list(add or []), list(remove or [])
    if not add and not remove:
        raise InvalidInput("give at least one tag to add or remove")
    for t in (*add, *remove):
        vs.check_name("tag", t)
    at = vs.resolve(ws, spec)
    branch = vs.branch_of(ws, at)

    def build(head: VersionRecord, tables: DatasetTables) -> vs.Changes:
        head_at = vs.DatasetAt(at.dataset, head, branch)
        with VersionReader(ws, head_at, filter) as r:
            matched = r.query("SELECT * FROM {m}")
        new_tags, mask = [], []
        for tags in matched.column("tags").to_pylist():
            cur = list(tags or [])
            nt = sorted((set(cur) | set(add)) - set(remove))
            new_tags.append(nt)
            mask.append(nt != sorted(cur))
        t = matched.set_column(matched.schema.get_field_index("tags"), "tags",
                               pa.array(new_tags, pa.list_(pa.string()))).filter(pa.array(mask, pa.bool_()))
        changes = vs.Changes()
        if t.num_rows:
            changes.samples = TableChange(upserts=rows.with_row_hash(t, "samples"))
            changes.counts["samples"]["changed"] = t.num_rows
        return changes

    parts = [*(f"+{t}" for t in add), *(f"-{t}" for t in remove)]
    return vs.commit(ws, at.dataset, branch, build, author=author, operation="tag-samples",
                     params={"filter": filter, "add": add, "remove": remove},
                     message=message or f"tag samples {' '.join(parts)}"
                                        f"{f' where {filter}' if filter else ''}")
