"""Ticker symbols in SQL: one validator, one policy. Symbols become SQL literals only after they match
a strict pattern (no free text ever reaches SQL); anything else is a ValueError."""

from __future__ import annotations

import re
from collections.abc import Iterable

SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9.\-^=]{0,14}$")


def is_symbol(value: object) -> bool:
    return isinstance(value, str) and bool(SYMBOL_RE.match(value))


def quote(symbol: str) -> str:
    if not is_symbol(symbol):
        raise ValueError(f"not a valid ticker symbol: {symbol!r}")
    return f"'{symbol}'"


def in_list(symbols: Iterable[str]) -> str:
    """``('A', 'B')`` for SQL ``IN``; ``(NULL)`` (matches nothing) when empty."""
    quoted = ", ".join(quote(s) for s in sorted(set(symbols)))
    return f"({quoted})" if quoted else "(NULL)"
