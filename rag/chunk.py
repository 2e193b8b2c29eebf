"""Paragraphs and sentences with exact spans.

Every span produced here indexes the document text: ``text[span.start:span.end]`` is the
paragraph or sentence, with surrounding whitespace left out. Nothing is rewritten.

* Paragraphs are blocks of non-blank lines. Inside a block, lines are separate paragraphs when
  they read as such (each ends a sentence, or is short like a title or byline); a hard-wrapped
  block (lines broken mid-sentence) stays one paragraph.
* Layout noise (a lone ``-``, a lone ``8``, ``8 hours ago``) is not indexed and not counted:
  paragraph numbers count from 1 over the paragraphs a reader sees.
* A paragraph longer than the encoder's token window is split at sentence boundaries (and a
  single over-long sentence at word boundaries), so the encoder never truncates text.
* Sentences come from pysbd (a rule-based segmenter that knows abbreviations), aligned back onto
  the text; if the segmenter's output cannot be aligned exactly, a plain punctuation splitter
  is used for that paragraph instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from itertools import pairwise

from core.types import Chunk, Document, Span

#: Bump when chunking changes what is indexed: the persisted index records it and refuses to
#: load under a different version.
CHUNKER_VERSION = "1"

TokenCounter = Callable[[str], int]

_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines() breaks on
_LINE = re.compile(f"[^{_BREAKS}]*(?:\r\n|[{_BREAKS}]|\\Z)")
_RELATIVE_TIME = re.compile(
    r"(?:\d+|an?|one)\s+(?:second|minute|hour|day|week|month|year)s?\s+ago\.?", re.IGNORECASE
)
_PARAGRAPH_END = re.compile(r"[.!?:;…\"”’)\]]\s*\Z")
_FLATTEN = str.maketrans(dict.fromkeys(_BREAKS, " "))
_SHORT_LINE = 80  # a line shorter than this (a title, a byline) stands as its own paragraph
_FALLBACK_BOUNDARY = re.compile(r"(?<=[.!?…])[\"”’)\]]*\s+")
_WORD = re.compile(r"\S+")


def _strip(text: str, start: int, end: int) -> Span | None:
    """The span without leading/trailing whitespace, or None if nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end) if start < end else None


def _lines(text: str) -> Iterator[Span]:
    """Every line as a span without its line break (an empty final line is skipped)."""
    for match in _LINE.finditer(text):
        if match.start() == match.end():
            break
        content = match.group(0).rstrip(_BREAKS)
        yield Span(match.start(), match.start() + len(content))
        if match.end() >= len(text):
            break


def _blocks(text: str) -> Iterator[list[Span]]:
    """Runs of non-blank lines (stripped spans)."""
    block: list[Span] = []
    for line in _lines(text):
        span = _strip(text, line.start, line.end)
        if span is None:
            if block:
                yield block
            block = []
        else:
            block.append(span)
    if block:
        yield block


def _ends_paragraph(text: str, line: Span, next_line: Span) -> bool:
    """Whether a line break inside a block ends a paragraph (rather than wrapping one)."""
    if _PARAGRAPH_END.search(text, line.start, line.end):
        return True
    if text[next_line.start].islower():
        return False  # the sentence continues on the next line
    return line.end - line.start < _SHORT_LINE  # a title or byline, not a wrapped line


def split_paragraphs(text: str) -> list[Span]:
    """All paragraphs of ``text`` as stripped spans, noise included, in order."""
    spans: list[Span] = []
    for block in _blocks(text):
        start = block[0].start
        for line, next_line in pairwise(block):
            if _ends_paragraph(text, line, next_line):
                spans.append(Span(start, line.end))
                start = next_line.start
        spans.append(Span(start, block[-1].end))
    return spans


def is_layout_noise(paragraph: str) -> bool:
    """True for page furniture that carries no content: no letters at all (``-``, ``8``,
    ``***``), or a relative timestamp (``8 hours ago``)."""
    stripped = paragraph.strip()
    if not any(ch.isalpha() for ch in stripped):
        return True
    return _RELATIVE_TIME.fullmatch(stripped) is not None


@lru_cache(maxsize=1)
def _segmenter() -> object:
    import pysbd  # imported on first use, not at import time

    return pysbd.Segmenter(language="en", clean=False)


def _fallback_sentences(text: str, start: int, end: int) -> list[Span]:
    spans: list[Span] = []
    pos = start
    for match in _FALLBACK_BOUNDARY.finditer(text, start, end):
        span = _strip(text, pos, match.start())
        if span:
            spans.append(span)
        pos = match.end()
    span = _strip(text, pos, end)
    if span:
        spans.append(span)
    return spans


def _aligned_sentences(text: str, start: int, end: int) -> list[Span] | None:
    """pysbd's sentences mapped back onto ``text[start:end]``; None if they don't align."""
    # Line breaks inside a paragraph are wrapping, not sentence ends: show the segmenter
    # spaces instead (one for one, so every offset stays the same).
    flat = text[start:end].translate(_FLATTEN)
    try:
        pieces = _segmenter().segment(flat)  # type: ignore[attr-defined]
    except Exception:  # the segmenter is rule-based; any failure falls back, never crashes
        return None
    spans: list[Span] = []
    cursor = start
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        found = flat.find(piece, cursor - start)
        found = found + start if found >= 0 else -1
        if found < 0 or found + len(piece) > end or text[cursor:found].strip():
            return None
        spans.append(Span(found, found + len(piece)))
        cursor = found + len(piece)
    if text[cursor:end].strip():
        return None
    return spans


def split_sentences(text: str, start: int = 0, end: int | None = None) -> tuple[Span, ...]:
    """Sentences of ``text[start:end]`` as stripped, ordered, non-overlapping spans that cover
    every non-whitespace character of the range."""
    end = len(text) if end is None else end
    if _strip(text, start, end) is None:
        return ()
    spans = _aligned_sentences(text, start, end)
    if spans is None or not spans:
        spans = _fallback_sentences(text, start, end)
    return tuple(spans)


def _word_pieces(
    text: str, span: Span, max_tokens: int, count_tokens: TokenCounter
) -> Iterator[Span]:
    """An over-long sentence cut at word boundaries into pieces that fit the window."""
    words = [Span(m.start(), m.end()) for m in _WORD.finditer(text, span.start, span.end)]
    piece_start = words[0].start
    last_end = words[0].end
    for word in words[1:]:
        if count_tokens(text[piece_start : word.end]) > max_tokens:
            yield Span(piece_start, last_end)
            piece_start = word.start
        last_end = word.end
    yield Span(piece_start, last_end)


def _fit_window(
    text: str,
    paragraph: Span,
    sentences: tuple[Span, ...],
    max_tokens: int,
    count_tokens: TokenCounter,
) -> list[tuple[Span, tuple[Span, ...]]]:
    """Split a paragraph into parts that fit ``max_tokens``, at sentence boundaries."""
    if count_tokens(text[paragraph.start : paragraph.end]) <= max_tokens:
        return [(paragraph, sentences)]
    units: list[Span] = []
    for sentence in sentences:
        if count_tokens(text[sentence.start : sentence.end]) <= max_tokens:
            units.append(sentence)
        else:
            units.extend(_word_pieces(text, sentence, max_tokens, count_tokens))
    parts: list[list[Span]] = [[units[0]]]
    for unit in units[1:]:
        current = parts[-1]
        if count_tokens(text[current[0].start : unit.end]) <= max_tokens:
            current.append(unit)
        else:
            parts.append([unit])
    return [(Span(p[0].start, p[-1].end), tuple(p)) for p in parts]


def chunk_id(doc_id: str, start: int, end: int, text: str) -> str:
    """Content hash of a chunk: same text at the same place in the same document, same id."""
    key = f"{CHUNKER_VERSION}\x00{doc_id}\x00{start}\x00{end}\x00{text}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def chunk_document(
    doc: Document, *, max_tokens: int = 256, count_tokens: TokenCounter | None = None
) -> list[Chunk]:
    """The document's indexable chunks: one per paragraph, more for over-long paragraphs.

    ``count_tokens`` should be the encoder's own token count (special tokens included);
    the default is a rough word-based estimate, fine for tests of pure logic.
    """
    counter = count_tokens or estimate_tokens
    text = doc.text
    chunks: list[Chunk] = []
    paragraph_no = 0
    for paragraph in split_paragraphs(text):
        if is_layout_noise(text[paragraph.start : paragraph.end]):
            continue
        paragraph_no += 1
        sentences = split_sentences(text, paragraph.start, paragraph.end)
        for part, (span, part_sentences) in enumerate(
            _fit_window(text, paragraph, sentences, max_tokens, counter)
        ):
            body = text[span.start : span.end]
            chunks.append(
                Chunk(
                    id=chunk_id(doc.id, span.start, span.end, body),
                    doc_id=doc.id,
                    paragraph=paragraph_no,
                    part=part,
                    start=span.start,
                    end=span.end,
                    text=body,
                    sentences=part_sentences,
                )
            )
    return chunks


def estimate_tokens(text: str) -> int:
    """A rough word-piece count (about 1.3 pieces a word, plus the two special tokens)."""
    return int(len(_WORD.findall(text)) * 1.3) + 2
