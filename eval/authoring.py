"""Writing your own question file: ``rag eval init`` and ``rag eval validate``.

The format is that of :mod:`eval.dataset` (one JSON object a line), described by the JSON
Schema ``eval/questions.schema.json`` and in ``docs/ci.md``.

* :func:`starter_records` (``rag eval init``): one record per paragraph of every article, with
  the paragraph's span as its gold span and its text as ``answer_text``, and the question left
  blank for a person to write (then narrow the span to the sentence that answers it).
* :func:`validate_file` (``rag eval validate``): every problem of a question file, each with
  its line: records the evaluation would refuse, blank questions, unknown documents, and gold
  spans that no longer match the article (after the article changed), with where the
  expected text is now when it occurs exactly once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.types import Document
from eval.dataset import (
    DatasetError,
    EvalQuestion,
    check_against_document,
    paragraph_spans,
    parse_record,
)

SCHEMA_PATH = Path(__file__).resolve().parent / "questions.schema.json"
STARTER_NOTE = (
    "write the question; then narrow gold_spans and answer_text to the sentence that answers it"
)
_WHERE = re.compile(r"^line \d+(?: \([^)]*\))?: ")


@dataclass(frozen=True)
class Problem:
    """One problem of a question file, on one line."""

    line: int
    qid: str | None
    kind: str  # "invalid", "blank", "unknown_document", "stale"
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" ({self.qid})" if self.qid else "")
        return f"{where}: {self.message}"


def starter_records(documents: Iterable[Document]) -> list[dict[str, Any]]:
    """One record per paragraph (as the pipeline counts them) of every document."""
    records = []
    for document in documents:
        for number, span in enumerate(paragraph_spans(document.text), start=1):
            records.append(
                {
                    "id": f"{document.id}-p{number:03d}",
                    "question": "",
                    "category": "factual",
                    "doc_id": document.id,
                    "gold_paragraphs": [number],
                    "gold_spans": [[span.start, span.end]],
                    "answer_text": document.text[span.start : span.end],
                    "note": STARTER_NOTE,
                }
            )
    return records


def write_records(path: Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write ``records`` as JSON Lines; returns how many."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def _message(exc: DatasetError) -> str:
    return _WHERE.sub("", str(exc))


def _stale_hint(question: EvalQuestion, document: Document) -> str:
    text = document.text
    if not question.answer_text:
        return ""
    first = text.find(question.answer_text)
    if first < 0:
        return "; answer_text no longer occurs in the article"
    if text.find(question.answer_text, first + 1) >= 0:
        return "; answer_text occurs more than once in the article now"
    return f"; answer_text is now at [{first}, {first + len(question.answer_text)}]"


def validate_file(
    path: Path, documents_for: Callable[[list[str]], Mapping[str, Document]]
) -> tuple[list[Problem], int]:
    """Every problem of the question file at ``path`` and the number of records.
    ``documents_for(ids)`` returns the documents it finds among ``ids`` (the missing ones
    are left out)."""
    problems: list[Problem] = []
    questions: list[EvalQuestion] = []
    seen: dict[str, int] = {}
    count = 0
    with open(path, encoding="utf-8") as fh:
        lines = list(enumerate(fh, start=1))
    for number, line in lines:
        if not line.strip():
            continue
        count += 1
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(number, None, "invalid", f"not valid JSON: {exc.msg}"))
            continue
        qid = raw.get("id") if isinstance(raw, dict) else None
        qid = qid if isinstance(qid, str) and qid else None
        blank = isinstance(raw, dict) and raw.get("question") == ""
        if blank or (isinstance(raw, dict) and str(raw.get("question", "x")).isspace()):
            problems.append(Problem(number, qid, "blank", "the question is not written yet"))
            raw = {**raw, "question": "(blank)"}
        try:
            question = parse_record(raw, number)
        except DatasetError as exc:
            problems.append(Problem(number, qid, "invalid", _message(exc)))
            continue
        if question.id in seen:
            problems.append(
                Problem(number, qid, "invalid", f"duplicate id (first on line {seen[question.id]})")
            )
            continue
        seen[question.id] = number
        questions.append(question)
    ids = list(dict.fromkeys(q.doc_id for q in questions if q.doc_id))
    documents = documents_for(ids) if ids else {}
    for question in questions:
        if question.doc_id is None:
            continue
        document = documents.get(question.doc_id)
        if document is None:
            problems.append(
                Problem(
                    question.line,
                    question.id,
                    "unknown_document",
                    f"unknown document {question.doc_id!r}",
                )
            )
            continue
        try:
            check_against_document(question, document)
        except DatasetError as exc:
            problems.append(
                Problem(
                    question.line,
                    question.id,
                    "stale",
                    _message(exc) + _stale_hint(question, document),
                )
            )
    problems.sort(key=lambda p: p.line)
    return problems, count
