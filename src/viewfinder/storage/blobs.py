"""Content-addressed image storage: each image stored once under its sha256.

Local disk or S3 (through fsspec/s3fs), chosen by the store URL. Blobs are immutable:
a put of a hash that exists is a no-op, and a local put writes a temp file and renames
it, so a crash never leaves a half-written blob under a real name.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from viewfinder.errors import StorageError


def blob_relpath(content_hash: str) -> str:
    """``blobs/ab/abcdef…``: one level of 256 folders (as git does). A second level would
    cost a folder creation per image up to millions of images, for no gain on ext4/XFS,
    whose directories are indexed."""
    return f"blobs/{content_hash[:2]}/{content_hash}"


class BlobStore:
    """Put and get image bytes by content hash.

    Args:
        root: the store URL or local folder (``/path`` or ``file:///path`` or ``s3://b/p``).
        storage_options: fsspec options for remote stores (endpoint, keys).
        cache_dir: local folder for copies of remote blobs (exports, thumbnails).
    """

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None,
                 cache_dir: Path | None = None) -> None:
        self.root = root.rstrip("/")
        self.is_local = not root.startswith("s3://")
        self.storage_options = storage_options or {}
        self.cache_dir = cache_dir
        self._fs: Any = None
        self._made_dirs: set[str] = set()
        self._local_root = self.root.removeprefix("file://")
        self._tmp_prefix = secrets.token_hex(4)
        self._tmp_counter = itertools.count()

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec

            self._fs = fsspec.filesystem("s3", **self.storage_options)
        return self._fs

    def _local_path(self, content_hash: str) -> str:
        """The blob's file in a local store, as a string (imports and exports ask once per
        image: no ``Path``)."""
        return f"{self._local_root}/{blob_relpath(content_hash)}"

    def _local(self, content_hash: str) -> Path:
        return Path(self._local_path(content_hash))

    def _remote(self, content_hash: str) -> str:
        return f"{self.root}/{blob_relpath(content_hash)}"

    def exists(self, content_hash: str) -> bool:
        if self.is_local:  # a plain os call: a re-import asks once per image
            return os.path.exists(self._local_path(content_hash))
        return bool(self.fs.exists(self._remote(content_hash)))

    def put_file(self, src: str | Path, content_hash: str) -> bool:
        """Store the file at ``src`` under ``content_hash``; False if it was there."""
        try:
            if self.is_local:
                dest = self._local(content_hash)
                if dest.exists():
                    return False
                dest.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
                os.close(fd)
                shutil.copyfile(src, tmp)
                os.chmod(tmp, 0o444)
                os.replace(tmp, dest)
                return True
            remote = self._remote(content_hash)
            if self.fs.exists(remote):
                return False
            self.fs.put_file(str(src), remote)
            return True
        except OSError as e:
            raise StorageError(f"cannot store blob {content_hash}: {e}", path=str(src)) from e

    def put_bytes(self, data: bytes, content_hash: str) -> bool:
        """Store ``data`` under ``content_hash``; False if it was there."""
        try:
            if self.is_local:
                return self._put_local(data, content_hash)
            remote = self._remote(content_hash)
            if self.fs.exists(remote):
                return False
            self.fs.pipe_file(remote, data)
            return True
        except OSError as e:
            raise StorageError(f"cannot store blob {content_hash}: {e}") from e

    def _put_local(self, data: bytes, content_hash: str) -> bool:
        """Write to a temp name unique to this process, then rename: imports call this
        once per image, so it stays on plain ``os`` calls (no pathlib, no mkstemp)."""
        dest = self._local_path(content_hash)
        folder = os.path.dirname(dest)
        if os.path.exists(dest):
            return False
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        tmp = f"{folder}/.tmp-{self._tmp_prefix}-{os.getpid()}-{next(self._tmp_counter)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)  # blobs are immutable
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, dest)
        return True

    def delete(self, content_hash: str) -> None:
        """Remove a blob (and this host's cached copy of a remote one); a missing blob is
        no error. Only for blobs nothing else can reference, such as an export archive
        named by its job: images are shared by every version that has them."""
        try:
            if self.is_local:
                self._local(content_hash).unlink(missing_ok=True)
                return
            try:
                self.fs.rm_file(self._remote(content_hash))
            except FileNotFoundError:
                pass
            if self.cache_dir is not None:
                (self.cache_dir / blob_relpath(content_hash)).unlink(missing_ok=True)
        except OSError as e:
            raise StorageError(f"cannot delete blob {content_hash}: {e}") from e

    def read(self, content_hash: str) -> bytes:
        try:
            if self.is_local:
                return self._local(content_hash).read_bytes()
            with self.fs.open(self._remote(content_hash), "rb") as f:
                return f.read()
        except (OSError, FileNotFoundError) as e:
            raise StorageError(f"blob {content_hash} is missing from the store: {e}") from e

    def local_path(self, content_hash: str) -> str:
        """A local file holding the blob (the blob itself, or a cached copy of a remote one)."""
        if self.is_local:  # plain strings and one stat: exports ask once per image
            local = self._local_path(content_hash)
            if not os.path.isfile(local):
                raise StorageError(f"blob {content_hash} is missing from the store", path=local)
            return local
        if self.cache_dir is None:
            raise StorageError("a remote store needs a cache folder for local copies")
        p = self.cache_dir / blob_relpath(content_hash)
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-")
            os.close(fd)
            try:
                self.fs.get_file(self._remote(content_hash), tmp)
            except (OSError, FileNotFoundError) as e:
                raise StorageError(f"blob {content_hash} is missing from the store: {e}") from e
            os.chmod(tmp, 0o444)  # immutable like every blob: exports link to this copy
            os.replace(tmp, p)
        return str(p)
