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


#: A speller updated this many times adds layers; the next update rebuilds it as one.
MAX_LAYERS = 8


def _words(texts: Iterable[str]) -> Counter[str]:
    return Counter(w.lower() for text in texts for w in _WORD.findall(text))


class Speller:
    """Corrects unknown words of a question to the words of one corpus (see the module doc).

    The symspellpy dictionaries are layers: :meth:`build` makes one over the corpus, and
    :meth:`updated` adds a small one for the words a document write brings, keeping word
    counts exact (a word no chunk holds any more is never suggested), so a write does not
    rebuild the whole dictionary; after :data:`MAX_LAYERS` updates the next one does."""

    def __init__(self, min_length: int = MIN_LENGTH) -> None:
        self._min_length = min_length
        self._known: frozenset[str] = frozenset()
        self._counts: Counter[str] = Counter()
        self._layers: tuple[Any, ...] = ()  # symspellpy.SymSpell (untyped library)

    def _dictionary(self, counts: Counter[str], words: Iterable[str]) -> Any:
        from symspellpy import SymSpell

        symspell = SymSpell(max_dictionary_edit_distance=MAX_EDITS, prefix_length=7)
        for word in words:
            # One letter shorter than the words corrected: "Mertz" is "Merz" with a letter
            # added, and a deletion is one edit.
            if len(word) >= self._min_length - MAX_EDITS:
                symspell.create_dictionary_entry(word, counts[word])
        return symspell

    def _with(self, counts: Counter[str], layers: tuple[Any, ...]) -> Speller:
        out = Speller(self._min_length)
        out._counts = counts
        out._known = frozenset(counts)
        out._layers = layers
        return out

    def build(self, texts: Iterable[str]) -> Speller:
        counts = _words(texts)
        built = self._with(counts, (self._dictionary(counts, counts),))
        self._counts, self._known, self._layers = built._counts, built._known, built._layers
        return self

    def updated(self, removed: Iterable[str], added: Iterable[str]) -> Speller:
        """The speller of this corpus without the texts ``removed`` and with ``added`` (a new
        object; this one is unchanged, as a search may be using it)."""
        if not self._layers:
            return Speller(self._min_length).build(added)
        counts = self._counts.copy()
        counts.subtract(_words(removed))
        gained = _words(added)
        counts.update(gained)
        counts = Counter({w: n for w, n in counts.items() if n > 0})
        if len(self._layers) >= MAX_LAYERS:
            return self._with(counts, (self._dictionary(counts, counts),))
        new = [w for w in gained if w not in self._counts]
        layers = (*self._layers, self._dictionary(counts, new)) if new else self._layers
        return self._with(counts, layers)

    @property
    def built(self) -> bool:
        return bool(self._layers)

    @property
    def vocabulary(self) -> frozenset[str]:
        """The corpus's words, lower case."""
        return self._known

    def known(self, word: str) -> bool:
        lower = word.lower()
        return lower in self._known or lower in english_words()

    def suggest(self, word: str) -> str | None:
        """The corpus word ``word`` is a misspelling of, or None (known, short, or no match)."""
        if not self._layers or len(word) < self._min_length or self.known(word):
            return None
        from symspellpy import Verbosity

        lower = word.lower()
        found = [
            f
            for layer in self._layers
            for f in layer.lookup(lower, Verbosity.ALL, max_edit_distance=MAX_EDITS)
            if self._counts[str(f.term)] > 0
        ]
        if not found:
            return None
        closest = min(f.distance for f in found)
        # People seldom get the first letter wrong; a change there is mostly a name the
        # corpus does not hold ("Astor" is not "Pastor").
        same_start = [
            str(f.term)
            for f in found
            if f.distance == closest and fold(str(f.term))[:1] == fold(lower)[:1]
        ]
        if not same_start:
            return None
        term = max(same_start, key=lambda t: self._counts[t])
        if word[:1].isupper():
            term = term[:1].upper() + term[1:]
        return term

    def correct(self, text: str) -> str:
        """``text`` with each misspelled word replaced (unchanged when there is none)."""

        def fix(match: re.Match[str]) -> str:
            return self.suggest(match.group()) or match.group()

        return _WORD.sub(fix, text)
