"""``image_problems``: images a model should not learn from as they are.

Kinds (one finding per sample and kind; scores in [0, 1], 0.5 at the threshold, rising
to 1 as the measurement moves away from it):

- ``corrupt``: the image does not decode to its end (truncated, not an image, a
  decompression bomb) or its bytes are missing from the store. Score 1.
- ``dark`` / ``bright``: mean luminance below ``dark_max`` / above ``bright_min``.
- ``blurry``: little high-frequency detail, both in absolute terms (variance of the
  Laplacian below ``blur_max``) and relative to the image's own contrast (that variance
  over the luminance variance below ``sharpness_max``), so a sharp but dark image is not
  called blurry. Nearly blank images are ``low_information`` instead.
- ``low_information``: luminance entropy below ``entropy_min`` bits (blank, a solid
  colour, a lens cap).
- ``odd_size`` / ``odd_aspect_ratio``: far from the dataset's own distribution: the log of
  the area (or of width/height) more than ``z_threshold`` robust z-scores (median and MAD)
  from the median **and** more than ``size_factor`` (``aspect_factor``) times off, so a
  dataset of one size does not flag a 641×480 image; any side under ``min_side`` is odd.
- ``grayscale``: an image without colour, when more than ``color_majority`` of the
  dataset's images are colour (a grayscale dataset is fine).

Pixel statistics come from :func:`viewfinder.quality.imagescan.scan` (one decode per
distinct image, cached per content hash); sizes from the samples table.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from viewfinder.quality.findings import Finding

if TYPE_CHECKING:
    import numpy as np

    from viewfinder.quality.context import QualityContext

KINDS = ("corrupt", "dark", "bright", "blurry", "low_information", "odd_size",
         "odd_aspect_ratio", "grayscale")


class ImageProblemsConfig(BaseModel):
    """Thresholds of ``image_problems`` (luminance and entropy as ``imagescan`` measures them)."""

    model_config = ConfigDict(extra="forbid")

    kinds: list[str] = Field(default_factory=lambda: list(KINDS),
                             description="Which problems to look for.")
    dark_max: float = Field(0.1, gt=0, lt=1, description="Mean luminance (0..1) below which "
                                                         "an image is dark.")
    bright_min: float = Field(0.9, gt=0, lt=1, description="Mean luminance above which an "
                                                           "image is bright (washed out).")
    blur_max: float = Field(0.001, gt=0, description="Variance of the Laplacian (0..1 "
                                                     "luminance, long side 128 px) below "
                                                     "which an image may be blurry.")
    sharpness_max: float = Field(0.05, gt=0, description="That variance over the luminance "
                                                         "variance, below which it is blurry.")
    entropy_min: float = Field(1.0, ge=0, le=8, description="Luminance entropy (bits) below "
                                                            "which an image carries little "
                                                            "information.")
    z_threshold: float = Field(3.5, gt=0, description="Robust z-score beyond which a size or "
                                                      "aspect ratio is odd for the dataset.")
    size_factor: float = Field(4.0, gt=1, description="...and the area differs from the "
                                                      "median area by more than this factor.")
    aspect_factor: float = Field(2.0, gt=1, description="...and the aspect ratio differs from "
                                                        "the median by more than this factor.")
    min_side: int = Field(16, ge=1, description="Images with a side shorter than this (px) "
                                                "are odd whatever the dataset.")
    color_majority: float = Field(0.5, ge=0, lt=1, description="Grayscale images are flagged "
                                                               "only when more than this share "
                                                               "of the images are colour.")

    @model_validator(mode="after")
    def _known_kinds(self) -> ImageProblemsConfig:
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
        if self.dark_max >= self.bright_min:
            raise ValueError("dark_max must be below bright_min")
        return self


def _beyond(value: float, threshold: float, span: float) -> float:
    """Score of a measurement ``span`` past its threshold: 0.5 at it, 1 a full span away."""
    if span <= 0:
        return 1.0
    return float(min(1.0, 0.5 + 0.5 * abs(value - threshold) / span))


def _odd(values: np.ndarray, z_threshold: float, min_log_factor: float,
         ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Which log-values are odd: beyond ``z_threshold`` robust z-scores and ``min_log_factor``
    from the median. Returns ``(odd mask, deviation, limit, median)``."""
    import numpy as np

    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * 1.4826
    deviation = np.abs(values - median)
    limit = max(z_threshold * mad, min_log_factor)
    return deviation > limit, deviation, limit, median


class ImageProblems:
    name = "image_problems"
    Config = ImageProblemsConfig
    needs_pixels = True
    description = ("Corrupt, dark, bright, blurry and near-blank images; sizes and aspect "
                   "ratios odd for the dataset; grayscale images in a colour dataset.")

    def run(self, ctx: QualityContext, config: ImageProblemsConfig) -> list[Finding]:
        from viewfinder.quality import imagescan

        samples = ctx.sql("SELECT id, content_hash, width, height FROM samples ORDER BY key")
        if samples.num_rows == 0:
            return []
        stats = {r["content_hash"]: r for r in imagescan.scan(ctx).to_pylist()}
        ctx.progress("image problems", 0, 1)
        kinds = set(config.kinds)
        found: list[Finding] = []
        rows = samples.to_pylist()
        for r in rows:
            s = stats.get(r["content_hash"])
            if s is None:
                continue
            if not s["ok"]:
                if "corrupt" in kinds:
                    found.append(Finding("corrupt", 1.0, r["id"], evidence={
                        "error": s["error"], "detail": s["error_detail"]}))
                continue
            found.extend(_pixel_findings(r["id"], s, config, kinds))
        if kinds & {"odd_size", "odd_aspect_ratio"}:
            found.extend(_geometry_findings(rows, config, kinds))
        if "grayscale" in kinds:
            found.extend(_grayscale_findings(rows, stats, config))
        ctx.progress("image problems", 1, 1)
        return found


def _pixel_findings(sample_id: str, s: dict[str, Any], config: ImageProblemsConfig,
                    kinds: set[str]) -> list[Finding]:
    out: list[Finding] = []
    b = float(s["brightness"])
    if "dark" in kinds and b < config.dark_max:
        out.append(Finding("dark", _beyond(b, config.dark_max, config.dark_max), sample_id,
                           evidence={"brightness": round(b, 4), "threshold": config.dark_max}))
    if "bright" in kinds and b > config.bright_min:
        out.append(Finding("bright", _beyond(b, config.bright_min, 1 - config.bright_min),
                           sample_id, evidence={"brightness": round(b, 4),
                                                "threshold": config.bright_min}))
    entropy = float(s["entropy"])
    low_info = entropy < config.entropy_min
    if "low_information" in kinds and low_info:
        out.append(Finding("low_information", _beyond(entropy, config.entropy_min,
                                                      config.entropy_min), sample_id,
                           evidence={"entropy": round(entropy, 4),
                                     "threshold": config.entropy_min}))
    blur, contrast = float(s["blur"]), float(s["contrast"])
    sharpness = blur / max(contrast * contrast, 1e-12)
    if ("blurry" in kinds and not low_info and blur < config.blur_max
            and sharpness < config.sharpness_max):
        out.append(Finding("blurry", _beyond(sharpness, config.sharpness_max,
                                             config.sharpness_max), sample_id,
                           evidence={"blur": round(blur, 6), "sharpness": round(sharpness, 4),
                                     "blur_max": config.blur_max,
                                     "sharpness_max": config.sharpness_max}))
    return out


def _geometry_findings(rows: list[dict[str, Any]], config: ImageProblemsConfig,
                       kinds: set[str]) -> list[Finding]:
    import numpy as np

    sized = [r for r in rows if r["width"] and r["height"]]
    if not sized:
        return []
    w = np.array([r["width"] for r in sized], dtype=np.float64)
    h = np.array([r["height"] for r in sized], dtype=np.float64)
    out: list[Finding] = []
    if "odd_size" in kinds:
        odd, dev, limit, median = _odd(np.log(w * h), config.z_threshold, math.log(config.size_factor))
        tiny = np.minimum(w, h) < config.min_side
        for i in np.flatnonzero(odd | tiny):
            out.append(Finding("odd_size", 1.0 if tiny[i] and not odd[i] else
                               _beyond(float(dev[i]), limit, limit), sized[i]["id"], evidence={
                "width": int(w[i]), "height": int(h[i]),
                "median_area": round(math.exp(median)), "area_ratio": round(
                    float(w[i] * h[i]) / math.exp(median), 4), "min_side": config.min_side}))
    if "odd_aspect_ratio" in kinds:
        odd, dev, limit, median = _odd(np.log(w / h), config.z_threshold,
                                       math.log(config.aspect_factor))
        for i in np.flatnonzero(odd):
            out.append(Finding("odd_aspect_ratio", _beyond(float(dev[i]), limit, limit),
                               sized[i]["id"], evidence={
                "width": int(w[i]), "height": int(h[i]),
                "aspect_ratio": round(float(w[i] / h[i]), 4),
                "median_aspect_ratio": round(math.exp(median), 4)}))
    return out


def _grayscale_findings(rows: list[dict[str, Any]], stats: dict[str, dict[str, Any]],
                        config: ImageProblemsConfig) -> list[Finding]:
    images = {h: s for h, s in stats.items() if s["ok"]}
    if not images:
        return []
    color_share = sum(1 for s in images.values() if not s["is_grayscale"]) / len(images)
    if color_share <= config.color_majority:
        return []
    out = []
    for r in rows:
        s = images.get(r["content_hash"])
        if s is not None and s["is_grayscale"]:
            out.append(Finding("grayscale", round(color_share, 4), r["id"], evidence={
                "mode": s["mode"], "colorfulness": round(float(s["colorfulness"]), 4),
                "color_share": round(color_share, 4)}))
    return out


DETECTOR = ImageProblems()
