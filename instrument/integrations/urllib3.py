"""urllib3 (1.23 and later, 2.x included): one record per attempt, retries each counted.

``HTTPConnectionPool._make_request`` performs exactly one attempt on the wire in
both major versions (retries and redirects call it again). With urllib3 2.x and
``preload_content=True`` (the default of ``urlopen``/``request``) it also reads the
body, so the duration includes it; with 1.x, or ``preload_content=False``, the
duration ends at the response headers.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from .._urls import DEFAULT_PORTS
from . import Integration
from ._http import URLLIB3, begin


def _make_request(original: Callable[..., Any]) -> Callable[..., Any]:
    def make_request(self: Any, conn: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        attempt = begin(method, self.host, self.port or DEFAULT_PORTS.get(self.scheme, 0), rank=URLLIB3)
        if attempt is None:
            return original(self, conn, method, url, *args, **kwargs)
        with attempt:
            response = original(self, conn, method, url, *args, **kwargs)
            attempt.status = getattr(response, "status", None)
        return response

    return make_request


class Urllib3Integration(Integration):
    identifier = "urllib3"
    distribution = "urllib3"
    min_version = (1, 23)

    def setup(self, module: ModuleType) -> None:
        from urllib3 import connectionpool

        self.patch(connectionpool.HTTPConnectionPool, "_make_request", _make_request)
