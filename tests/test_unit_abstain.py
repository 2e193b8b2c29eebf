"""The abstention decision without a model: the signals of an answer (rag.abstain.signals), the
learned logistic model with weights set by hand (rag.abstain.AbstentionModel), the choice
between it and the support threshold (rag.pipeline.decide), and the refusals that come before
any score (rag.question.lacks)."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

import pytest
from fakes import fake_settings

from core.errors import ModelError
from core.types import Chunk, Hit
from rag.abstain import (
    ACCURATE_SIGNALS,
    FAST_SIGNALS,
    FOLDER_FILE,
    AbstentionMismatch,
    AbstentionModel,
    models_for,
    reranker_folder,
    reranker_identity,
    signals,
)
from rag.chunk import CHUNKER_VERSION
from rag.pipeline import decide
from rag.question import lacks
from rag.quote import Choice
from rag.rerank import BUNDLED_RERANKER
from rag.settings import BUNDLED_MODEL, Settings

CHUNK = Chunk(id="c", doc_id="d", paragraph=1, part=0, start=0, end=1, text="x", sentences=())
CHOICE = Choice(
    passage=0, sentence=0, first=0, last=0, support=0.5, cosine=0.6, lexical=0.3, rerank=None
)
NO_PASSAGE = "No passage in the indexed articles matches the question."


def model(**changes: object) -> AbstentionModel:
    """P = sigmoid(2 * (cosine - 0.5) / 0.1 + 1 * (names_found - 1) / 0.5 - 0.5)."""
    values: dict[str, object] = {
        "mode": "fast",
        "encoder": "enc",
        "reranker": "",
        "chunker_version": CHUNKER_VERSION,
        "features": ("cosine", "names_found"),
        "mean": (0.5, 1.0),
        "scale": (0.1, 0.5),
        "coef": (2.0, 1.0),
        "intercept": -0.5,
        "threshold": 0.6,
    }
    values.update(changes)
    return AbstentionModel(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fake_settings(tmp_path, abstain_threshold=0.42)


# ------------------------------------------------------------------------------ signals


def test_signals_of_a_fast_answer() -> None:
    hits = [
        Hit(CHUNK, 1.0, dense_score=0.7, bm25_score=3.0, dense_rank=2, bm25_rank=1),
        Hit(CHUNK, 0.8, dense_score=0.9, dense_rank=1),
        Hit(CHUNK, 0.5, bm25_score=1.0, bm25_rank=2),
    ]
    out = signals(hits, CHOICE, names=0.5, type_found=False, names_in_article=1.0)
    assert out == {
        "support": 0.5,
        "cosine": 0.6,
        "lexical": 0.3,
        "dense_top": 0.9,  # the best dense score, wherever that hit ranks
        "dense_margin": pytest.approx(0.2),
        "bm25_agrees": 1.0,  # the top hit is in both lists' top 3
        "names_found": 0.5,
        "type_found": 0.0,
        "names_in_article": 1.0,
    }
    assert not {"rerank_top", "rerank_margin", "sentence_rerank"} & set(out)
    assert set(FAST_SIGNALS) <= set(out)


def test_bm25_agrees_only_when_both_lists_rank_the_top_hit_in_their_top_three() -> None:
    low = [Hit(CHUNK, 1.0, dense_score=0.5, dense_rank=1, bm25_rank=4, bm25_score=1.0)]
    assert signals(low, CHOICE)["bm25_agrees"] == 0.0
    dense_only = [Hit(CHUNK, 1.0, dense_score=0.5, dense_rank=1)]
    out = signals(dense_only, CHOICE)
    assert out["bm25_agrees"] == 0.0
    assert (out["dense_top"], out["dense_margin"]) == (0.5, 0.5)  # no second: margin to 0
    assert signals([], CHOICE)["dense_top"] == 0.0


def test_signals_of_an_accurate_answer() -> None:
    hits = [
        Hit(CHUNK, 1.0, dense_score=0.5, rerank_score=4.0),
        Hit(CHUNK, 0.9, dense_score=0.4, rerank_score=1.5),
        Hit(CHUNK, 0.8, dense_score=0.3),  # not read by the cross-encoder
    ]
    out = signals(hits, replace(CHOICE, rerank=2.5))
    assert (out["rerank_top"], out["rerank_margin"], out["sentence_rerank"]) == (4.0, 2.5, 2.5)
    assert set(ACCURATE_SIGNALS) <= set(out)
    alone = signals(hits[:1], CHOICE)  # one reranked passage: margin to -12; no window score
    assert (alone["rerank_margin"], alone["sentence_rerank"]) == (16.0, 4.0)


# ------------------------------------------------------------------------------ the model


def test_the_model_is_a_logistic_regression_over_standardised_signals() -> None:
    m = model()
    values = {"cosine": 0.7, "names_found": 0.5, "ignored": 99.0}
    z = 2.0 * (0.7 - 0.5) / 0.1 + 1.0 * (0.5 - 1.0) / 0.5 - 0.5
    assert m.probability(values) == pytest.approx(1 / (1 + math.exp(-z)))
    assert m.probability({"cosine": 0.45, "names_found": 1.0}) < 0.5
    # Far outside the data the logit is clipped, not overflowed.
    assert m.probability({"cosine": 1e9, "names_found": 1.0}) == pytest.approx(1.0)
    assert m.probability({"cosine": -1e9, "names_found": 1.0}) == pytest.approx(0.0, abs=1e-20)
    with pytest.raises(ModelError, match="names_found"):
        m.probability({"cosine": 0.7})


def test_the_model_answers_from_its_threshold_up_and_says_why_not_below() -> None:
    m = model()
    z = 2.0 * (0.55 - 0.5) / 0.1 - 0.5  # 0.5: P = 0.62
    at = {"cosine": 0.55, "names_found": 1.0}
    assert m.probability(at) == pytest.approx(1 / (1 + math.exp(-z)))
    assert m.reason(at) is None  # 0.62 >= 0.6
    strict = model(threshold=0.7)
    reason = strict.reason(at)
    assert reason is not None
    assert (
        "the evidence scores 0.62" in reason and "fast mode's abstention threshold 0.70" in reason
    )


def test_parameters_round_trip_through_json_and_malformed_ones_are_refused() -> None:
    m = model(provenance={"command": "by hand"})
    assert AbstentionModel.from_json(m.to_json()) == m
    with pytest.raises(ModelError, match="vector lengths differ"):
        AbstentionModel.from_json(model(coef=(1.0,)).to_json())
    with pytest.raises(ModelError, match="malformed"):
        AbstentionModel.from_json('{"mode": "fast"}')


def test_parameters_learned_with_other_models_are_refused_naming_them() -> None:
    m = model()
    assert m.check(encoder="enc", reranker="", chunker_version=CHUNKER_VERSION) is m
    with pytest.raises(AbstentionMismatch, match="encoder 'enc' \\(loaded: 'other'\\)"):
        m.check(encoder="other", reranker="", chunker_version=CHUNKER_VERSION)
    with pytest.raises(AbstentionMismatch, match="chunker_version"):
        m.check(encoder="enc", reranker="", chunker_version="0")


def test_the_shipped_models_load_only_for_the_models_they_were_learned_with(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    learned = settings.model_copy(update={"abstention": "learned"})
    assert models_for(settings, encoder=BUNDLED_MODEL, reranker=BUNDLED_RERANKER) == {}
    shipped = models_for(learned, encoder=BUNDLED_MODEL, reranker=BUNDLED_RERANKER)
    assert set(shipped) == {"fast", "accurate"}
    assert shipped["fast"].features == FAST_SIGNALS
    assert shipped["accurate"].features == ACCURATE_SIGNALS
    assert set(models_for(learned, encoder=BUNDLED_MODEL, reranker=None)) == {"fast"}
    with caplog.at_level(logging.WARNING, logger="rag.abstain"):
        assert models_for(learned, encoder="fake-bow", reranker="fake-overlap") == {}
    assert "fast mode abstains by the support threshold" in caplog.text
    assert "accurate mode abstains by the support threshold" in caplog.text


def test_a_model_folder_keeps_its_own_accurate_parameters(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    learned = settings.model_copy(update={"abstention": "learned"})
    folder = tmp_path / "student"
    folder.mkdir()
    assert reranker_folder(str(folder)) is None  # no model file: not a model folder
    assert reranker_folder(BUNDLED_RERANKER) is None
    assert reranker_identity("fake-overlap") == "fake-overlap"
    (folder / "model.onnx").write_bytes(b"weights, version 1")
    assert reranker_folder(str(folder)) == folder
    identity = reranker_identity(str(folder))
    assert identity.startswith("sha256:") and len(identity) == len("sha256:") + 16

    with caplog.at_level(logging.WARNING, logger="rag.abstain"):
        found = models_for(learned, encoder=BUNDLED_MODEL, reranker=str(folder))
    assert set(found) == {"fast"}  # never the bundled cross-encoder's parameters
    assert f"RAG_RERANKER={folder} rag eval learn-abstention" in caplog.text

    own = model(mode="accurate", encoder=BUNDLED_MODEL, reranker=identity)
    (folder / FOLDER_FILE).write_text(own.to_json(), encoding="utf-8")
    assert models_for(learned, encoder=BUNDLED_MODEL, reranker=str(folder))["accurate"] == own
    moved = folder.rename(tmp_path / "elsewhere")  # the same model under another path
    assert models_for(learned, encoder=BUNDLED_MODEL, reranker=str(moved))["accurate"] == own

    (moved / "model.onnx").write_bytes(b"weights, version 2")  # retrained: another model
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rag.abstain"):
        assert "accurate" not in models_for(learned, encoder=BUNDLED_MODEL, reranker=str(moved))
    assert f"reranker {identity!r}" in caplog.text


# ------------------------------------------------------------------------------ decide


def test_without_a_model_the_support_threshold_decides(settings: Settings) -> None:
    answered = decide(replace(CHOICE, support=0.42), {}, 3, "fast", settings, None)
    assert (answered.confidence, answered.threshold, answered.reason) == (0.42, 0.42, None)
    refused = decide(replace(CHOICE, support=0.41), {}, 3, "fast", settings, {})
    assert refused.confidence == 0.41 and refused.threshold == 0.42
    assert refused.reason is not None
    assert "scores 0.41, below the abstention threshold 0.42" in refused.reason


def test_no_candidate_is_minus_infinity_with_the_reason(settings: Settings) -> None:
    nothing = decide(None, {}, 0, "fast", settings, None)
    assert nothing.confidence == -math.inf and nothing.threshold == 0.42
    assert nothing.reason == NO_PASSAGE
    no_sentence = decide(None, {}, 2, "accurate", settings, {"accurate": model()})
    assert no_sentence.confidence == -math.inf
    assert no_sentence.threshold == 0.6  # the model's threshold
    assert no_sentence.reason is not None and no_sentence.reason != NO_PASSAGE


def test_the_model_for_the_mode_decides_when_there_is_one(settings: Settings) -> None:
    m = model()
    good = {"cosine": 0.7, "names_found": 1.0}
    bad = {"cosine": 0.3, "names_found": 1.0}
    # A low support does not matter to the model, nor a high one.
    yes = decide(replace(CHOICE, support=0.0), good, 3, "fast", settings, {"fast": m})
    assert yes.reason is None and yes.threshold == 0.6
    assert yes.confidence == pytest.approx(m.probability(good))
    no = decide(replace(CHOICE, support=1.0), bad, 3, "fast", settings, {"fast": m})
    assert no.reason == m.reason(bad) and no.reason is not None
    # A model for the other mode only: the threshold rule.
    other = decide(replace(CHOICE, support=1.0), bad, 3, "accurate", settings, {"fast": m})
    assert other.reason is None and other.confidence == 1.0 and other.threshold == 0.42


# ------------------------------------------------------------------------------ lacks


ARTICLE = (
    "Gwendolyn Sasse writes that the German chancellor, Friedrich Merz, spoke in Paris in "
    "January. Berlin would not send troops before a ceasefire."
)


def test_the_kind_of_answer_asked_for_is_checked_before_the_names() -> None:
    both_missing = {"type_found": 0.0, "names_in_article": 0.0}
    reason = lacks("When did Macron speak?", both_missing, ARTICLE)
    assert reason is not None and "asks for a date or time" in reason
    reason = lacks("Which official spoke?", {"type_found": 0.0}, ARTICLE)
    assert reason is not None and "a person's name" in reason


def test_a_name_the_article_never_mentions_is_named_in_the_reason() -> None:
    reason = lacks("What did Macron tell Scholz?", {"names_in_article": 0.0}, ARTICLE)
    assert reason is not None and reason.endswith("does not mention Macron, Scholz.")
    # Germany counts as named through "German" and "Berlin"; Macron does not.
    reason = lacks("What did Macron say about Germany?", {"names_in_article": 0.5}, ARTICLE)
    assert reason is not None and reason.endswith("does not mention Macron.")


def test_nothing_lacking_is_no_reason() -> None:
    assert lacks("What did Merz say?", {}, ARTICLE) is None  # signals default to present
    full = {"type_found": 1.0, "names_in_article": 1.0}
    assert lacks("When did Merz speak in Paris?", full, ARTICLE) is None
