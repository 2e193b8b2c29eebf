"""The coverage experiment's feature code (eval/coverage.py, docs/coverage-experiment.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.coverage import Coverage, content_words, features_of

SEED = Path(__file__).resolve().parent.parent / "data" / "sasse-coalition-of-the-willing.txt"


def test_content_words_drop_question_framing_and_stop_words() -> None:
    assert content_words("What does the writer think of the truce?") == ["truce"]
    assert content_words("Did Merz's plan say when troops would go?") == ["merz", "plan", "troops"]


def test_features_from_word_cosines() -> None:
    assert features_of([]) == {"coverage_min": 1.0, "coverage_low2": 1.0, "coverage_below": 0.0}
    f = features_of([0.9, 0.3, 0.45])
    assert f["coverage_min"] == pytest.approx(0.3)
    assert f["coverage_low2"] == pytest.approx(0.375)
    assert f["coverage_below"] == 2.0


def test_seed_article_covers_a_paraphrase_better_than_an_absent_topic(encoder) -> None:
    if not SEED.is_file():
        pytest.skip("the seed article is not in data/")
    coverage = Coverage(encoder)
    text = SEED.read_text(encoding="utf-8")
    truce = coverage.features("truce", text)["coverage_min"]
    books = coverage.features("books", text)["coverage_min"]
    ceasefire = coverage.features("ceasefire", text)["coverage_min"]
    assert ceasefire == pytest.approx(1.0, abs=1e-3)  # the article's own word
    assert truce > books + 0.05
    assert coverage.features("Where is the truce?", text)["coverage_below"] == 0.0
    assert coverage.features("Which books?", text)["coverage_below"] == 1.0
