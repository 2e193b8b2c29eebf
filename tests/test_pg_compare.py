"""Two backends, one behaviour: the seed article's question set (eval/questions.jsonl, over
data/) and the SQuAD stand-ins' (eval/questions-squad.jsonl, over SQuAD 2.0 articles from
../shared) indexed by the embedded default (index folder) and by the Postgres backend, with
the real model, give the same answers to every question: the same passages in the same order,
identical spans and quotes, the same confidence, and so the same Recall@1."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from once_encoder import OnceEncoder
from pydantic import SecretStr

from eval.dataset import SQUAD_QUESTIONS, QuestionSet, load_question_set
from eval.squad import DEFAULT_PATH as SQUAD2_PATH
from rag.engine import Engine, Request
from rag.response import answer_dict
from rag.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SEED_QUESTIONS = REPO / "eval" / "questions.jsonl"


def engines(encoder, root: Path, url: str, qset: QuestionSet):  # type: ignore[no-untyped-def]
    """The question set's documents indexed by each backend, in the same order (the real
    model embeds each text once for both: tests/once_encoder.py)."""
    documents = list(qset.documents.values())
    encoder = OnceEncoder(encoder)
    base = Settings(data_dir=root / "data", index_dir=root / "index", reranker="")
    out = {}
    for name, settings in (
        ("files", base),
        ("postgres", base.model_copy(update={"database_url": SecretStr(url)})),
    ):
        engine = Engine(settings, encoder=encoder, use_reranker="off")
        engine.load_models()
        started = time.perf_counter()
        engine.build_index(documents=documents)
        engine.load()  # reads the index just built
        print(f"{name}: indexed and loaded in {time.perf_counter() - started:.2f} s")
        out[name] = engine
        if name == "files":
            embedded = encoder.model_calls
    assert type(out["postgres"].storage).__name__ == "PostgresStorage"
    # The second backend embedded nothing new: it was given the first one's vectors.
    assert embedded > 0 and encoder.model_calls == embedded
    return out


def compare(qset: QuestionSet, encoder, root: Path, url: str) -> None:  # type: ignore[no-untyped-def]
    by = engines(encoder, root, url, qset)
    a_corpus, b_corpus = by["files"].corpus, by["postgres"].corpus
    assert b_corpus.chunks == a_corpus.chunks
    assert (b_corpus.sentence_vectors == a_corpus.sentence_vectors).all()
    hits = {"files": 0, "postgres": 0}
    answerable = 0
    for q in qset.questions:
        request = Request(q.question, top_k=10, history=q.previous)
        answers = {name: answer_dict(engine.ask(request)) for name, engine in by.items()}
        assert answers["postgres"] == answers["files"], q.id
        if q.answerable:
            answerable += 1
            for name, body in answers.items():
                top = body["passages"][:1]
                gold = {(q.doc_id, n) for n in q.gold_paragraphs}
                hits[name] += bool(top and (top[0]["doc_id"], top[0]["paragraph"]) in gold)
    recall = {name: n / max(answerable, 1) for name, n in hits.items()}
    print(f"{qset.path.name}: {len(qset.questions)} questions, Recall@1 {recall}")
    assert math.isclose(recall["postgres"], recall["files"], abs_tol=0.01)


def test_the_seed_questions_get_the_same_answers_from_both_backends(
    encoder, pg_server, tmp_path: Path
) -> None:
    qset = load_question_set(SEED_QUESTIONS, squad_path=SQUAD2_PATH, data_dir=REPO / "data")
    compare(qset, encoder, tmp_path, pg_server.create_database("seed"))


def test_the_squad_questions_get_the_same_answers_from_both_backends(
    encoder, pg_server, tmp_path: Path
) -> None:
    if not SQUAD2_PATH.is_file():
        pytest.skip(f"external benchmark not found at {SQUAD2_PATH} (../shared missing)")
    qset = load_question_set(SQUAD_QUESTIONS, squad_path=SQUAD2_PATH, data_dir=REPO / "data")
    compare(qset, encoder, tmp_path, pg_server.create_database("squad"))
