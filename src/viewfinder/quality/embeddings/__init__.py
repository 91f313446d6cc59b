"""Embeddings: image vectors for near-duplicates, outliers and similarity search.

- :mod:`.base`: the :class:`EmbeddingProvider` protocol and :func:`get_provider`;
- :mod:`.builtin`: a numpy/Pillow embedding made for near-duplicates (no weights);
- :mod:`.learned`: CLIP and DINOv2 through transformers (the ``learned`` extra);
- :mod:`.store`: vectors computed once per (provider, image) and kept in a Lance table.

Importing this package imports neither torch nor Lance.
"""

from viewfinder.quality.embeddings.base import (
    EmbeddingProvider,
    ProviderConfig,
    get_provider,
    names,
)

__all__ = ["EmbeddingProvider", "ProviderConfig", "get_provider", "names"]
