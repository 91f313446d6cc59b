"""Image integrity: every image decodes, is large enough, in an allowed format and mode,
with a sane aspect ratio.

Resolution, format and aspect ratio come from the samples table (measured at import),
so they cost no pixels. Decoding uses the ``image_problems`` detector and the mode check
reads each image's header; both are dropped when a suite runs without pixels. Example::

    - name: images usable
      check: image_integrity
      params: {min_width: 64, min_height: 64, formats: [jpeg, png], modes: [RGB], max_aspect_ratio: 4}
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from viewfinder.quality.checks import CheckConfig
from viewfinder.quality.checks.result import Chart, CheckResult, Failing
from viewfinder.quality.context import QualityContext


class ImageIntegrityConfig(CheckConfig):
    decode: bool = Field(True, description="Decode every image (image_problems detector; reads pixels).")
    problem_kinds: list[str] = Field(
        default_factory=lambda: ["corrupt"],
        description="image_problems finding kinds that mean the image is broken.")
    detector_params: dict[str, Any] = Field(default_factory=dict,
                                            description="Parameters of the image_problems detector.")
    min_width: int = Field(16, ge=1)
    min_height: int = Field(16, ge=1)
    formats: list[str] | None = Field(None, description="Allowed formats: jpeg, png, ... (default: any).")
    modes: list[str] | None = Field(None, description="Allowed Pillow modes: RGB, L, ... (reads headers).")
    max_aspect_ratio: float = Field(10.0, ge=1, description="Longer side / shorter side.")
    max_failing: int = Field(0, ge=0, description="Samples that may fail.")


def _format_of(media_type: str | None) -> str:
    sub = (media_type or "").rpartition("/")[2].lower()
    return {"jpg": "jpeg", "tif": "tiff"}.get(sub, sub)


class ImageIntegrityCheck:
    name = "image_integrity"
    Config = ImageIntegrityConfig
    needs_pixels = True
    description = "images decode; minimum resolution; allowed formats and modes; aspect-ratio bounds"

    def without_pixels(self, config: ImageIntegrityConfig) -> ImageIntegrityConfig:
        return config.model_copy(update={"decode": False, "modes": None})

    def run(self, ctx: QualityContext, config: ImageIntegrityConfig, scope: str | None) -> CheckResult:
        conds: dict[str, tuple[str, list[Any]]] = {
            "unknown size": ("width IS NULL OR height IS NULL OR width <= 0 OR height <= 0", []),
            "below minimum resolution": ("width < ? OR height < ?", [config.min_width, config.min_height]),
            "aspect ratio out of bounds": (
                "width > 0 AND height > 0 AND greatest(width, height) / least(width, height) > ?",
                [config.max_aspect_ratio]),
        }
        if config.formats is not None:
            allowed = sorted({_format_of(f"x/{f}") for f in config.formats})
            conds["format not allowed"] = (
                ("NOT list_contains(?, lower(replace(replace(regexp_replace(coalesce(media_type, ''), "
                 "'^.*/', ''), 'jpg', 'jpeg'), 'tif', 'tiff')))"), [allowed])
        flags = ", ".join(f"({c}) AS p{i}" for i, (c, _) in enumerate(conds.values()))
        where = " OR ".join(f"({c})" for c, _ in conds.values())
        params = [p for _, ps in conds.values() for p in ps]
        bad = ctx.sql(f"SELECT id, {flags} FROM {{m}} WHERE {where}", params + params, filter=scope)
        per_problem: dict[str, int] = {}
        for i, problem in enumerate(conds):
            if (k := sum(1 for v in bad.column(f"p{i}").to_pylist() if v)):
                per_problem[problem] = k
        failing = set(bad.column("id").to_pylist())
        if config.decode or config.modes is not None:
            in_scope = ctx.sql("SELECT id, content_hash FROM {m}", filter=scope)
            ids = in_scope.column("id").to_pylist()
            if config.decode:
                from viewfinder.quality import detectors

                scoped = set(ids)
                broken = {f.sample_id for f in detectors.run(ctx, "image_problems", config.detector_params)
                          if f.kind in config.problem_kinds and f.sample_id in scoped}
                if broken:
                    per_problem["does not decode"] = len(broken)
                    failing |= broken
            if config.modes is not None:
                wrong = self._wrong_modes(ctx, ids, in_scope.column("content_hash").to_pylist(), set(config.modes))
                if wrong:
                    per_problem["mode not allowed"] = len(wrong)
                    failing |= wrong
        samples = Failing.of(failing)
        sizes = ctx.sql("SELECT width || 'x' || height AS k, count(*) AS n FROM {m} "
                        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 12", filter=scope).to_pylist()
        msg = (f"{samples.count} image(s) fail: " + ", ".join(f"{k} ({n})" for k, n in per_problem.items())
               ) if samples.count else "every image passes"
        checked = ["size", "aspect ratio", *(["format"] if config.formats is not None else []),
                   *(["decode"] if config.decode else []), *(["mode"] if config.modes is not None else [])]
        return CheckResult(
            passed=samples.count <= config.max_failing, value=samples.count,
            threshold=config.max_failing, message=msg, sample_ids=samples.ids,
            sample_count=samples.count, details={"problems": per_problem, "checked": checked},
            charts=[Chart("most common image sizes", {"samples": {str(r["k"]): float(r["n"]) for r in sizes}})])

    @staticmethod
    def _wrong_modes(ctx: QualityContext, ids: list[str], hashes: list[str], modes: set[str]) -> set[str]:
        """Samples whose image header names a mode not in ``modes`` (or cannot be read)."""
        import io

        from PIL import Image, UnidentifiedImageError

        seen: dict[str, str | None] = {}
        wrong = set()
        for n, (sid, h) in enumerate(zip(ids, hashes, strict=True)):
            if h not in seen:
                try:
                    with Image.open(io.BytesIO(ctx.image_bytes(h))) as im:
                        seen[h] = im.mode
                except (OSError, UnidentifiedImageError, ValueError):
                    seen[h] = None
            if seen[h] not in modes:
                wrong.add(sid)
            if n % 256 == 0:
                ctx.progress("image modes", n, len(ids))
        return wrong


CHECK = ImageIntegrityCheck()
