"""Where the peer datasets written by other tools live: ``../shared/fixtures/peer/datumaro``
next to the repository (so it is in CI, which lays ``shared/`` beside its clone)."""

from pathlib import Path

PEER = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "peer" / "datumaro"
