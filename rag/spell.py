"""Spelling: a question's misspelled words, corrected toward the corpus's own words.

Readers type "afganistan" and "govenor"; BM25 then misses the word entirely and both encoders
read a word piece soup, so the right passage scores low and the service abstains on a question
it could answer. Before searching, every word that is neither in the corpus nor in an English
dictionary is replaced by the corpus word one edit away (symspellpy: insertion, deletion,
substitution or transposition), the most frequent in the corpus when several are.

Deliberately narrow, because a wrong correction turns a question the articles do not answer
into one they seem to:

* only words of :data:`MIN_LENGTH` letters or more, and only one edit (at two edits, names the
  corpus does not hold start turning into words it does);
* a known English word is never changed, even when a corpus word is one edit away;
* the first letter stays (people seldom mistype it, and a name the corpus lacks would
  otherwise become a word it has);
* the corrections only feed retrieval and the reranker: the question shown, cached and
  answered is the reader's own, and quotes come from the articles as always.

``python -m bench.spelling`` measures what it gains on questions with typos and what it costs
on clean ones (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from core.text import fold

MIN_LENGTH = 5
MAX_EDITS = 1
_WORD = re.compile(r"[^\W\d_]+")  # "poster's" is "poster" and "s"


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The 82,765 words of symspellpy's English frequency dictionary (read once)."""
    from importlib.resources import files

    text = files("symspellpy").joinpath("frequency_dictionary_en_82_765.txt").read_text("utf-8")
    return frozenset(line.split(" ", 1)[0] for line in text.splitlines() if line)


class Speller:
    """Corrects unknown words of a question to the words of one corpus (see the module doc)."""

    def __init__(self, min_length: int = MIN_LENGTH) -> None:
        self._min_length = min_length
        self._known: frozenset[str] = frozenset()
        self._symspell: Any = None  # symspellpy.SymSpell (untyped library)

    def build(self, texts: Iterable[str]) -> Speller:
        from symspellpy import SymSpell

        counts = Counter(w.lower() for text in texts for w in _WORD.findall(text))
        symspell = SymSpell(max_dictionary_edit_distance=MAX_EDITS, prefix_length=7)
        for word, count in counts.items():
            # One letter shorter than the words corrected: "Mertz" is "Merz" with a letter
            # added, and a deletion is one edit.
            if len(word) >= self._min_length - MAX_EDITS:
                symspell.create_dictionary_entry(word, count)
        self._known = frozenset(counts)
        self._symspell = symspell
        return self

    @property
    def vocabulary(self) -> frozenset[str]:
        """The corpus's words, lower case."""
        return self._known

    def known(self, word: str) -> bool:
        lower = word.lower()
        return lower in self._known or lower in english_words()

    def suggest(self, word: str) -> str | None:
        """The corpus word ``word`` is a misspelling of, or None (known, short, or no match)."""
        if self._symspell is None or len(word) < self._min_length or self.known(word):
            return None
        from symspellpy import Verbosity

        lower = word.lower()
        found = self._symspell.lookup(lower, Verbosity.CLOSEST, max_edit_distance=MAX_EDITS)
        # People seldom get the first letter wrong; a change there is mostly a name the
        # corpus does not hold ("Astor" is not "Pastor").
        same_start = [f for f in found if fold(str(f.term))[:1] == fold(lower)[:1]]
        if not same_start:
            return None
        term = str(max(same_start, key=lambda f: f.count).term)
        if word[:1].isupper():
            term = term[:1].upper() + term[1:]
        return term

    def correct(self, text: str) -> str:
        """``text`` with each misspelled word replaced (unchanged when there is none)."""

        def fix(match: re.Match[str]) -> str:
            return self.suggest(match.group()) or match.group()

        return _WORD.sub(fix, text)
