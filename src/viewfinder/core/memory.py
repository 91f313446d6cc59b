"""Memory helpers shared by the layers (standard library only)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (if it runs) for the block.

    Reading a dataset builds hundreds of thousands of long-lived containers (parsed JSON,
    samples, labels, rows) and no reference cycles; with the collector on, its full passes
    over them cost as much as the work itself. Blocks nest: the outermost restores.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
