"""Paragraph and sentence spans are exact, whatever the text."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.types import Document
from rag.chunk import (
    chunk_document,
    estimate_tokens,
    is_layout_noise,
    split_paragraphs,
    split_sentences,
)

# Text built from pieces that stress offsets: curly quotes, em dashes, CRLF, lone CR,
# Unicode line/paragraph separators, combining marks, astral-plane characters.
PIECES = st.sampled_from(
    [
        "The chancellor spoke.",
        " ",
        "  ",
        "\n",
        "\r\n",
        "\r",
        "\n\n",
        "\r\n\r\n",
        "\u2028",
        "\u2029",
        "“Quoted,” he said.",
        "It — the plan — failed!",
        "Mr. Smith",
        "e.g.",
        "?",
        "8 hours ago",
        "-",
        "8",
        "café",
        "e\u0301",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "🇺🇦",
        "\t",
        "...",
        "Nato.",
        "he added that they could",
        "‘single’",
        "\u00a0",
        "x" * 40,
    ]
)
TEXTS = st.one_of(
    st.lists(PIECES, max_size=40).map("".join),
    st.text(max_size=300),
)


def _check_spans(text: str, spans, lo: int, hi: int) -> None:
    previous_end = lo
    for span in spans:
        assert lo <= span.start < span.end <= hi
        assert span.start >= previous_end
        piece = text[span.start : span.end]
        assert piece == piece.strip(), "spans never begin or end with whitespace"
        previous_end = span.end


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(TEXTS)
def test_paragraph_spans_are_exact_ordered_and_cover_all_text(text: str) -> None:
    spans = split_paragraphs(text)
    _check_spans(text, spans, 0, len(text))
    covered = "".join(text[s.start : s.end] for s in spans)
    assert "".join(covered.split()) == "".join(text.split()), "no visible text is lost"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(TEXTS)
def test_sentence_spans_are_exact_and_cover_the_paragraph(text: str) -> None:
    for para in split_paragraphs(text):
        sentences = split_sentences(text, para.start, para.end)
        _check_spans(text, sentences, para.start, para.end)
        inside = "".join(text[s.start : s.end] for s in sentences)
        assert "".join(inside.split()) == "".join(text[para.start : para.end].split())


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(TEXTS, st.integers(min_value=6, max_value=60))
def test_chunks_are_exact_and_fit_the_window(text: str, window: int) -> None:
    doc = Document(id="doc", text=text)
    chunks = chunk_document(doc, max_tokens=window, count_tokens=estimate_tokens)
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.sentences
        _check_spans(text, chunk.sentences, chunk.start, chunk.end)
        assert chunk.sentences[0].start == chunk.start and chunk.sentences[-1].end == chunk.end
        # Only a single word may exceed the window; anything longer has been split.
        if len(chunk.text.split()) > 1:
            assert estimate_tokens(chunk.text) <= window
    numbers = [c.paragraph for c in chunks]
    assert numbers == sorted(numbers)
    assert len({c.id for c in chunks}) == len(chunks)


def test_layout_noise_is_skipped_but_bio_line_is_kept() -> None:
    text = (
        "Europe’s Security Guarantees\r\n-\r\n8 hours ago\r\n8\r\n\r\n"
        "First paragraph. It has two sentences.\r\n\r\n"
        "Jane Doe is a senior fellow at Some Institute.\r\n"
    )
    chunks = chunk_document(Document(id="d", text=text))
    assert [c.text for c in chunks] == [
        "Europe’s Security Guarantees",
        "First paragraph. It has two sentences.",
        "Jane Doe is a senior fellow at Some Institute.",
    ]
    assert [c.paragraph for c in chunks] == [1, 2, 3]
    assert all(is_layout_noise(s) for s in ["-", "8", "8 hours ago", "  —  ", "***"])
    assert not any(is_layout_noise(s) for s in ["By Jane Doe", "Nato", "8 hours of talks"])


def test_hard_wrapped_paragraph_stays_one_paragraph_with_its_sentences() -> None:
    text = "A wrapped paragraph that goes on\nacross lines. Mr. Smith agreed\nwith it.\n\nNext."
    chunks = chunk_document(Document(id="d", text=text))
    assert [c.text for c in chunks] == [text[: text.index("\n\n")], "Next."]
    first = chunks[0]
    assert [text[s.start : s.end] for s in first.sentences] == [
        "A wrapped paragraph that goes on\nacross lines.",
        "Mr. Smith agreed\nwith it.",
    ]


def test_long_paragraph_is_split_at_sentence_boundaries_with_the_real_tokenizer(
    encoder,
) -> None:
    sentence = "The coalition discussed security guarantees for Ukraine in great detail. "
    text = (sentence * 40).strip()
    chunks = chunk_document(
        Document(id="long", text=text),
        max_tokens=encoder.max_tokens,
        count_tokens=encoder.count_tokens,
    )
    assert len(chunks) > 1
    assert {c.paragraph for c in chunks} == {1}
    assert [c.part for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert encoder.count_tokens(chunk.text) <= encoder.max_tokens
        assert chunk.text.endswith(".")  # cut between sentences, not inside one
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")
