"""The response as the server sees it: handed back so that its request is measured until closed.

The duration of a request ends when the server calls ``close()`` on the response
iterable (PEP 3333 makes servers call it, after the last chunk or on abort), or when
iterating it raises. The response is handed back in a thin proxy that keeps ``len()``
where the original has it (servers derive Content-Length from it) and forwards other
attributes. A ``wsgi.file_wrapper`` object keeps its identity, so servers still send
it with ``sendfile()``: its ``close`` is replaced on that (per-request) object
instead, as Django itself does. uwsgi's file wrapper returns the file itself, which
cannot take a new ``close``: that response is measured until the application
returns. A string or bytes response is not an iterable of chunks, and servers
special-case it: measured until the application returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ._request import Environ, Request


def respond(request: Request, result: Any, environ: Environ) -> Any:
    """What to hand the server for the application's *result*: measured until it is closed."""
    cls = type(result)
    if cls is list or cls is tuple:
        return _SizedBody(result, request)
    if cls is bytes or cls is str:
        request.finish()
        return result
    file_wrapper = environ.get("wsgi.file_wrapper")
    if isinstance(file_wrapper, type):
        if isinstance(result, file_wrapper) and _finish_on_close(request, result):
            return result
    elif file_wrapper is not None and hasattr(result, "fileno"):
        # uwsgi's file_wrapper returns the file itself and sends it with sendfile()
        # only if it gets that very object back: keep it, end the measurement here.
        request.finish()
        return result
    if hasattr(cls, "__len__"):
        return _SizedBody(result, request)
    return _Body(result, request)


def _finish_on_close(request: Request, result: Any) -> bool:
    """Replace ``close`` on a per-request file wrapper; False if it refuses attributes."""
    original = getattr(result, "close", None)

    def close() -> None:
        try:
            if original is not None:
                original()
        except BaseException as exc:
            request.finish(exc)
            raise
        request.finish()

    try:
        result.close = close
    except (AttributeError, TypeError):
        return False
    return True


class _Body:
    """The response iterable as the server sees it: iterates and closes the original.

    Other attributes are forwarded, so a server or middleware looking for one finds
    the original's.
    """

    __slots__ = ("_iterable", "_request")

    def __init__(self, iterable: Iterable[Any], request: Request) -> None:
        self._iterable = iterable
        self._request = request

    def __iter__(self) -> Iterator[Any]:
        # A for loop, not `yield from`: when the server abandons the iteration, closing
        # this generator must not close the original too (close() below does, once).
        request = self._request
        try:
            for chunk in self._iterable:
                if not request.sent:
                    request.sending()
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            request.finish(exc)
            raise

    def close(self) -> None:
        close = getattr(self._iterable, "close", None)
        if close is not None:
            try:
                close()
            except BaseException as exc:
                self._request.finish(exc)
                raise
        self._request.finish()

    def __getattr__(self, name: str) -> Any:
        if name in _Body.__slots__:  # not set yet: never recurse
            raise AttributeError(name)
        return getattr(self._iterable, name)

    def __del__(self) -> None:
        # A server that never calls close() (PEP 3333 says it must) would otherwise
        # leave the request active forever.
        request = self._request
        if not request.done:
            request.finish()


class _SizedBody(_Body):
    """A `_Body` whose original has a length (a list of chunks, usually)."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._iterable)  # type: ignore[arg-type]
