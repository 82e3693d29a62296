"""A fraction typed into a page's field (a confidence, a threshold): parsed one way, refused in each page's words.

Pure (no Django): the insight parameters and the review rules, which the fast tier tests, use it as the views do.
"""

from __future__ import annotations

from collections.abc import Callable


def fraction(
    raw: str,
    *,
    not_number: str,
    out_of_range: str,
    refuse: Callable[[str], Exception] = ValueError,
    hi: float = 1.0,
    exclusive: bool = False,
    shown: int | None = None,
) -> float | None:
    """`raw` (already stripped) as a number from 0 to `hi` (strictly between when `exclusive`); None when blank.
    Anything else raises `refuse(message)`: `not_number` or `out_of_range` formatted with `raw` (its first `shown`
    characters) and, for a number, its `value`. NaN and the infinities are out of every range."""
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise refuse(not_number.format(raw=raw[:shown])) from None
    if not (0.0 < value < hi if exclusive else 0.0 <= value <= hi):  # NaN compares False either way
        raise refuse(out_of_range.format(raw=raw[:shown], value=value))
    return value
