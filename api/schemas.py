"""Pydantic models at the HTTP boundary (and for ``rag ask --json``), apart from the domain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from core.errors import InvalidQuestion
from rag.load import DOC_ID_PATTERN
from rag.pipeline import MAX_TOP_K, validate_question
from rag.query import MAX_HISTORY
from rag.settings import AnswerMode, Settings

CARD_QUESTION = "What did Merz say about German troops?"


class MentionOut(BaseModel):
    start: int = Field(description="Character offset into the document text (inclusive).")
    end: int = Field(description="Character offset into the document text (exclusive).")
    text: str = Field(description="Exactly document.text[start:end].")


class SpeakerOut(BaseModel):
    """Who says a quote, as attributed at index time (docs/attribution.md)."""

    name: str = Field(
        description="The speaker as the article names them, or the article's author for "
        "the author's own voice.",
        examples=["Friedrich Merz"],
    )
    mention: MentionOut | None = Field(
        None,
        description="The words in the quoted sentence that name or refer to the speaker "
        '(a name, a title, or a pronoun such as "He" resolved to them); null in the '
        "author's voice.",
    )
    reported_by: str | None = Field(
        None,
        description="The author who reports the statement (voice `reported`); null in the "
        "author's own voice.",
        examples=["Gwendolyn Sasse"],
    )


Voice = Literal["reported", "author"]
_VOICE = (
    "reported: a statement, position or belief the author attributes to `speaker`; author: "
    "the author's own voice. Null (and `speaker` null) when the index holds no attribution."
)


class QuoteOut(BaseModel):
    start: int = Field(description="Character offset into the document text (inclusive).")
    end: int = Field(description="Character offset into the document text (exclusive).")
    text: str = Field(description="Exactly document.text[start:end].")
    score: float = Field(description="Support: how well this sentence answers the question.")
    speaker: SpeakerOut | None = Field(None, description="Who says this sentence.")
    voice: Voice | None = Field(None, description=_VOICE)


class AnswerSpan(BaseModel):
    doc_id: str
    paragraph: int = Field(description="Paragraph number, counted from 1.")
    start: int
    end: int
    text: str = Field(description="Exactly document.text[start:end].")
    speaker: SpeakerOut | None = Field(None, description="Who says the answer (its main sentence).")
    voice: Voice | None = Field(None, description=_VOICE)


class PassageOut(BaseModel):
    doc_id: str
    chunk_id: str
    paragraph: int
    start: int
    end: int
    text: str
    score: float = Field(description="Retrieval score (fused rank score in hybrid mode).")
    rerank_score: float | None = Field(
        None, description="Cross-encoder relevance logit (accurate mode only; higher is better)."
    )
    quotes: list[QuoteOut]


class AskResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "question": CARD_QUESTION,
                    "answer": None,
                    "abstained": True,
                    "reason": "No passage in the indexed articles matches the question.",
                    "passages": [],
                }
            ]
        }
    )

    question: str
    searched_as: str | None = Field(
        None,
        description="The question as searched when misspelled words were corrected toward "
        'the articles\' words ("govenor" -> "governor"); null when nothing was corrected. '
        "The answer is always to the question as asked.",
    )
    mode: AnswerMode = Field(
        "fast", description="How the answer was found: fast (retrieval) or accurate (reranked)."
    )
    confidence: float | None = Field(
        None,
        description="How sure the service is that the articles answer the question: the "
        "learned abstention model's probability (0-1) for this mode, or the support score "
        "where no learned model applies; it answers at or above its threshold. Null when "
        "nothing was retrieved.",
    )
    answer: AnswerSpan | None
    abstained: bool
    reason: str | None
    speaker: str | None = Field(
        None,
        description="The speaker the answer was chosen among, when the question asked for "
        'someone\'s words ("what did Merz say ...") or the `speaker` filter named them; when '
        "it abstains, the speaker the articles don't report saying anything about it. Null "
        "when no speaker narrowed the answer.",
        examples=["Friedrich Merz"],
    )
    passages: list[PassageOut]


# --------------------------------------------------------------------------- HTTP API models

#: The defaults of the settings the HTTP API applies per request (the running server's own
#: values are in its /openapi.json; see api.openapi).
DEFAULT_TOP_K: int = Settings.model_fields["top_k"].default
DEFAULT_MAX_QUESTION_CHARS: int = Settings.model_fields["max_question_chars"].default
DOC_ID_REGEX = f"^{DOC_ID_PATTERN.pattern}$"
DocId = Annotated[str, StringConstraints(pattern=DOC_ID_REGEX)]


def unicode_text(value: str) -> str:
    """``value`` if it is valid Unicode (JSON can smuggle in lone surrogates, which no text
    can be stored or embedded with)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"contains a lone surrogate (U+{ord(value[exc.start]):04X}); send valid Unicode"
        ) from None
    return value


Text = Annotated[str, AfterValidator(unicode_text)]


def no_nul(value: str) -> str:
    """``value`` if it has no NUL character, which PostgreSQL stores in neither ``text`` nor
    ``jsonb`` (the text already refused it: rag.load)."""
    if "\x00" in value:
        raise ValueError("contains a NUL character (U+0000); send text without it")
    return value


#: A document's text or metadata field: valid Unicode without NUL, as the schema says.
StoredText = Annotated[
    str,
    AfterValidator(unicode_text),
    AfterValidator(no_nul),
    Field(json_schema_extra={"pattern": "^[^\\u0000]*$"}),
]


def _integer_schema(minimum: int, maximum: int, default: int) -> Callable[[dict[str, Any]], None]:
    """``json_schema_extra`` of an optional integer whose absence means a setting: shown as
    a plain integer (an explicit null is refused) whose default is the setting's."""

    def extra(schema: dict[str, Any]) -> None:
        schema.pop("anyOf", None)
        schema.update(type="integer", minimum=minimum, maximum=maximum, default=default)

    return extra


class AskRequest(BaseModel):
    """A question, with optional filters."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": CARD_QUESTION},
                {"question": CARD_QUESTION, "top_k": 5, "author": "Gwendolyn Sasse"},
                {
                    "question": "And what is she responsible for?",
                    "history": ["Who is the current Presiding Officer of the Scottish Parliament?"],
                },
            ]
        },
    )

    question: Text = Field(
        description="The question: at least 1 character and at most the server's "
        f"RAG_MAX_QUESTION_CHARS setting ({DEFAULT_MAX_QUESTION_CHARS} unless set) once "
        "surrounding whitespace is trimmed.",
        json_schema_extra={"minLength": 1, "maxLength": DEFAULT_MAX_QUESTION_CHARS},
        examples=[CARD_QUESTION],
    )
    top_k: int | None = Field(
        None,
        ge=1,
        le=MAX_TOP_K,
        strict=True,
        description="How many passages to return; default: the server's RAG_TOP_K setting "
        f"({DEFAULT_TOP_K} unless set).",
        json_schema_extra=_integer_schema(1, MAX_TOP_K, DEFAULT_TOP_K),
    )
    doc_ids: list[DocId] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Only search these documents (ids from GET /documents); an id that is "
        "not in the index is refused with 404 `unknown_filter`, naming it.",
    )
    author: Text | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Only search documents whose author contains this (case- and "
        "accent-insensitive); 404 `unknown_filter` when no document's author does.",
    )
    speaker: Text | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Only answer with this speaker's statements: a name, surname or title as "
        'the articles give it ("Merz", "the German chancellor"), or "the author" for the '
        "authors' own voice (GET /speakers lists them); 404 `unknown_filter` when no "
        "speaker matches. When the speaker said nothing on the question, the reason says so.",
    )

    mode: AnswerMode | None = Field(
        None,
        description="fast: retrieval and sentence scoring only (milliseconds); accurate: the "
        "candidates are re-scored by a cross-encoder (slower, better ranked). Default: the "
        "server's setting, accurate when its reranker is installed.",
    )
    history: list[Text] | None = Field(
        None,
        max_length=50,
        description=f"The conversation's earlier questions, oldest first (the last "
        f"{MAX_HISTORY} are used): a follow-up such as 'And what is she responsible for?' is "
        "searched together with the question before it. Each may have as many characters as "
        "the question.",
    )

    @field_validator("top_k", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # A given value only (a default is not validated). An explicit null is refused:
        # leave top_k out for the setting's value, as the schema says.
        if value is None:
            raise ValueError("Input should be a valid integer (leave top_k out for the default)")
        # JSON Schema's integer is any number with no fraction, 5.0 too (strict mode would
        # refuse it); strings and booleans stay refused.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @field_validator("question", mode="after")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        # Trimmed and not empty here; the length limit is a setting, checked per request
        # against the server's own (length_errors).
        try:
            return validate_question(value, max_chars=len(value))
        except InvalidQuestion as exc:
            raise ValueError(str(exc)) from exc


def length_errors(request: AskRequest, max_chars: int) -> list[dict[str, Any]]:
    """The question and earlier questions of ``request`` longer than ``max_chars`` (the
    ``RAG_MAX_QUESTION_CHARS`` setting) after trimming, as validation errors in pydantic's
    shape, so that they are refused like any other invalid field (422 ``invalid_request``)."""
    errors: list[dict[str, Any]] = []
    try:
        validate_question(request.question, max_chars)
    except InvalidQuestion as exc:
        errors.append(_value_error("question", str(exc)))
    for n, item in enumerate(request.history or ()):
        if len(item.strip()) > max_chars:
            errors.append(
                _value_error(
                    "history",
                    f"item {n}: an earlier question may have at most {max_chars} characters "
                    "after trimming",
                )
            )
    return errors


def _value_error(field: str, message: str) -> dict[str, Any]:
    return {"type": "value_error", "loc": ("body", field), "msg": f"Value error, {message}"}


class SpeakerSummary(BaseModel):
    name: str = Field(description="As the articles name them.", examples=["Friedrich Merz"])
    kind: Literal["person", "organisation", "author"] = Field(
        description="author: an article's author (statements: the sentences in her own voice)."
    )
    aliases: list[str] = Field(
        description="Other names a question or the `speaker` filter may use.",
        examples=[["German chancellor", "Merz"]],
    )
    statements: int = Field(description="Sentences attributed to them.")
    documents: list[str] = Field(description="Ids of the documents they speak in.")


class SpeakerList(BaseModel):
    speakers: list[SpeakerSummary] = Field(
        description="Reported speakers, most statements first, then the authors."
    )


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable error code.", examples=["not_ready"])
    message: str = Field(description="What went wrong, for a person to read.")


class ErrorResponse(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "invalid_request",
                        "message": "question: Value error, question is empty",
                    }
                }
            ]
        }
    )

    error: ErrorDetail


_META_LIMITS = {
    "title": 1000,
    "author": 1000,
    "affiliation": 1000,
    "publisher": 1000,
    "published": 64,
    "url": 2048,
    "language": 35,
    "license": 200,
}


class DocumentIn(BaseModel):
    """An article to add or replace: its text, stored exactly as sent, and its metadata."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "text": "The Normans (Norman: Nourmands; French: Normands; Latin: Normanni) "
                    "were the people who in the 10th and 11th centuries gave their name to "
                    "Normandy, a region in France.\n\nThe Norman dynasty had a major political, "
                    "cultural and military impact on medieval Europe.\n",
                    "title": "Normans",
                    "publisher": "Wikipedia",
                    "url": "https://en.wikipedia.org/wiki/Normans",
                    "language": "en",
                    "license": "CC BY-SA 4.0",
                }
            ]
        },
    )

    text: StoredText = Field(
        min_length=1,
        description="The article text. Every span the API returns is a character offset "
        "into exactly this string.",
    )
    title: StoredText = Field("", max_length=_META_LIMITS["title"])
    author: StoredText = Field("", max_length=_META_LIMITS["author"])
    affiliation: StoredText = Field("", max_length=_META_LIMITS["affiliation"])
    publisher: StoredText = Field("", max_length=_META_LIMITS["publisher"])
    published: StoredText = Field(
        "", max_length=_META_LIMITS["published"], description="ISO date (YYYY-MM-DD) if known."
    )
    url: StoredText = Field("", max_length=_META_LIMITS["url"], description="Source URL.")
    language: StoredText = Field("", max_length=_META_LIMITS["language"])
    license: StoredText = Field("", max_length=_META_LIMITS["license"])


class DocumentSummary(BaseModel):
    """A document's metadata entry."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "squad2-Normans",
                    "title": "Normans",
                    "author": "",
                    "affiliation": "",
                    "publisher": "Wikipedia (SQuAD 2.0 dev set)",
                    "published": "",
                    "url": "",
                    "language": "",
                    "license": "CC BY-SA 4.0",
                    "sha256": "761df305c0673cf97b34a48a42fb241da68f58fd98e97babc4db713122d8e06c",
                    "paragraph_count": 39,
                    "chunk_count": 42,
                    "characters": 25405,
                }
            ]
        }
    )

    id: str
    title: str
    author: str
    affiliation: str
    publisher: str
    published: str = Field(description="ISO date (YYYY-MM-DD) when known, else empty.")
    url: str = Field(description="Source URL, else empty.")
    language: str
    license: str
    sha256: str = Field(description="sha256 of the UTF-8 text.")
    paragraph_count: int
    chunk_count: int
    characters: int = Field(description="Length of the text in characters.")


class ParagraphOut(BaseModel):
    paragraph: int = Field(description="Paragraph number, counted from 1.")
    start: int = Field(description="Character offset into the text (inclusive).")
    end: int = Field(description="Character offset into the text (exclusive).")


class DocumentDetail(DocumentSummary):
    """A document with its full stored text and paragraph spans."""

    text: str = Field(description="The stored text; every span is an offset into it.")
    paragraphs: list[ParagraphOut]


class DocumentList(BaseModel):
    documents: list[DocumentSummary]


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "documents": 3,
                    "chunks": 121,
                    "generation": 1,
                    "model": "bundled:all-MiniLM-L6-v2",
                }
            ]
        }
    )

    status: Literal["ready"] = "ready"
    documents: int = Field(description="Documents in the live index.")
    chunks: int = Field(description="Chunks (searchable passages) in the live index.")
    generation: int = Field(description="The live index generation.")
    model: str = Field(description="The embedding model.")
