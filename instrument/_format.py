"""Numbers with their units, for people: the cells of the tables and the labels of the plots.

Units are OpenTelemetry's (UCUM): durations in ``s`` (or ``ms``, ``us``, ``ns``) are
shown in the unit that keeps three significant digits readable (``3.23 ms``, ``845 ns``);
bytes (``By``, ``KiBy``, ...) in binary multiples (``512 B``, ``1.79 KiB``); unitless
values (``1``, ``""``, annotations such as ``{request}``) as plain numbers; any other
unit follows the number (``21.5 Cel``). Whole numbers are shown whole; others keep
three significant digits, the resolution of the histograms they mostly come from.
"""

from __future__ import annotations

import math
import re

SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
BYTES = {"By": 1, "KiBy": 1024, "MiBy": 1024**2, "GiBy": 1024**3, "TiBy": 1024**4}
_TIME_STEPS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns"))  # largest first
_BYTE_SYMBOLS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_BYTE_STEPS = tuple((1024.0**power, symbol) for power, symbol in enumerate(_BYTE_SYMBOLS))[::-1]  # largest first
_ANNOTATION = re.compile(r"\{[^{}]*\}")
DIGITS = 3


def format_value(value: float | None, unit: str) -> str:
    """*value*, in *unit*, for a table cell or an axis label; ``-`` for no value (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    size, suffix = display_scale(value, unit)
    text = significant(value / size)
    if abs(float(text)) * size > abs(value) and display_scale(float(text) * size, unit)[0] != size:
        size, suffix = display_scale(float(text) * size, unit)  # 999.7 us rounds up to 1 ms
        text = significant(value / size)
    return text + suffix


def display_scale(value: float, unit: str) -> tuple[float, str]:
    """How *value* (in *unit*) is shown: the size, in *unit*, of what it is counted in, and
    the suffix naming that (``(1e-3, " ms")`` for 0.004 s, ``(1024, " KiB")`` for 3000 By,
    ``(1, "")`` for a unitless value). Zero is counted in the unit itself."""
    if unit in SECONDS:
        return _step(abs(value) * SECONDS[unit], _TIME_STEPS, SECONDS[unit])
    if unit in BYTES:
        return _step(abs(value) * BYTES[unit], _BYTE_STEPS, BYTES[unit])
    return (1.0, "" if is_unitless(unit) else f" {unit}")


def _step(magnitude: float, steps: tuple[tuple[float, str], ...], per_unit: float) -> tuple[float, str]:
    """The largest of *steps* (largest first) that *magnitude* reaches, else the smallest; zero in the
    base step (size 1)."""
    if magnitude == 0:
        size, symbol = next(step for step in steps if step[0] == 1.0)
    else:
        size, symbol = next((step for step in steps if magnitude >= step[0]), steps[-1])
    return (size / per_unit, f" {symbol}")


def is_unitless(unit: str) -> bool:
    """Whether values in *unit* are plain numbers: ``1``, no unit, or an annotation like ``{request}``."""
    return unit in ("", "1") or _ANNOTATION.fullmatch(unit) is not None


def format_number(value: float) -> str:
    """A whole number in full (``1832``); any other with three significant digits (``0.497``)."""
    if isinstance(value, int) or (math.isfinite(value) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return significant(float(value))


def significant(value: float, digits: int = DIGITS) -> str:
    """*value* rounded to *digits* significant digits, in positional notation when readable."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude < -6 or magnitude >= 15:
        return f"{value:.{digits}g}"
    text = f"{value:.{max(0, digits - 1 - magnitude)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
