"""Helpers for the attribution rule tests (no tests here): attribute a written text with the
real parser and read each sentence's voice back as text."""

from __future__ import annotations

from core.types import Document, DocumentMeta, Span
from rag import attribution as attr
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
