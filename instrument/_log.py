"""Diagnostics for instrument's own problems, through the stdlib `logging` module.

`logging` is imported on first use only, so `import instrument` stays cheap. Each
distinct problem is logged once (keyed by the caller), so a failing backend or a
misbehaving tag cannot flood the application's logs.
"""

from __future__ import annotations

from typing import Any

_seen: set[object] = set()


def logger() -> Any:
    import logging

    return logging.getLogger("instrument")


_prepared = False


def prepare() -> None:
    """Import what logging a problem needs now, on the thread starting the pipeline, so
    that a first message from a background thread never imports a module there (see
    `_pipeline.Pipeline.prepare`). Formatting one traceback imports what this Python
    version formats tracebacks with (``ast``, ``tokenize``, ...)."""
    global _prepared
    if _prepared:
        return
    import logging
    import traceback

    try:
        raise RuntimeError("instrument: warming up traceback formatting")
    except RuntimeError as exc:
        logging.Formatter().formatException((type(exc), exc, exc.__traceback__))
        traceback.format_exception(exc)
    _prepared = True


def warn_once(key: object, message: str, *args: object) -> None:
    """Log *message* as a warning the first time *key* is seen in this process."""
    if key in _seen:
        return
    _seen.add(key)
    logger().warning(message, *args)


def error_once(key: object, message: str, *args: object, exc_info: bool = False) -> None:
    """Log *message* as an error the first time *key* is seen in this process."""
    if key in _seen:
        return
    _seen.add(key)
    logger().error(message, *args, exc_info=exc_info)


def forget(key: object) -> None:
    """Allow *key* to be logged again (after the problem it names went away)."""
    _seen.discard(key)


def forget_all() -> None:
    """Allow every problem to be logged again (`instrument.testing.reset`)."""
    _seen.clear()
