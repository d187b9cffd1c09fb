"""An on-disk cache of HTTP responses, keyed by the request, so a rerun does not pay twice.

The key is the SHA-256 of the canonical JSON of (URL, request body); the API key is never part of it.
Each response is one JSON file, ``<folder>/<key[:2]>/<key>.json``, written atomically, so an interrupted
run leaves whole entries only and several processes can share a folder. An unreadable entry is a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from alignkit.io import atomic_write_json

log = logging.getLogger(__name__)


def request_key(url: str, body: dict) -> str:
    """The cache key of a POST of ``body`` to ``url``."""
    canonical = json.dumps({"url": url, "body": body}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class RequestCache:
    """Responses on disk under ``folder`` (created on the first write)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The stored response, or None when there is none (or it cannot be read)."""
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("feedback cache: ignoring unreadable entry %s (%s)", path, exc)
            return None

    def put(self, key: str, response: dict) -> None:
        atomic_write_json(self._path(key), response, indent=None)
