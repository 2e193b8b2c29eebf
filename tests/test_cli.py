"""The ``rag`` command: readable answers, the API's JSON, and one-line errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cli.main as cli
from api.schemas import AskResponse
from rag.settings import get_settings


@pytest.fixture()
def env_index(monkeypatch, tmp_path: Path, squad_settings, squad_corpus) -> Path:
    """RAG_* variables pointing at a copy of the session's SQuAD index."""
    index_dir = tmp_path / "index"
    shutil.copytree(squad_settings.index_dir, index_dir)
    monkeypatch.setenv("RAG_DATA_DIR", str(squad_settings.data_dir))
    monkeypatch.setenv("RAG_INDEX_DIR", str(index_dir))
    get_settings.cache_clear()
    yield index_dir
    get_settings.cache_clear()


def test_ask_prints_the_answer_with_its_span(env_index, capsys) -> None:
    assert cli.main(["ask", "Who were the Normans?", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "Answer (squad2-Normans, paragraph 1, characters 0-374; accurate mode" in out
    assert "gave their name to Normandy" in out and "descended from Norse" in out
    assert out.count("squad2-") >= 2


def test_ask_says_what_it_searched_for_when_it_corrected_spelling(env_index, capsys) -> None:
    assert cli.main(["ask", "Who were the Normmans?", "--mode", "fast"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Q: Who were the Normmans?\n   (searched for: Who were the Normans?)\n")
    assert "gave their name to Normandy" in out


def test_ask_fast_mode_skips_the_reranker(env_index, capsys) -> None:
    assert cli.main(["ask", "Who were the Normans?", "--json", "--mode", "fast"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["mode"] == "fast"
    assert all(p["rerank_score"] is None for p in body["passages"])


def test_ask_json_is_the_api_response_body(env_index, capsys, squad_corpus) -> None:
    assert cli.main(["ask", "Who were the Normans?", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    AskResponse.model_validate(body)
    assert set(body) == {
        "question",
        "searched_as",
        "mode",
        "confidence",
        "answer",
        "abstained",
        "reason",
        "speaker",
        "passages",
    }
    assert body["speaker"] is None  # no speaker asked for
    assert body["mode"] == "accurate"  # the reranker is installed, so it is the default
    assert all(p["rerank_score"] is not None for p in body["passages"])
    assert len(body["passages"]) == 3
    text = squad_corpus.documents[body["answer"]["doc_id"]].text
    assert text[body["answer"]["start"] : body["answer"]["end"]] == body["answer"]["text"]
    for p in body["passages"]:
        doc = squad_corpus.documents[p["doc_id"]].text
        assert doc[p["start"] : p["end"]] == p["text"]
        assert all(doc[q["start"] : q["end"]] == q["text"] for q in p["quotes"])


def test_ask_off_topic_says_so(env_index, capsys) -> None:
    assert cli.main(["ask", "What did Macron say about nuclear deterrence?"]) == 0
    out = capsys.readouterr().out
    assert "No answer (accurate mode, confidence " in out
    # Macron is quoted nowhere: the refusal names him (issue 18)
    assert "The articles don't report Macron saying anything about this." in out
    assert cli.main(["ask", "How many moons does Jupiter have?"]) == 0
    assert "The articles do not appear to answer this" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ask", "   "], "question is empty"),
        (["ask", "x" * 1001], "the limit is 1000"),
        (["ask", "why?", "--top-k", "0"], "top_k must be an integer from 1 to 20"),
        (["ask", "why?", "--top-k", "21"], "top_k must be an integer from 1 to 20"),
        (["ask", "why?", "--doc-id", "nope"], "unknown document id(s): 'nope'"),
        (["ask", "why?", "--doc-id", "../etc"], "invalid document id '../etc'"),
        (["ask", "why?", "--author", "Nobody"], "no document by an author matching"),
    ],
)
def test_bad_input_is_one_line_error_and_non_zero_exit(env_index, capsys, argv, message) -> None:
    assert cli.main(argv) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_index_reports_what_it_did(env_index, capsys) -> None:
    assert cli.main(["index"]) == 0
    out = capsys.readouterr().out
    assert "added 0, updated 0, removed 0, unchanged 3" in out
    assert "embedded 0 chunks" in out


def _run(args: list[str], env_extra: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def test_missing_article_folder_and_mismatched_index_fail_cleanly(
    tmp_path: Path, squad_settings, squad_corpus
) -> None:
    missing = _run(
        ["index"],
        {"RAG_DATA_DIR": str(tmp_path / "nowhere"), "RAG_INDEX_DIR": str(tmp_path / "idx")},
        tmp_path,
    )
    assert missing.returncode == cli.EXIT_ERROR
    assert "error: data folder" in missing.stderr and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr

    index_dir = tmp_path / "index"
    shutil.copytree(squad_settings.index_dir, index_dir)
    live = index_dir / (index_dir / "CURRENT").read_text().strip() / "manifest.json"
    manifest = json.loads(live.read_text())
    manifest["chunker_version"] = "0-old"
    live.write_text(json.dumps(manifest))
    # A consistent old index (its manifest's own checksum updated), not a corrupt one.
    digest = hashlib.sha256(live.read_bytes()).hexdigest()
    (live.parent / "manifest.sha256").write_text(digest + "\n")
    before = {p.name: p.read_bytes() for p in live.parent.iterdir()}
    mismatch = _run(
        ["ask", "Who were the Normans?"],
        {"RAG_DATA_DIR": str(squad_settings.data_dir), "RAG_INDEX_DIR": str(index_dir)},
        tmp_path,
    )
    assert mismatch.returncode == cli.EXIT_ERROR
    assert "rag index --rebuild" in mismatch.stderr and "Traceback" not in mismatch.stderr
    assert {p.name: p.read_bytes() for p in live.parent.iterdir()} == before, "index untouched"
