"""An option: one setting of instrument or of an exporter, declared once.

Leaf module: `_config` declares instrument's options with it, and exporters (built-in
or third-party) declare theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Option", "Parser"]

Parser = Callable[[str, object, bool], Any]  # (option name, value, from the environment) -> value


class Option:
    """One option, declared once as a `Config` class attribute: its default, the parser of
    its values, its help (the docs table's "meaning"), how the docs show its default
    (*shown*), and whether its value is never shown (*secret*). Exporters name the
    options they are built from (`Exporter.options`): a change to one re-creates them.

    A `Config` instance keeps each value in its ``__dict__``, which Python reads before
    this (non-data) descriptor, so reading an option costs a plain attribute read.
    """

    __slots__ = ("default", "help", "name", "parse", "secret", "shown")

    def __init__(self, default: Any, parse: Parser, help: str, *, shown: str | None = None,
                 secret: bool = False, name: str = "") -> None:
        """*name* is given for an option an exporter declares (`Exporter.options`); a
        `Config` attribute takes its attribute's name."""
        self.name = name
        self.default = default
        self.parse = parse
        self.help = help
        self.shown = shown
        self.secret = secret

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return self.default  # not reached for a Config made by its __init__

    def __repr__(self) -> str:
        return f"<option {self.name}>"
