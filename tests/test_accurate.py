"""Accurate mode (cross-encoder reranking), its sentence choice, and learned abstention.

The retrieval tests use the real bundled models (MiniLM and the ONNX cross-encoder) on real
SQuAD 2.0 articles; the abstention model's logic is also tested on its own.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

import cli.main as cli
from core.errors import ModelError, RerankerUnavailable
from eval.fit import fit
from eval.squad import SquadArticle
from rag.abstain import (
    ACCURATE_SIGNALS,
    FAST_SIGNALS,
    AbstentionMismatch,
    AbstentionModel,
    load_abstention,
    models_for,
    shipped_path,
)
from rag.chunk import CHUNKER_VERSION
from rag.pipeline import answer, resolve_mode
from rag.question import names_found, question_names
from rag.quote import WindowScores, choose_answer, sentence_evidence
from rag.rerank import BUNDLED_RERANKER, CrossEncoderReranker, make_reranker
from rag.settings import Settings, get_settings


@pytest.fixture(scope="module")
def reranker() -> CrossEncoderReranker:
    loaded = make_reranker(Settings())
    assert loaded is not None
    return loaded.load()


def answerable(articles: list[SquadArticle], n: int, seed: int = 5) -> list:
    pool = [q for a in articles for q in a.questions if not q.impossible]
    return random.Random(seed).sample(pool, n)


class CountingReranker:
    """The real cross-encoder, counting the (question, passage) pairs it is asked to read."""

    def __init__(self, inner: CrossEncoderReranker) -> None:
        self.inner = inner
        self.read: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        self.read.extend(passages)
        return self.inner.score(query, passages)


def test_the_early_stop_reads_fewer_passages_and_keeps_the_answer(
    squad_corpus, squad_settings, encoder, reranker, squad_articles
) -> None:
    """By default the cross-encoder reads the first 4 fused candidates and the other 6 only
    when none of them scores 2 logits; without a stop it reads all 10. Where both runs put
    the same passage first, they quote the same answer."""
    assert (squad_settings.tuning.rerank_first, squad_settings.tuning.rerank_stop) == (4, 2.0)
    passage_texts = {c.text for c in squad_corpus.chunks}
    stopped = 0
    for q in answerable(squad_articles, 12, seed=11):
        results, passages_read = {}, {}
        for stop in (2.0, None):
            counting = CountingReranker(reranker)
            results[stop] = answer(
                squad_corpus,
                encoder,
                q.question,
                settings=squad_settings.tuned(rerank_stop=stop),
                mode="accurate",
                reranker=counting,
                abstain=False,
            )
            # (a one-sentence top passage is read once more as its own sentence: +1 in both)
            passages_read[stop] = sum(text in passage_texts for text in counting.read)
        early, full = results[2.0], results[None]
        top_score = early.passages[0].hit.rerank_score
        assert top_score is not None
        if passages_read[2.0] < passages_read[None]:
            stopped += 1
            assert passages_read[2.0] <= 4 + 1 and top_score >= 2.0
        else:
            assert passages_read[2.0] == passages_read[None] >= 10
        if early.passages[0].hit.chunk == full.passages[0].hit.chunk:
            assert early.answer == full.answer
    assert stopped >= 6, stopped  # most clear SQuAD questions stop after 4 passages


def test_accurate_ranks_and_quotes_at_least_as_well_as_fast(
    squad_corpus, squad_settings, encoder, reranker, squad_articles
) -> None:
    # Fast mode's support favours sentences that echo the question's words; the
    # cross-encoder reads passages and sentences for the answer.
    questions = answerable(squad_articles, 50)
    first = {"fast": 0, "accurate": 0}
    quoted = {"fast": 0, "accurate": 0}
    for q in questions:
        for mode in first:
            result = answer(
                squad_corpus,
                encoder,
                q.question,
                settings=squad_settings,
                mode=mode,
                reranker=reranker,
                abstain=False,
            )
            assert result.mode == mode
            top = result.passages[0].hit.chunk
            first[mode] += (top.doc_id, top.paragraph) == (q.doc_id, q.paragraph)
            quote = result.answer
            assert quote is not None
            quoted[mode] += quote.doc_id == q.doc_id and any(
                quote.start <= g.start and g.end <= quote.end for g in q.answers
            )
    assert first["accurate"] >= first["fast"], first
    assert quoted["accurate"] >= quoted["fast"], quoted
    assert first["accurate"] >= 0.8 * len(questions), first
    assert quoted["accurate"] >= 0.7 * len(questions), quoted


def test_accurate_answers_carry_rerank_scores_and_exact_spans(
    squad_corpus, squad_settings, encoder, reranker
) -> None:
    result = answer(
        squad_corpus,
        encoder,
        "When did Herve serve as a Byzantine general?",
        settings=squad_settings,
        reranker=reranker,
        top_k=3,
    )
    assert result.mode == "accurate"  # the default when a reranker is given
    scores = [p.hit.rerank_score for p in result.passages]
    assert all(s is not None for s in scores)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert result.answer is not None and "1050s" in result.answer.text
    text = squad_corpus.documents[result.answer.doc_id].text
    assert text[result.answer.start : result.answer.end] == result.answer.text
    assert {"rerank_top", "rerank_margin", "sentence_rerank"} <= set(result.signals)


def test_pairs_are_quoted_only_when_better_by_the_margin(
    squad_corpus, squad_settings, encoder
) -> None:
    hit_source = answer(
        squad_corpus, encoder, "Who were the Normans?", settings=squad_settings, top_k=1
    )
    hits = [hit_source.passages[0].hit]
    chunk = hits[0].chunk
    n = len(chunk.sentences)
    assert n >= 3
    qv = encoder.encode(["Who were the Normans?"], kind="query")[0]
    evidence = [sentence_evidence(squad_corpus, hits[0], qv, squad_corpus.lexical.terms("x"))]
    singles = np.full(n, -5.0, dtype=np.float32)
    singles[1] = 2.0
    pairs = np.full(n - 1, -5.0, dtype=np.float32)

    def choose(margin: float):  # type: ignore[no-untyped-def]
        return choose_answer(squad_corpus, hits, evidence, WindowScores(singles, pairs), margin)

    pairs[1] = 2.5  # better, but not by a margin of 1: one sentence
    one = choose(1.0)
    assert one is not None and (one.sentence, one.rerank) == (1, 2.0)
    assert one.first <= 1 <= one.last
    two = choose(0.5)  # by a margin of 0.5: sentences 1 and 2 together
    assert two is not None and two.first <= 1 and two.last >= 2
    assert two.rerank == pytest.approx(2.5)
    pairs[1] = 2.0  # as good as the sentence alone: the pair at the default margin, 0
    assert squad_settings.tuning.pair_margin == 0.0
    tie = choose(squad_settings.tuning.pair_margin)
    assert tie is not None and tie.first <= 1 and tie.last >= 2
    pairs[1] = 1.9  # worse than the sentence alone: one sentence
    worse = choose(squad_settings.tuning.pair_margin)
    assert worse is not None and worse.rerank == pytest.approx(2.0)


def test_without_a_reranker_accurate_is_refused_and_fast_works(
    squad_corpus, squad_settings, encoder, tmp_path
) -> None:
    settings = squad_settings.model_copy(update={"reranker": str(tmp_path / "no-model")})
    missing = make_reranker(settings)
    assert missing is not None
    with pytest.raises(ModelError, match="does not exist"):
        missing.load()
    with pytest.raises(RerankerUnavailable, match="use 'fast'"):
        answer(squad_corpus, encoder, "Who were the Normans?", settings=settings, mode="accurate")
    result = answer(squad_corpus, encoder, "Who were the Normans?", settings=settings)
    assert result.mode == "fast" and result.answer is not None
    none = squad_settings.model_copy(update={"reranker": ""})
    assert make_reranker(none) is None
    with pytest.raises(RerankerUnavailable, match="RAG_RERANKER is empty"):
        resolve_mode("accurate", none, None)


def test_cli_accurate_without_the_model_fails_clearly_and_default_falls_back(
    monkeypatch, tmp_path: Path, squad_settings, squad_corpus, capsys
) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(squad_settings.data_dir))
    monkeypatch.setenv("RAG_INDEX_DIR", str(squad_settings.index_dir))
    monkeypatch.setenv("RAG_RERANKER", str(tmp_path / "no-model"))
    get_settings.cache_clear()
    try:
        assert cli.main(["ask", "Who were the Normans?", "--mode", "accurate"]) == cli.EXIT_ERROR
        err = capsys.readouterr().err
        assert err.startswith("error:") and "no-model" in err and "Traceback" not in err
        assert cli.main(["ask", "Who were the Normans?", "--json"]) == 0
        captured = capsys.readouterr()
        assert "note: answering in fast mode" in captured.err
        assert json.loads(captured.out)["mode"] == "fast"
    finally:
        get_settings.cache_clear()


# --------------------------------------------------------------------------- abstention


def test_shipped_parameters_load_for_the_bundled_models(encoder) -> None:
    """They were learned with the default settings' models: fp32 passages, int8 questions."""
    fast = load_abstention(
        "fast", encoder=encoder.query_name, reranker="", chunker_version=CHUNKER_VERSION
    )
    accurate = load_abstention(
        "accurate",
        encoder=encoder.query_name,
        reranker=BUNDLED_RERANKER,
        chunker_version=CHUNKER_VERSION,
    )
    assert fast.features == FAST_SIGNALS and accurate.features == ACCURATE_SIGNALS
    assert 0.0 < accurate.threshold < 1.0
    assert accurate.provenance["held_out"]["questions"] > 0


def test_parameters_refuse_other_models(encoder, caplog) -> None:
    with pytest.raises(AbstentionMismatch, match="learned with encoder"):
        load_abstention(
            "fast", encoder="some/other-model", reranker="", chunker_version=CHUNKER_VERSION
        )
    with pytest.raises(AbstentionMismatch, match="reranker"):
        load_abstention(
            "accurate",
            encoder=encoder.query_name,
            reranker="/models/bigger-cross-encoder",
            chunker_version=CHUNKER_VERSION,
        )
    # The service then abstains by the support threshold for that mode, and says why.
    models = models_for(Settings(), encoder="some/other-model", reranker=None)
    assert models == {}
    assert "abstains by the support threshold" in caplog.text
    assert models_for(Settings(abstention="threshold"), encoder="x", reranker=None) == {}


def test_learned_model_separates_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for i in range(400):
        good = i % 2 == 0
        rows.append({"a": rng.normal(1.0 if good else -1.0), "b": rng.normal()})
        labels.append(good)
    model = fit(
        rows, labels, ("a", "b"), mode="fast", encoder="e", reranker="", chunker_version="1"
    )
    assert model.coef[0] > 1.0 and abs(model.coef[1]) < 0.5
    assert (
        model.probability({"a": 2.0, "b": 0.0})
        > 0.9
        > 0.1
        > model.probability({"a": -2.0, "b": 0.0})
    )
    assert model.reason({"a": 2.0, "b": 0.0}) is None
    assert "abstention threshold" in (model.reason({"a": -2.0, "b": 0.0}) or "")
    again = AbstentionModel.from_json(model.to_json())
    assert again == model
    with pytest.raises(ModelError, match="signals"):
        model.probability({"a": 1.0})
    bad = json.loads(model.to_json())
    bad["coef"] = [1.0]
    with pytest.raises(ModelError, match="malformed"):
        AbstentionModel.from_json(json.dumps(bad))


def test_shipped_files_are_where_the_service_looks() -> None:
    assert shipped_path("fast").is_file() and shipped_path("accurate").is_file()


def test_names_found_is_the_share_of_the_questions_names_in_the_passage() -> None:
    question = "What did Benjamin Franklin say about the Albany Plan in 1754?"
    assert question_names(question) == ["Benjamin", "Franklin", "Albany", "Plan", "1754"]
    passage = "In 1754 the Albany Plan of Union was proposed by the colonies' delegates."
    assert names_found(question, passage) == pytest.approx(3 / 5)
    assert names_found("how did he die", "anything") == 1.0  # names nothing
    assert names_found("Who was Zia-ul-Haq?", "General Zia-ul-Haq overthrew Bhutto.") == 1.0
    assert names_found("Where is Álava?", "the province of ALAVA") == 1.0  # case and accents
    assert names_found("Who was Pakistan's leader?", "the leader of Pakistan") == 1.0


def test_an_unmentioned_name_lowers_the_answers_confidence(
    squad_corpus, squad_settings, encoder, reranker
) -> None:
    # The learned model weighs the signal positively (learned on the seed set, not written here).
    models = models_for(squad_settings, encoder=encoder.query_name, reranker=reranker.name)
    learned = models["accurate"]
    assert learned.coef[learned.features.index("names_found")] > 0

    def ask(question: str):  # type: ignore[no-untyped-def]
        return answer(
            squad_corpus,
            encoder,
            question,
            settings=squad_settings,
            mode="accurate",
            reranker=reranker,
            abstention=models,
            abstain=False,
        )

    named = ask("What did Rollo agree to do for King Charles III?")
    stranger = ask("What did Rollo agree to do for King Baldwin IX?")
    assert named.signals["names_found"] == 1.0
    assert stranger.signals["names_found"] < 1.0
    assert stranger.confidence < named.confidence


def test_window_re_reading_changes_only_the_close_calls(
    squad_corpus, encoder, reranker, squad_settings
):  # type: ignore[no-untyped-def]
    """RAG_TUNING__RERANK_WINDOW_WORDS=60 on real questions: where the cross-encoder already
    separates the two best passages by the margin, nothing changes; where it does not, the two
    are re-read (their scores change), and every quote stays exact."""
    from eval.dataset import SQUAD_QUESTIONS, load_question_set
    from eval.squad import DEFAULT_PATH

    qset = load_question_set(SQUAD_QUESTIONS, squad_path=DEFAULT_PATH)
    questions = [q.question for q in qset.questions if q.doc_id == "squad2-Islamism"][:24]
    on = squad_settings.tuned(rerank_window_words=60)
    assert squad_settings.tuning.rerank_window_words == 0  # off by default
    re_read = 0
    for question in questions:
        plain = answer(squad_corpus, encoder, question, settings=squad_settings, reranker=reranker)
        windowed = answer(squad_corpus, encoder, question, settings=on, reranker=reranker)
        before = [p.hit.rerank_score for p in plain.passages]
        after = {p.hit.chunk.id: p.hit.rerank_score for p in windowed.passages}
        assert before[0] is not None and before[1] is not None
        if before[0] - before[1] >= on.tuning.rerank_window_margin:
            assert [p.hit.chunk.id for p in windowed.passages] == [
                p.hit.chunk.id for p in plain.passages
            ]
            assert list(after.values()) == before
        elif any(after.get(p.hit.chunk.id) != p.hit.rerank_score for p in plain.passages[:2]):
            re_read += 1
        for passage in windowed.passages:
            for quote in passage.quotes:
                assert (
                    squad_corpus.documents[quote.doc_id].text[quote.start : quote.end] == quote.text
                )
    assert re_read > 0


def test_threshold_is_the_models_boundary_lowered_for_false_abstentions() -> None:
    from eval.fit import choose_threshold

    answerable = np.array([True] * 20 + [False] * 5)
    confident = np.array([0.9] * 20 + [0.1] * 5)
    assert choose_threshold(confident, answerable, 0.05) == 0.5
    # Two of twenty answerable questions below 0.5: lowered to refuse at most one of them.
    shaky = np.array([0.2, 0.3] + [0.9] * 18 + [0.1] * 5)
    assert choose_threshold(shaky, answerable, 0.05) == 0.2
