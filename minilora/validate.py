"""Range checks for config fields, so every config refuses a bad value the same way.

The config dataclasses call these from ``__post_init__``: a value typed into
the command line and one passed from Python meet the same check, and the
message names the field and the range it must lie in.
"""

import math
import numbers


def integer(owner, name, value, low=None, high=None):
    """``value`` must be an int (not a bool, not a float) in [low, high]; returns it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}.{name} must be an integer{_range(low, high)}, got {value!r} ({type(value).__name__})")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{owner}.{name} must be an integer{_range(low, high)}, got {value!r}")
    return int(value)


def number(owner, name, value, low=None, high=None, high_open=False, low_open=False):
    """``value`` must be a finite real number in [low, high] (``*_open``: that end excluded)."""
    interval = _interval(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}.{name} must be a number in {interval}, got {value!r} ({type(value).__name__})")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        raise ValueError(f"{owner}.{name} must be a finite number in {interval}, got {value!r}")
    return value


def choice(owner, name, value, allowed):
    """``value`` must be one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{owner}.{name} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
    return value


def _range(low, high):
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    return f" <= {high}" if high is not None else ""


def _interval(low, high, low_open, high_open):
    left = "(-inf" if low is None else ("(" if low_open else "[") + f"{low}"
    right = "inf)" if high is None else f"{high}" + (")" if high_open else "]")
    return f"{left}, {right}"
