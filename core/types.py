"""The domain: small frozen dataclasses that flow one way through the pipeline.

Every ``start``/``end`` is a character offset (Python ``str`` index, Unicode code points,
end exclusive) into ``Document.text``, the stored article text, and every ``text`` field
equals ``document.text[start:end]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


def sha256_text(text: str) -> str:
    """sha256 of the UTF-8 encoding of ``text`` (hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes (hex), read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class DocumentMeta:
    """What is known about an article. Unknown fields stay empty, never invented."""

    title: str = ""
    author: str = ""
    affiliation: str = ""
    publisher: str = ""
    published: str = ""  # ISO date (YYYY-MM-DD) when known
    url: str = ""
    language: str = ""
    license: str = ""


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    meta: DocumentMeta = field(default_factory=DocumentMeta)
    sha256: str = ""

    def __post_init__(self) -> None:
        if not self.sha256:
            object.__setattr__(self, "sha256", sha256_text(self.text))


@dataclass(frozen=True)
class Span:
    """A half-open character range ``[start, end)`` into a document's text."""

    start: int
    end: int


#: Whose voice a sentence is: a statement the author reports, or the author's own.
VoiceKind = Literal["reported", "author"]


@dataclass(frozen=True)
class Voice:
    """Whose voice one sentence is (``rag/attribution.py``): the author's own, or a statement,
    position or belief the author reports, with who it is and where they are named."""

    voice: VoiceKind
    speaker: str = ""  # as the article names them; "" in the author's voice (Document author)
    mention: Span | None = None  # the words in the sentence naming or referring to the speaker
    content: Span | None = None  # what the speaker is reported to say
    aliases: tuple[str, ...] = ()  # other names the document gives the speaker
    kind: str = ""  # "person" or "organisation" for a reported speaker
    resolved: bool = True  # False: a pronoun with no named antecedent


@dataclass(frozen=True)
class Chunk:
    """One indexed unit: a paragraph, or a sentence-aligned part of a long paragraph."""

    id: str  # content hash: stable across runs, changes when the text or its place changes
    doc_id: str
    paragraph: int  # 1-based, as a reader counts the paragraphs they can see
    part: int  # 0 unless a long paragraph was split at sentence boundaries
    start: int
    end: int
    text: str
    sentences: tuple[Span, ...]
    #: One per sentence, aligned with ``sentences``, when the index was built with attribution.
    voices: tuple[Voice, ...] = ()


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the evidence behind it."""

    chunk: Chunk
    score: float
    dense_score: float | None = None
    bm25_score: float | None = None
    dense_rank: int | None = None  # 1-based rank in the dense list, None if absent
    bm25_rank: int | None = None
    rerank_score: float | None = None  # cross-encoder logit (accurate mode only)


@dataclass(frozen=True)
class SpeakerRef:
    """Who says a quote: a reported speaker (with the words naming them, and the author who
    reports them) or the document's author in her own voice (``reported_by`` None)."""

    name: str
    mention: Span | None = None  # document offsets of the words naming or referring to them
    mention_text: str = ""  # exactly document.text[mention.start:mention.end]
    reported_by: str | None = None


@dataclass(frozen=True)
class Quote:
    doc_id: str
    paragraph: int
    start: int
    end: int
    text: str
    score: float
    #: Who says it (the quote's main sentence): a reported speaker or the document's author;
    #: None when the index holds no attribution.
    speaker: SpeakerRef | None = None
    voice: VoiceKind | None = None


@dataclass(frozen=True)
class Passage:
    hit: Hit
    quotes: tuple[Quote, ...]


@dataclass(frozen=True)
class Answer:
    question: str
    answer: Quote | None
    abstained: bool
    reason: str | None
    passages: tuple[Passage, ...]
    mode: str = "fast"  # "fast" (retrieval only) or "accurate" (reranked)
    #: How sure the service is that the articles answer the question (the learned model's
    #: probability, or the support score under the plain threshold rule; -inf: no candidate).
    confidence: float = float("-inf")
    threshold: float = 0.0  # the service answers when confidence >= threshold
    #: The signals the abstention decision saw (see rag.abstain.signals), by name.
    signals: Mapping[str, float] = field(default_factory=dict)
    #: The question as searched when misspelled words were corrected (rag.spell), else None.
    searched_as: str | None = None
    #: The speaker whose statements the answer was chosen from (named by the question or the
    #: speaker filter; rag.speakers), or whom the refusal names; None when no speaker narrowed it.
    speaker: str | None = None
