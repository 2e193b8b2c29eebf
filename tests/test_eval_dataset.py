"""The question file: every malformed record is refused with its line named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.types import Document, Span
from eval.dataset import (
    CATEGORIES,
    DEFAULT_QUESTIONS,
    SQUAD_QUESTIONS,
    DatasetError,
    load_question_set,
    locate,
    paragraph_spans,
    parse_questions,
    validate_questions,
)
from eval.squad import DEFAULT_PATH as SQUAD2_PATH
from rag.chunk import chunk_document

TEXT = (
    "Merz said the troops would stay. He added that Berlin would pay.\n\n"
    "The second paragraph is about Paris.\n"
)
DOC = Document(id="doc-a", text=TEXT)
DATA = Path(__file__).resolve().parent.parent / "data"
P1 = TEXT.index("Merz")
ANSWER = "the troops would stay"
START = TEXT.index(ANSWER)


def record(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "q1",
        "question": "What did Merz say about the troops?",
        "category": "speaker",
        "doc_id": "doc-a",
        "gold_paragraphs": [1],
        "gold_spans": [[START, START + len(ANSWER)]],
        "answer_text": ANSWER,
    }
    base.update(overrides)
    return base


def write(tmp_path: Path, *records: object) -> Path:
    path = tmp_path / "questions.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load(tmp_path: Path, *records: object) -> None:
    questions = parse_questions(write(tmp_path, *records))
    validate_questions(questions, {"doc-a": DOC})


def test_a_good_record_loads(tmp_path: Path) -> None:
    questions = parse_questions(write(tmp_path, record()))
    validate_questions(questions, {"doc-a": DOC})
    q = questions[0]
    assert q.answerable and q.gold_spans == (Span(START, START + len(ANSWER)),)
    assert q.paragraph_ids() == ("doc-a#1",)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"category": "trivia"}, "unknown category 'trivia'"),
        ({"gold_spans": [[START, len(TEXT) + 5]]}, "out of range"),
        ({"gold_spans": [[5, 3]]}, "empty or negative"),
        ({"gold_spans": [["a", 3]]}, "integer pairs"),
        ({"answer_text": "the troops will stay"}, "does not match the document text"),
        ({"gold_paragraphs": [2]}, "lies in paragraph 1, which is not in gold_paragraphs [2]"),
        ({"gold_paragraphs": [1, 2]}, "gold paragraph(s) [2] hold no gold span"),
        ({"category": "follow_up"}, "needs 'previous'"),
        ({"category": "unanswerable"}, "has no gold_spans"),
        ({"gold_spans": []}, "at least one gold span"),
        ({"doc_id": "nope"}, "unknown document 'nope'"),
        ({"colour": "red"}, "unknown field(s) ['colour']"),
        ({"question": "  "}, "'question' must be a non-empty string"),
        ({"previous": "not a list"}, "'previous' must be a list"),
        ({"category": "who_said_what"}, "a who_said_what question needs 'speaker'"),
        ({"speaker": ""}, "'speaker' must be a non-empty string"),
    ],
)
def test_bad_records_are_refused_with_their_line(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    good = record(id="q0")
    with pytest.raises(DatasetError) as err:
        load(tmp_path, good, record(**overrides))
    assert str(err.value).startswith("line 2 (q1): ")
    assert message in str(err.value)


def test_a_span_across_paragraphs_is_refused(tmp_path: Path) -> None:
    end = TEXT.index("Paris") + 5
    bad = record(
        category="multi_sentence",
        gold_spans=[[P1, end]],
        answer_text=TEXT[P1:end],
        gold_paragraphs=[1, 2],
    )
    with pytest.raises(DatasetError, match="crosses a paragraph boundary"):
        load(tmp_path, bad)


def test_duplicate_ids_and_broken_json_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"line 2 \(q1\): duplicate id \(first on line 1\)"):
        load(tmp_path, record(), record())
    with pytest.raises(DatasetError, match="line 2: not valid JSON"):
        load(tmp_path, record(), "{oops")


def test_unanswerable_and_follow_up_records(tmp_path: Path) -> None:
    load(
        tmp_path,
        {"id": "u1", "question": "Who won in 2018?", "category": "unanswerable", "doc_id": None},
        record(id="f1", category="follow_up", previous=["Who is Merz?"]),
    )


def test_paragraph_numbers_match_the_chunker() -> None:
    text = "Title\n\n-\n\nFirst paragraph here. It goes on.\n\n8 hours ago\n\nSecond one.\n"
    doc = Document(id="d", text=text)
    spans = paragraph_spans(text)
    for chunk in chunk_document(doc):
        p = spans[chunk.paragraph - 1]
        assert p.start <= chunk.start and chunk.end <= p.end


def test_locate_finds_a_unique_span_or_refuses() -> None:
    assert locate(TEXT, "Berlin") == Span(TEXT.index("Berlin"), TEXT.index("Berlin") + 6)
    with pytest.raises(DatasetError, match="more than once"):
        locate(TEXT, "would")
    with pytest.raises(DatasetError, match="does not occur"):
        locate(TEXT, "Macron")
    inside = locate(TEXT, "would", context="Berlin would pay")
    assert TEXT.count("would") == 2
    assert TEXT[inside.start : inside.end] == "would" and inside.start > TEXT.index("Berlin")


def test_the_committed_question_sets_are_valid_and_complete() -> None:
    if not SQUAD2_PATH.is_file():
        pytest.skip(f"external benchmark not found at {SQUAD2_PATH} (../shared missing)")
    seed = load_question_set(DEFAULT_QUESTIONS, squad_path=SQUAD2_PATH, data_dir=DATA)
    questions = seed.questions
    assert set(seed.documents) == {"sasse-coalition-of-the-willing"}
    assert len(questions) >= 120
    unanswerable = [q for q in questions if not q.answerable]
    assert len(unanswerable) >= 30
    # Most unanswerable questions are near the topic, not off it.
    assert sum(q.note.startswith("near") for q in unanswerable) > len(unanswerable) / 2
    assert {q.category for q in questions} == set(CATEGORIES)
    assert all(q.previous for q in questions if q.category == "follow_up")
    # Who said what (issue 18): each names its speaker; refusals name the one they ask about.
    assert all(q.speaker for q in questions if q.category == "who_said_what")
    assert sum(1 for q in unanswerable if q.speaker) >= 6

    squad = load_question_set(SQUAD_QUESTIONS, squad_path=SQUAD2_PATH)
    assert len(squad.questions) >= 80
    assert sum(1 for q in squad.questions if not q.answerable) >= 15
    assert {q.category for q in squad.questions} <= set(CATEGORIES)
    assert all(q.previous for q in squad.questions if q.category == "follow_up")
    # Unit tests index Normans and Scottish_Parliament: the set must not be about them.
    assert not {"squad2-Normans", "squad2-Scottish_Parliament"} & set(squad.documents)
