"""Arrow schemas of the per-dataset tables.

Both tables carry a ``row_hash``: a digest of every column a user can change, so a diff
between two versions is a join on ``id`` comparing ``row_hash`` (same id, other hash =
*changed*). JSON columns hold canonical JSON (sorted keys, no spaces) so equal content
gives equal bytes.
"""

from __future__ import annotations

import pyarrow as pa

NO_SPLIT = "(unassigned)"
"""How statistics name the samples that have no split."""

GROUND_TRUTH_SQL = "coalesce(source, 'ground_truth') = 'ground_truth'"
"""SQL condition on a labels row: it is ground truth, not a prediction (a model's label)."""

SAMPLES = pa.schema([
    pa.field("id", pa.string(), nullable=False),          # stable: derived from the key
    pa.field("key", pa.string(), nullable=False),         # path relative to the source root
    pa.field("content_hash", pa.string(), nullable=False),  # sha256 of the image bytes
    pa.field("width", pa.int32()),                        # after EXIF orientation
    pa.field("height", pa.int32()),
    pa.field("size_bytes", pa.int64()),
    pa.field("media_type", pa.string()),                  # e.g. image/jpeg
    pa.field("split", pa.string()),
    pa.field("tags", pa.list_(pa.string())),
    pa.field("metadata", pa.string()),                    # canonical JSON object
    pa.field("row_hash", pa.string(), nullable=False),
])

LABELS = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),        # LabelKind value
    pa.field("class_name", pa.string(), nullable=False),
    pa.field("x", pa.float64()),                          # bounding box (derived for
    pa.field("y", pa.float64()),                          # polygons and masks), null for
    pa.field("w", pa.float64()),                          # classification labels
    pa.field("h", pa.float64()),
    pa.field("area", pa.float64()),                       # polygon/mask area, else w*h
    pa.field("iscrowd", pa.bool_()),
    pa.field("polygon", pa.list_(pa.list_(pa.float64()))),
    pa.field("mask", pa.string()),                        # canonical JSON of COCO RLE
    pa.field("keypoints", pa.list_(pa.float64())),
    pa.field("attributes", pa.string()),                  # canonical JSON object
    pa.field("score", pa.float64()),
    pa.field("source", pa.string()),                      # "ground_truth" or a model run
    pa.field("source_id", pa.string()),                   # id in the source format
    pa.field("row_hash", pa.string(), nullable=False),
])

FINDINGS = pa.schema([  # what detectors found, per version (see quality.findings)
    pa.field("version_id", pa.string(), nullable=False),
    pa.field("detector", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("score", pa.float64(), nullable=False),
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("label_id", pa.string()),
    pa.field("group_id", pa.string()),
    pa.field("evidence", pa.string()),          # canonical JSON object
])
