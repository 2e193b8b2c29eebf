"""The hand-written question set (``eval/questions.jsonl``): records, loading and validation.

One JSON object a line::

    {"id": "isl-001", "question": "...", "category": "factual", "doc_id": "squad2-Islamism",
     "gold_paragraphs": [1], "gold_spans": [[123, 140]], "answer_text": "...",
     "previous": ["an earlier question", ...], "speaker": "Friedrich Merz", "note": "..."}

* ``category`` is one of :data:`CATEGORIES`.
* ``gold_spans`` are character ranges ``[start, end)`` into the document's text; each one is an
  acceptable answer on its own (any one found counts). Empty for ``unanswerable``.
* ``gold_paragraphs`` are 1-based paragraph numbers as :mod:`rag.chunk` counts them; every gold
  span lies inside one of them and every one of them holds a gold span.
* ``answer_text`` repeats the text of the first span, so the file stays readable and any drift
  between the file and the document is caught on load.
* ``previous`` gives the earlier questions of the conversation (oldest first); required for
  ``follow_up``.
* ``speaker`` (issue 18, who said what) names whose words the question asks for: on an
  answerable question, the speaker of the gold span as ``GET /speakers`` names them (the
  registry's canonical name, or the author's name for the author's own voice); on an
  unanswerable one, the speaker it asks about, as the question names them (the service should
  refuse: that speaker said nothing on it, or is never quoted). Required for ``who_said_what``;
  every question that has one counts in the speaker accuracy (:mod:`eval.metrics`).

Documents are named by id: ``squad2-<Title>`` ids are articles of the SQuAD 2.0 dev set, built at
run time by :mod:`eval.squad` (never copied into the repository); any other id is an article in
the data folder (``data/``), loaded by :mod:`rag.load`. Every problem is reported with the line
it is on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.types import Document, Span
from rag.chunk import is_layout_noise, split_paragraphs

CATEGORIES: tuple[str, ...] = (
    "factual",
    "paraphrase",
    "speaker",
    "yes_no",
    "according_to_author",
    "multi_sentence",
    "author_source",
    "misspelled",
    "follow_up",
    "who_said_what",
    "unanswerable",
)
UNANSWERABLE = "unanswerable"
#: Questions that ask for a named speaker's words or views (issue 18): ``speaker`` required.
WHO_SAID_WHAT = "who_said_what"
SQUAD_PREFIX = "squad2-"
#: The seed-article set (the product's own questions) and the SQuAD stand-in set (breadth).
DEFAULT_QUESTIONS = Path(__file__).resolve().parent / "questions.jsonl"
SQUAD_QUESTIONS = Path(__file__).resolve().parent / "questions-squad.jsonl"

_FIELDS = frozenset(
    {
        "id",
        "question",
        "category",
        "doc_id",
        "gold_paragraphs",
        "gold_spans",
        "answer_text",
        "previous",
        "speaker",
        "note",
    }
)


class DatasetError(ValueError):
    """A question file that cannot be used as it is; the message names the line."""


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    category: str
    doc_id: str | None
    gold_paragraphs: tuple[int, ...]
    gold_spans: tuple[Span, ...]
    answer_text: str
    previous: tuple[str, ...] = ()
    note: str = ""
    line: int = 0
    #: Whose words the question asks for (see the module's docstring); None: no one's.
    speaker: str | None = None

    @property
    def answerable(self) -> bool:
        return self.category != UNANSWERABLE

    def paragraph_ids(self) -> tuple[str, ...]:
        """Gold paragraphs as ``doc_id#n``, the ids the ranking metrics use."""
        return tuple(paragraph_id(self.doc_id or "", n) for n in self.gold_paragraphs)


@dataclass(frozen=True)
class QuestionSet:
    questions: tuple[EvalQuestion, ...]
    documents: dict[str, Document]
    path: Path


def paragraph_id(doc_id: str, paragraph: int) -> str:
    return f"{doc_id}#{paragraph}"


def paragraph_spans(text: str) -> list[Span]:
    """The paragraphs a reader sees, numbered as :func:`rag.chunk.chunk_document` numbers
    them: paragraph *n* is ``result[n - 1]``."""
    return [p for p in split_paragraphs(text) if not is_layout_noise(text[p.start : p.end])]


def paragraph_of(paragraphs: Sequence[Span], span: Span) -> int | None:
    """The 1-based number of the paragraph that contains ``span``, or None."""
    for number, p in enumerate(paragraphs, start=1):
        if p.start <= span.start and span.end <= p.end:
            return number
    return None


def _fail(line: int, qid: object, message: str) -> DatasetError:
    where = f"line {line}" + (f" ({qid})" if isinstance(qid, str) and qid else "")
    return DatasetError(f"{where}: {message}")


def _str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_record(raw: object, line: int) -> EvalQuestion:
    """One record, checked for shape and internal consistency (not yet against its document)."""
    if not isinstance(raw, dict):
        raise _fail(line, None, "a record must be a JSON object")
    qid = raw.get("id")

    def fail(message: str) -> DatasetError:
        return _fail(line, qid, message)

    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise fail(f"unknown field(s) {unknown}")
    if not isinstance(qid, str) or not qid.strip():
        raise fail("'id' must be a non-empty string")
    question = raw.get("question")
    if not isinstance(question, str) or not question.strip():
        raise fail("'question' must be a non-empty string")
    category = raw.get("category")
    if category not in CATEGORIES:
        raise fail(f"unknown category {category!r}; known: {', '.join(CATEGORIES)}")
    doc_id = raw.get("doc_id")
    if doc_id is not None and (not isinstance(doc_id, str) or not doc_id):
        raise fail("'doc_id' must be a document id or null")
    previous = raw.get("previous", [])
    if not _str_list(previous):
        raise fail("'previous' must be a list of non-empty strings")
    if category == "follow_up" and not previous:
        raise fail("a follow_up question needs 'previous' (the earlier questions)")
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise fail("'note' must be a string")
    speaker = raw.get("speaker")
    if speaker is not None and (not isinstance(speaker, str) or not speaker.strip()):
        raise fail("'speaker' must be a non-empty string (the speaker's name)")
    if category == WHO_SAID_WHAT and speaker is None:
        raise fail("a who_said_what question needs 'speaker' (whose words it asks for)")
    spans_raw = raw.get("gold_spans", [])
    if not isinstance(spans_raw, list) or not all(
        isinstance(s, list) and len(s) == 2 and all(_int(v) for v in s) for s in spans_raw
    ):
        raise fail("'gold_spans' must be a list of [start, end] integer pairs")
    spans = tuple(Span(int(s[0]), int(s[1])) for s in spans_raw)
    if any(not 0 <= s.start < s.end for s in spans):
        raise fail(f"a gold span is empty or negative: {spans_raw}")
    paragraphs_raw = raw.get("gold_paragraphs", [])
    if not isinstance(paragraphs_raw, list) or not all(_int(p) and p >= 1 for p in paragraphs_raw):
        raise fail("'gold_paragraphs' must be a list of paragraph numbers (from 1)")
    answer_text = raw.get("answer_text", "")
    if not isinstance(answer_text, str):
        raise fail("'answer_text' must be a string")
    if category == UNANSWERABLE:
        if spans or paragraphs_raw or answer_text:
            raise fail("an unanswerable question has no gold_spans, gold_paragraphs or answer")
    else:
        if doc_id is None:
            raise fail("an answerable question needs 'doc_id'")
        if not spans:
            raise fail("an answerable question needs at least one gold span")
        if not paragraphs_raw:
            raise fail("an answerable question needs 'gold_paragraphs'")
        if not answer_text:
            raise fail("an answerable question needs 'answer_text' (the first span's text)")
    return EvalQuestion(
        id=qid,
        question=question.strip(),
        category=category,
        doc_id=doc_id,
        gold_paragraphs=tuple(int(p) for p in paragraphs_raw),
        gold_spans=spans,
        answer_text=answer_text,
        previous=tuple(previous),
        note=note,
        line=line,
        speaker=speaker.strip() if speaker is not None else None,
    )


def check_against_document(question: EvalQuestion, document: Document) -> None:
    """Every span must index the document, the first must read ``answer_text``, and the gold
    paragraphs must be exactly the paragraphs the spans lie in."""
    text = document.text

    def fail(message: str) -> DatasetError:
        return _fail(question.line, question.id, message)

    for span in question.gold_spans:
        if span.end > len(text):
            raise fail(
                f"gold span [{span.start}, {span.end}] is out of range: {document.id} has "
                f"{len(text)} characters"
            )
    if question.gold_spans:
        first = question.gold_spans[0]
        actual = text[first.start : first.end]
        if actual != question.answer_text:
            raise fail(
                f"answer_text {question.answer_text!r} does not match the document text at "
                f"[{first.start}, {first.end}]: {actual!r}"
            )
    paragraphs = paragraph_spans(text)
    found: set[int] = set()
    for span in question.gold_spans:
        number = paragraph_of(paragraphs, span)
        if number is None:
            raise fail(f"gold span [{span.start}, {span.end}] crosses a paragraph boundary")
        if number not in question.gold_paragraphs:
            raise fail(
                f"gold span [{span.start}, {span.end}] lies in paragraph {number}, which is not "
                f"in gold_paragraphs {list(question.gold_paragraphs)}"
            )
        found.add(number)
    extra = sorted(set(question.gold_paragraphs) - found)
    if extra:
        raise fail(f"gold paragraph(s) {extra} hold no gold span")


def read_records(path: Path) -> list[tuple[int, object]]:
    """(line number, parsed JSON) for every non-blank line."""
    records = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                records.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise _fail(number, None, f"not valid JSON: {exc.msg}") from exc
    return records


def parse_questions(path: Path) -> list[EvalQuestion]:
    """Every record of the file, checked for shape; ids must be unique."""
    questions: list[EvalQuestion] = []
    seen: dict[str, int] = {}
    for number, raw in read_records(path):
        question = parse_record(raw, number)
        if question.id in seen:
            raise _fail(number, question.id, f"duplicate id (first on line {seen[question.id]})")
        seen[question.id] = number
        questions.append(question)
    if not questions:
        raise DatasetError(f"{path}: no questions")
    return questions


def validate_questions(
    questions: Iterable[EvalQuestion], documents: Mapping[str, Document]
) -> None:
    for question in questions:
        if question.doc_id is None:
            continue
        document = documents.get(question.doc_id)
        if document is None:
            raise _fail(question.line, question.id, f"unknown document {question.doc_id!r}")
        check_against_document(question, document)


def squad_title(doc_id: str) -> str:
    return doc_id.removeprefix(SQUAD_PREFIX)


def resolve_documents(
    doc_ids: Iterable[str], *, squad_path: Path, data_dir: Path | None
) -> dict[str, Document]:
    """The documents with these ids: SQuAD 2.0 articles (``squad2-<Title>``) from
    ``squad_path`` and the rest from the data folder. Raises DatasetError for a missing one."""
    wanted = list(dict.fromkeys(doc_ids))
    squad_ids = [d for d in wanted if d.startswith(SQUAD_PREFIX)]
    documents: dict[str, Document] = {}
    if squad_ids:
        if not squad_path.is_file():
            raise DatasetError(
                f"the question set needs SQuAD 2.0 articles but {squad_path} is missing "
                "(../shared/benchmarks absent?)"
            )
        from eval.squad import load_squad2

        available = {a.document.id: a.document for a in load_squad2(squad_path)}
        for doc_id in squad_ids:
            if doc_id not in available:
                raise DatasetError(f"no SQuAD 2.0 article with id {doc_id!r} in {squad_path}")
            documents[doc_id] = available[doc_id]
    others = [d for d in wanted if not d.startswith(SQUAD_PREFIX)]
    if others:
        from rag.load import load_data_dir

        local = {d.id: d for d in load_data_dir(data_dir)} if data_dir and data_dir.is_dir() else {}
        missing = [d for d in others if d not in local]
        if missing:
            raise DatasetError(f"document(s) {missing} not found in the data folder {data_dir}")
        documents.update({d: local[d] for d in others})
    return documents


def load_question_set(path: Path, *, squad_path: Path, data_dir: Path | None = None) -> QuestionSet:
    """Read, resolve and validate the question set at ``path`` (no default: the seed set,
    DEFAULT_QUESTIONS, needs ``data_dir``; the stand-ins, SQUAD_QUESTIONS, ``squad_path``)."""
    questions = parse_questions(path)
    documents = resolve_documents(
        [q.doc_id for q in questions if q.doc_id], squad_path=squad_path, data_dir=data_dir
    )
    validate_questions(questions, documents)
    return QuestionSet(questions=tuple(questions), documents=documents, path=path)


def locate(text: str, answer: str, context: str | None = None) -> Span:
    """The span of ``answer`` in ``text``, found inside ``context`` when given; both must be
    unique. For writing questions: a gold span is only ever found, never typed by hand."""
    base = 0
    if context is not None:
        base = _unique(text, context)
        text = context
    offset = _unique(text, answer)
    return Span(base + offset, base + offset + len(answer))


def _unique(text: str, needle: str) -> int:
    first = text.find(needle)
    if first < 0:
        raise DatasetError(f"{needle!r} does not occur")
    if text.find(needle, first + 1) >= 0:
        raise DatasetError(f"{needle!r} occurs more than once: give a context")
    return first


def to_record(question: EvalQuestion) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": question.id,
        "question": question.question,
        "category": question.category,
        "doc_id": question.doc_id,
        "gold_paragraphs": list(question.gold_paragraphs),
        "gold_spans": [[s.start, s.end] for s in question.gold_spans],
        "answer_text": question.answer_text,
    }
    if question.previous:
        record["previous"] = list(question.previous)
    if question.speaker is not None:
        record["speaker"] = question.speaker
    if question.note:
        record["note"] = question.note
    return record
