"""Query caches built before anyone waits for them.

At a million samples the first filtered page of a new version builds the version's query
cache (``storage.query_cache``): tens of seconds on this class of machine. A server
builds them ahead of its users: a background thread looks at the head of every branch
when the server starts and every ``interval_s`` seconds after (so versions committed
from the CLI or another server are found too), and builds the copies that are missing,
one at a time. The cache's lock file lets several server processes share the work: one
builds, the others find the copy.
"""

from __future__ import annotations

import logging
import threading

from viewfinder.storage import query_cache
from viewfinder.storage.workspace import Workspace

log = logging.getLogger(__name__)


class CacheWarmer:
    """The background thread that keeps branch heads' query caches built.

    Args:
        ws: the served workspace.
        interval_s: seconds between two looks at the branch heads.
    """

    def __init__(self, ws: Workspace, *, interval_s: float = 30.0) -> None:
        self.ws = ws
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="viewfinder-cache-warmer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the thread to stop and wait a little (a build in progress finishes in the
        background; the thread is a daemon)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.warm_once()
            except Exception:  # a failed build must not stop the server: logged, retried
                log.exception("building query caches ahead failed; the next look retries")
            self._stop.wait(self.interval_s)

    def warm_once(self) -> list[str]:
        """Build every missing query cache of a branch head; the versions built."""
        catalog, built = self.ws.catalog, []
        for ds in catalog.list_datasets():
            for ref in catalog.list_refs(ds.id):
                if self._stop.is_set():
                    return built
                if ref.kind != "branch":
                    continue
                version = catalog.get_version(ds.id, ref.version_id)
                if (version is None or not query_cache.wanted(version)
                        or query_cache.cache_path(self.ws, ds, version).exists()):
                    continue
                query_cache.build(self.ws, ds, version)
                built.append(version.id)
        return built
