"""Bring your own questions: the question-file format's JSON Schema (eval/questions.schema.json),
``rag eval init`` (a starter file from the articles) and ``rag eval validate`` (stale gold
spans named by line). No model, no server: the seed article and the committed files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema_rs
import pytest

from eval import cli
from eval.authoring import SCHEMA_PATH
from eval.dataset import CATEGORIES, DEFAULT_QUESTIONS, SQUAD_QUESTIONS, DatasetError, parse_record

REPO = Path(__file__).resolve().parent.parent
SEED = "sasse-coalition-of-the-willing"


def validator() -> jsonschema_rs.Draft202012Validator:
    return jsonschema_rs.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_both_shipped_question_files_follow_the_schema() -> None:
    schema = validator()
    for path in (DEFAULT_QUESTIONS, SQUAD_QUESTIONS):
        items = records(path)
        assert items, path
        for n, record in enumerate(items, start=1):
            errors = [e.message for e in schema.iter_errors(record)]
            assert not errors, (path.name, n, errors)
    enum = json.loads(SCHEMA_PATH.read_text())["properties"]["category"]["enum"]
    assert tuple(enum) == CATEGORIES


@pytest.mark.parametrize(
    "change",
    [
        {"question": "  "},
        {"category": "opinion"},
        {"gold_spans": [[5, 9, 1]]},
        {"gold_spans": []},
        {"surprise": 1},
        {"category": "follow_up"},  # without "previous"
        {"category": "unanswerable"},  # with spans
        {"category": "who_said_what"},  # without "speaker"
        {"speaker": " "},
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(change: dict[str, object]) -> None:
    good = records(DEFAULT_QUESTIONS)[0]
    assert validator().is_valid(good)
    bad = {**good, **change}
    assert not validator().is_valid(bad)
    with pytest.raises(DatasetError):
        parse_record(bad, 1)


def test_init_writes_one_line_per_paragraph_with_its_span(tmp_path: Path, capsys) -> None:
    out = tmp_path / "questions-mine.jsonl"
    assert cli.main(["init", "--data-dir", str(REPO / "data"), "--out", str(out)]) == 0
    text = (REPO / "data" / f"{SEED}.txt").read_text(encoding="utf-8")
    items = records(out)
    assert len(items) >= 5
    for n, record in enumerate(items, start=1):
        start, end = record["gold_spans"][0]  # type: ignore[index]
        assert record["gold_paragraphs"] == [n] and record["doc_id"] == SEED
        assert record["answer_text"] == text[start:end] and record["question"] == ""
        # Only the question is missing: with one written, the line follows the schema.
        assert validator().is_valid({**record, "question": "What is it about?"})
    assert cli.main(["init", "--data-dir", str(REPO / "data"), "--out", str(out)]) == 2
    # validate: every span matches; every line still wants its question.
    capsys.readouterr()
    assert cli.main(["validate", str(out), "--data-dir", str(REPO / "data")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert f"{out}: line 1 ({SEED}-p001): the question is not written yet" in lines
    problems = [line for line in lines if line.startswith(f"{out}: line ")]
    assert len(problems) == len(items)
    assert all(line.endswith("the question is not written yet") for line in problems)


def test_validate_names_the_lines_whose_gold_span_went_stale(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    shutil.copytree(REPO / "data", data)
    questions = tmp_path / "questions-mine.jsonl"
    shutil.copy(DEFAULT_QUESTIONS, questions)
    assert cli.main(["validate", str(questions), "--data-dir", str(data)]) == 0
    assert "every gold span matches its article" in capsys.readouterr().out
    # The article changes: a sentence inserted in paragraph 5 moves every span after it.
    article = data / f"{SEED}.txt"
    text = article.read_text(encoding="utf-8")
    anchor = "The German chancellor, Friedrich Merz,"
    article.write_text(text.replace(anchor, "A new sentence. " + anchor, 1), encoding="utf-8")
    moved = text.index(anchor)
    expected = [
        n
        for n, r in enumerate(records(questions), start=1)
        if any(end > moved for _, end in r.get("gold_spans", []))  # type: ignore[attr-defined]
    ]
    assert expected
    assert cli.main(["validate", str(questions), "--data-dir", str(data)]) == 1
    out = capsys.readouterr().out.splitlines()
    stale = [line for line in out if line.startswith(f"{questions}: line ")]
    named = [int(line.split("line ")[1].split(" ")[0]) for line in stale]
    assert named == expected
    assert any("answer_text is now at [" in line for line in stale)
    total = len(records(questions))
    assert out[-1].startswith(f"{len(expected)} of {total} line(s) need attention")
    # A missing file is a usage error.
    assert cli.main(["validate", str(tmp_path / "nope.jsonl")]) == 2


def test_validate_reads_the_data_folder_setting_by_default(monkeypatch, capsys) -> None:
    from rag.settings import get_settings

    monkeypatch.setenv("RAG_DATA_DIR", str(REPO / "data"))
    get_settings.cache_clear()
    try:
        assert cli.main(["validate", str(DEFAULT_QUESTIONS)]) == 0
    finally:
        get_settings.cache_clear()
    assert f"all {len(records(DEFAULT_QUESTIONS))} records valid" in capsys.readouterr().out
