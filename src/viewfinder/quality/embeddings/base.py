"""The embedding provider interface and its registry.

A provider turns images into float32 vectors, one row per image, L2-normalized, so that the
cosine distance (1 − dot product) measures how different two images look. Providers are
named explicitly in :data:`PROVIDERS`; listing them imports none (a learned provider pulls
in torch only when it is built).

Example:
    >>> from PIL import Image
    >>> p = get_provider("builtin")
    >>> v = p.embed([Image.new("RGB", (64, 48), (200, 30, 30))])
    >>> v.shape == (1, p.dim), v.dtype.name
    (True, 'float32')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from viewfinder.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Images in, L2-normalized float32 vectors out.

    Attributes:
        name: identifies the provider *and its weights* (``builtin-v1``,
            ``clip:openai/clip-vit-base-patch32``): stored vectors are keyed by it, so two
            models never share cached vectors.
        dim: the vector length.
        batch_size: how many images the caller should hand to one :meth:`embed` call.
        input_side: the short side images need (JPEGs are decoded DCT-scaled down to it).
        cpu_parallel: whether embedding is pure CPU work worth spreading over processes.
        config: the configuration that rebuilds this provider (in a worker process).
    """

    name: str
    dim: int
    batch_size: int
    input_side: int
    cpu_parallel: bool
    config: ProviderConfig

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """``(len(images), dim)`` float32, each row of unit length."""
        ...


class ProviderConfig(BaseModel):
    """What a user may set for a provider; a misspelled option is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["builtin", "clip", "dinov2"] = "builtin"
    model: str | None = Field(default=None, description="Local folder or model-hub id of the "
                                                          "weights (learned providers).")
    random_init: bool = Field(default=False, description="Build the model from its configuration "
                                                         "with random weights (tests; no download).")
    batch_size: int = Field(default=32, ge=1, le=4096)
    device: str | None = Field(default=None, description="torch device; default: CUDA when "
                                                         "available, else CPU.")


PROVIDERS: dict[str, str] = {
    "builtin": "viewfinder.quality.embeddings.builtin:BuiltinProvider",
    "clip": "viewfinder.quality.embeddings.learned:ClipProvider",
    "dinov2": "viewfinder.quality.embeddings.learned:Dinov2Provider",
}


def names() -> list[str]:
    """The provider names :func:`get_provider` accepts."""
    return list(PROVIDERS)


def get_provider(name: str = "builtin", *, model: str | None = None, random_init: bool = False,
                 batch_size: int | None = None, device: str | None = None) -> EmbeddingProvider:
    """Build the provider ``name``.

    Args:
        name: ``builtin`` (numpy + Pillow, no weights), ``clip`` or ``dinov2`` (need the
            ``learned`` extra: torch + transformers).
        model: learned providers: a local folder or model-hub id (default: the family's
            small public checkpoint, which must be reachable or cached).
        random_init: learned providers: random weights from the default configuration.
        batch_size: images per :meth:`EmbeddingProvider.embed` call.
        device: learned providers: ``cpu``, ``cuda``, ``cuda:1``...

    Raises:
        InvalidInput: unknown provider, or an option the provider does not take.
        MissingDependency: a learned provider without torch/transformers installed.
    """
    if name not in PROVIDERS:
        raise InvalidInput(f"unknown embedding provider {name!r}; known: {', '.join(PROVIDERS)}")
    try:
        config = ProviderConfig(provider=name, model=model, random_init=random_init,  # type: ignore[arg-type]
                                batch_size=batch_size or (256 if name == "builtin" else 32),
                                device=device)
    except ValidationError as e:
        raise InvalidInput(f"embedding provider {name}: {e}") from None
    if name == "builtin" and (model or random_init or device):
        raise InvalidInput("the builtin embedding provider takes no model, random_init or device")
    module, _, cls = PROVIDERS[name].partition(":")
    provider: EmbeddingProvider = getattr(importlib.import_module(module), cls)(config)
    return provider
