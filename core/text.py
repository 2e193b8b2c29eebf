"""Text utilities shared by every layer: matching text as readers type it, checking input."""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """Case- and accent-insensitive form of ``text`` ("Álava" -> "alava"), runs of white
    space made one space: for matching names and words as readers type them."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).split())


def is_valid_unicode(text: str) -> bool:
    """False for text with lone surrogates (JSON can carry them; UTF-8 cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
