"""Label errors in classification labels: confident learning over out-of-fold probabilities.

Each sample with one ground-truth class gets a predicted class distribution that did not
see its own label:

- from a model's imported predictions (``viewfinder import-predictions --format
  classification-csv``) when ``model`` names one, or when ``source="auto"`` and a model's
  predictions are present. A full distribution (``attributes["probs"]``) is used as it is;
  a top-1 prediction ``(class, score)`` becomes ``score`` on its class and the rest spread
  evenly. Such predictions should come from a model that was not trained on these labels
  (cross-validation or a held-out split), as cleanlab assumes;
- else from image features and a scikit-learn logistic regression, with
  ``cross_val_predict`` over stratified folds, so every probability is out of fold. The
  features are the embeddings of ``provider`` (``viewfinder.quality.embeddings``) or, with
  ``features="pixels"`` or when embeddings are not available, the image's grayscale pixels
  scaled to ``pixel_size``².

``cleanlab.filter.find_label_issues`` picks the likely errors; each becomes a
``label_error`` finding on the label, with ``score = 1 - label quality`` (cleanlab's
self-confidence: the probability of the given class) and evidence ``given_class``,
``suggested_class``, ``self_confidence``, ``suggested_confidence``, ``probabilities_from``.

:func:`out_of_fold_probabilities` and :func:`find_errors` take plain arrays, so the same
steps run on any features.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from viewfinder.errors import InvalidInput
from viewfinder.quality.findings import Finding

if TYPE_CHECKING:
    from viewfinder.quality.context import QualityContext

GROUND_TRUTH_SQL = "coalesce(l.source, 'ground_truth') = 'ground_truth'"


class Config(BaseModel):
    """Parameters of the classification label-error detector."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["auto", "predictions", "features"] = "auto"
    """Where probabilities come from: a model's imported predictions, features + logistic
    regression, or ``auto`` (predictions when a model's are present, else features)."""
    model: str | None = None
    """The model whose predictions to use (default: the only model present)."""
    features: Literal["auto", "embeddings", "pixels"] = "auto"
    """``auto``: embeddings when the embeddings module is installed, else pixels."""
    provider: str = "builtin"
    """Embedding provider (with ``features="embeddings"``)."""
    pixel_size: int = Field(16, ge=4, le=64)
    """Side of the grayscale thumbnail used as pixel features."""
    folds: int = Field(5, ge=2, le=20)
    seed: int = 0
    filter_by: Literal["prune_by_noise_rate", "prune_by_class", "both",
                       "confident_learning", "predicted_neq_given"] = "prune_by_noise_rate"
    """cleanlab's rule for picking label issues."""


@dataclass(frozen=True)
class _Labeled:
    label_ids: list[str]
    sample_ids: list[str]
    content_hashes: list[str]
    given: np.ndarray        # class index per sample
    classes: list[str]


def _labeled(ctx: QualityContext) -> _Labeled:
    """Samples with exactly one ground-truth class, in key order."""
    rows = ctx.sql(f"""
        SELECT s.id AS sample_id, s.content_hash, any_value(l.id) AS label_id,
               any_value(l.class_name) AS class_name, s.key
        FROM labels l JOIN samples s ON l.sample_id = s.id
        WHERE l.kind = 'classification' AND {GROUND_TRUTH_SQL}
        GROUP BY s.id, s.content_hash, s.key
        HAVING count(DISTINCT l.class_name) = 1
        ORDER BY s.key""").to_pylist()
    counts = Counter(r["class_name"] for r in rows)
    order = {c: i for i, c in enumerate(ctx.classes)}
    # a class needs two examples to be judged; classes outside the schema go last
    kept = [r for r in rows if counts[r["class_name"]] >= 2]
    classes = sorted({r["class_name"] for r in kept}, key=lambda c: (order.get(c, len(order)), c))
    index = {c: i for i, c in enumerate(classes)}
    return _Labeled([r["label_id"] for r in kept], [r["sample_id"] for r in kept],
                    [r["content_hash"] for r in kept],
                    np.array([index[r["class_name"]] for r in kept], dtype=np.int64), classes)


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, *, folds: int = 5,
                              seed: int = 0) -> np.ndarray:
    """Predicted class probabilities for every row from a model that did not see its label.

    A standardized logistic regression, ``cross_val_predict`` over stratified folds
    (fewer folds when the smallest class has fewer members).

    Args:
        features: ``(n, d)`` features.
        labels: ``(n,)`` class indices ``0..k-1`` (every class present).
        folds: number of folds.
        seed: shuffling seed of the folds.

    Returns:
        ``(n, k)`` probabilities.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    smallest = int(np.bincount(labels).min())
    cv = StratifiedKFold(n_splits=max(2, min(folds, smallest)), shuffle=True, random_state=seed)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny class may miss from a training fold
        probs: np.ndarray = cross_val_predict(clf, features, labels, cv=cv, method="predict_proba")
    return probs


@dataclass(frozen=True)
class Errors:
    """What :func:`find_errors` returns: the flagged rows and every row's label quality."""

    indices: np.ndarray          # rows flagged as label errors
    quality: np.ndarray          # (n,) label quality in [0, 1] (1: surely right)


def find_errors(labels: np.ndarray, probs: np.ndarray, *,
                filter_by: str = "prune_by_noise_rate") -> Errors:
    """cleanlab's label issues and label quality scores for given labels and probabilities."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mask = find_label_issues(labels, probs, filter_by=filter_by)
        quality = get_label_quality_scores(labels, probs, method="self_confidence")
    return Errors(np.flatnonzero(mask), np.asarray(quality, dtype=np.float64))


def _model_sources(ctx: QualityContext) -> list[str]:
    return ctx.sql("SELECT DISTINCT source FROM labels WHERE kind = 'classification' "
                   "AND source LIKE 'model:%' ORDER BY 1").column("source").to_pylist()


def _probs_from_predictions(ctx: QualityContext, data: _Labeled, source: str) -> np.ndarray:
    """Each sample's distribution from the model's predictions (see the module docstring)."""
    k = len(data.classes)
    index = {c: i for i, c in enumerate(data.classes)}
    preds = ctx.sql("""SELECT sample_id, class_name, score, attributes FROM labels
        WHERE kind = 'classification' AND source = ? ORDER BY sample_id, score DESC""",
                    [source]).to_pylist()
    by: dict[str, np.ndarray] = {}
    for p in preds:
        if p["sample_id"] in by:
            continue  # the top prediction of a sample
        probs = (json.loads(p["attributes"] or "{}")).get("probs")
        v = np.zeros(k)
        if isinstance(probs, dict):
            for c, x in probs.items():
                if c in index:
                    v[index[c]] = float(x)
        elif p["class_name"] in index:
            s = float(p["score"] if p["score"] is not None else 1.0)
            v[:] = (1.0 - s) / max(k - 1, 1)
            v[index[p["class_name"]]] = s
        total = v.sum()
        by[p["sample_id"]] = v / total if total > 0 else np.full(k, 1.0 / k)
    missing = [s for s in data.sample_ids if s not in by]
    if missing:
        raise InvalidInput(f"{len(missing)} labeled sample(s) have no prediction of "
                           f"{source.removeprefix('model:')}; import predictions for every "
                           "sample, or use source=features")
    return np.stack([by[s] for s in data.sample_ids])


def _embeddings_module() -> object | None:
    try:
        from viewfinder.quality.embeddings import store
    except ImportError:
        return None
    return store


def pixel_features(ctx: QualityContext, content_hashes: list[str], size: int) -> np.ndarray:
    """Grayscale ``size``×``size`` thumbnails, flattened to ``[0, 1]`` (one row per hash)."""
    import io

    from PIL import Image, ImageOps

    unique = list(dict.fromkeys(content_hashes))

    def compute() -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, h in enumerate(unique):
            with Image.open(io.BytesIO(ctx.image_bytes(h))) as im:
                g = ImageOps.exif_transpose(im).convert("L").resize((size, size), Image.Resampling.BILINEAR)
                out[h] = np.asarray(g, dtype=np.float32).ravel() / 255.0
            if i % 256 == 0 or i + 1 == len(unique):
                ctx.progress("pixel features", i + 1, len(unique))
        return out

    cached: dict[str, np.ndarray] = ctx.memo(f"features:pixels:{size}", compute)
    missing = [h for h in unique if h not in cached]
    if missing:  # a context sees one version: every hash is there after the first call
        cached.update({h: v for h, v in compute().items() if h in missing})
    return np.stack([cached[h] for h in content_hashes])


def _features(ctx: QualityContext, data: _Labeled, config: Config) -> tuple[np.ndarray, list[int], str]:
    """Features of the labeled samples: ``(features, rows of data they belong to, origin)``
    (an image the embedding provider cannot decode has no row)."""
    kind = config.features
    store = _embeddings_module() if kind != "pixels" else None
    if kind == "embeddings" and store is None:
        raise InvalidInput("features=embeddings needs viewfinder.quality.embeddings, which is "
                           "not available; use features=pixels")
    if store is not None:
        hashes, vectors = store.compute(ctx, config.provider)  # type: ignore[attr-defined]
        row = {h: i for i, h in enumerate(hashes)}
        keep = [i for i, h in enumerate(data.content_hashes) if h in row]
        return (np.asarray(vectors)[[row[data.content_hashes[i]] for i in keep]], keep,
                f"embeddings:{config.provider}")
    return (pixel_features(ctx, data.content_hashes, config.pixel_size), list(range(len(data.label_ids))),
            f"pixels:{config.pixel_size}")


def _subset(data: _Labeled, rows: list[int]) -> tuple[_Labeled, list[int]]:
    """The rows ``rows`` of ``data`` whose class keeps two examples (classes reindexed),
    and their positions in ``rows``."""
    counts = np.bincount(data.given[rows], minlength=len(data.classes))
    pos = [n for n, i in enumerate(rows) if counts[data.given[i]] >= 2]
    kept = [rows[n] for n in pos]
    used = sorted({int(data.given[i]) for i in kept})
    new_index = {old: n for n, old in enumerate(used)}
    return _Labeled([data.label_ids[i] for i in kept], [data.sample_ids[i] for i in kept],
                    [data.content_hashes[i] for i in kept],
                    np.array([new_index[int(data.given[i])] for i in kept], dtype=np.int64),
                    [data.classes[c] for c in used]), pos


class LabelErrorsClassification:
    name = "label_errors_classification"
    Config = Config
    needs_pixels = True
    description = ("Classification labels that disagree with out-of-fold predicted "
                   "probabilities (confident learning, cleanlab).")

    def run(self, ctx: QualityContext, config: Config) -> list[Finding]:
        data = _labeled(ctx)
        if len(data.classes) < 2:
            return []
        models = _model_sources(ctx)
        use_predictions = config.source == "predictions" or (
            config.source == "auto" and (config.model is not None or bool(models)))
        if use_predictions:
            if config.model is not None:
                source = f"model:{config.model}"
                if source not in models:
                    raise InvalidInput(f"no classification predictions of model {config.model!r} "
                                       f"in this version (models: {', '.join(m[6:] for m in models) or 'none'})")
            elif len(models) == 1:
                source = models[0]
            else:
                raise InvalidInput("name the model whose predictions to use (model=...); this "
                                   f"version has {', '.join(m[6:] for m in models) or 'none'}")
            probs, origin = _probs_from_predictions(ctx, data, source), source
        else:
            features, rows, origin = _features(ctx, data, config)
            if len(rows) < len(data.label_ids):  # images the provider could not decode
                data, kept = _subset(data, rows)
                features = features[kept]
                if len(data.classes) < 2:
                    return []
            ctx.progress("cross-validation", 0, config.folds)
            probs = out_of_fold_probabilities(features, data.given, folds=config.folds, seed=config.seed)
            ctx.progress("cross-validation", config.folds, config.folds)
            origin = f"cross-validation on {origin}"
        errors = find_errors(data.given, probs, filter_by=config.filter_by)
        findings = []
        for i in errors.indices:
            suggested = int(np.argmax(probs[i]))
            findings.append(Finding(
                kind="label_error", score=float(1.0 - errors.quality[i]),
                sample_id=data.sample_ids[i], label_id=data.label_ids[i],
                evidence={"given_class": data.classes[int(data.given[i])],
                          "suggested_class": data.classes[suggested],
                          "self_confidence": round(float(probs[i, data.given[i]]), 4),
                          "suggested_confidence": round(float(probs[i, suggested]), 4),
                          "probabilities_from": origin}))
        findings.sort(key=lambda f: (-f.score, f.sample_id))
        return findings


DETECTOR = LabelErrorsClassification()
