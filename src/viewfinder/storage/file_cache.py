"""What an import already knows about source files: hash, size and type by file identity.

Re-importing a source (the usual case: a vendor sends corrected labels for the same
images) need not read and hash every image again. As git does, a file whose device,
inode, size and modification time are unchanged since it was hashed keeps its hash; a
file touched in any way is read again. ``viewfinder import --rehash`` ignores the cache.
Kept in SQLite under ``<workspace>/cache/files.sqlite``; losing it only costs time.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

Identity = tuple[int, int, int, int]          # st_dev, st_ino, st_size, st_mtime_ns
Known = tuple[str, int, int, int, str, str | None]  # content_hash, size_bytes, width, height,
                                                    # media_type, exif (JSON)
_COLUMNS = ("path", "dev", "ino", "size", "mtime_ns", "content_hash", "size_bytes", "width",
            "height", "media_type", "exif")


def identity(path: str) -> Identity | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class FileCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        have = tuple(r[1] for r in self.db.execute("PRAGMA table_info(files)"))
        if have and have != _COLUMNS:  # written by an older Viewfinder: start over
            with self.db:
                self.db.execute("DROP TABLE files")
        self.db.execute("""CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, dev INT,
            ino INT, size INT, mtime_ns INT, content_hash TEXT, size_bytes INT, width INT,
            height INT, media_type TEXT, exif TEXT)""")

    def lookup(self, paths: list[str]) -> dict[str, tuple[Identity, Known]]:
        """Cached entries for ``paths`` (identity as recorded, and what was learned)."""
        out: dict[str, tuple[Identity, Known]] = {}
        for i in range(0, len(paths), 900):
            part = paths[i:i + 900]
            rows = self.db.execute(
                f"SELECT * FROM files WHERE path IN ({','.join('?' * len(part))})", part)
            for p, dev, ino, size, mtime, *known in rows:
                out[p] = ((dev, ino, size, mtime), tuple(known))  # type: ignore[assignment]
        return out

    def store(self, entries: Iterable[tuple[str, Identity, Known]]) -> None:
        with self.db:
            self.db.executemany(f"INSERT OR REPLACE INTO files VALUES ({','.join('?' * len(_COLUMNS))})",
                                [(p, *ident, *known) for p, ident, known in entries])

    def close(self) -> None:
        self.db.close()  # closing a closed connection is a no-op
