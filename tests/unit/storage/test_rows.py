"""Label rows: ids derived in bulk must be the ids every earlier import gave."""

from __future__ import annotations

import pytest

from viewfinder.core.types import LabelKind, SourceLabel
from viewfinder.storage import rows


def test_ids_derived_for_a_whole_table_equal_the_per_label_ids() -> None:
    """An import derives the ids of labels with a source id in DuckDB; a re-import into a
    workspace made before must find the very same ids (else every label would read as
    removed and added)."""
    labels = [
        SourceLabel(LabelKind.BOX, "car", (1.0, 2.0, 3.0, 4.0), source_id="17"),
        SourceLabel(LabelKind.POLYGON, "vélo", (0.0, 0.0, 2.0, 2.0), polygon=[[0, 0, 2, 0, 2, 2]],
                    source_id="shape:ünï 3"),
        SourceLabel(LabelKind.CLASSIFICATION, "dog", source_id="-4", source="model:run 7"),
        SourceLabel(LabelKind.BOX, "car", (1.0, 2.0, 3.0, 4.0), source_id="18"),
    ]
    derived, given = rows.LabelColumns(), rows.LabelColumns()
    for i, lab in enumerate(labels):
        sid = rows.sample_id(f"img/{i % 2}.jpg")
        derived.add(lab, label_id=None, sample_id_=sid)
        given.add(lab, label_id=rows.short_hash("label", sid, lab.source, lab.source_id), sample_id_=sid)
    assert derived.table().equals(given.table())
    assert len(set(derived.table().column("id").to_pylist())) == 4


def test_a_label_without_a_source_id_needs_an_id() -> None:
    with pytest.raises(ValueError, match="source id"):
        rows.LabelColumns().add(SourceLabel(LabelKind.BOX, "car", (1.0, 2.0, 3.0, 4.0)),
                                label_id=None, sample_id_="s")
