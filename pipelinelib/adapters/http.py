"""Plain HTTP probes (``ctx.http``): what a URL answers, for smoke tests of a fresh image.

No retries here: the caller polls until its own deadline. A connection that fails becomes
``Unreachable`` naming the failure (``ConnectionError``, ``ReadTimeout`` ...).
"""

from __future__ import annotations

import requests

from pipelinelib.errors import Unreachable


class HttpProbe:
    """GET a URL once; the ``Http`` seam."""

    def status(self, url: str, timeout: float = 2.0) -> int:
        """The status code ``url`` answers a GET with; ``Unreachable`` when nothing answers."""
        try:
            return requests.get(url, timeout=timeout).status_code
        except requests.exceptions.RequestException as exc:
            raise Unreachable(type(exc).__name__, cause=str(exc)[:200]) from exc
