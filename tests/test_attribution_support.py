"""Helpers for the attribution rule tests (no tests here): attribute a written text with the
real parser, read each sentence's voice back as text, and show the real parser's errors on
long sentences in short ones (:class:`Edited`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.types import Document, DocumentMeta, Span
from rag import attribution as attr
from rag.attribution import Parse
from rag.chunk import chunk_document


def run(text: str, parser: attr.Parser) -> tuple[Document, tuple[attr.Attribution, ...]]:
    """The attributions of ``text`` as one document by "A. Writer"."""
    doc = Document(id="rules", text=text, meta=DocumentMeta(author="A. Writer"))
    return doc, attr.analyse(doc, chunk_document(doc), parser).attributions


def text_of(doc: Document, span: Span | None) -> str:
    return "" if span is None else doc.text[span.start : span.end]


def voice(doc: Document, a: attr.Attribution) -> tuple[str, str, str, str]:
    """(voice, speaker, mention, content) of one attribution, as text."""
    if a.voice == "author":
        return ("author", a.speaker, "", "")
    return (a.voice, a.speaker, text_of(doc, a.mention), text_of(doc, a.content))


class Edited:
    """The real parser, with an edit applied to the parse of the sentences named."""

    def __init__(self, parser: attr.Parser, edits: dict[str, Callable[[Parse], Parse]]) -> None:
        self.parser = parser
        self.edits = edits

    def parse(self, texts: Sequence[str]) -> list[Parse]:
        parses = self.parser.parse(texts)
        return [self.edits.get(t, lambda p: p)(p) for t, p in zip(texts, parses, strict=True)]


def index_of(parse: Parse, word: str) -> int:
    """The index of ``word``'s first token in ``parse``."""
    return next(t.i for t in parse.tokens if t.text == word)
