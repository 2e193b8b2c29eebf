"""Input fuzzing (hypothesis) of the loader, the chunker and the sentence spans on arbitrary
Unicode, beyond tests/test_chunk.py: articles of any text or any bytes load exactly or fail
with a DocumentError (nothing else); any string is either a slug id or refused, so no id ever
names a path; and with the real model's tokenizer every chunk and sentence span is exact."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import DocumentError, InvalidDocumentId, RagError
from core.types import Document, DocumentMeta
from rag.chunk import chunk_document
from rag.load import load_document, make_document, validate_doc_id, write_article

SLUG = re.compile(r"[A-Za-z0-9_-]{1,128}")
#: Characters that stress offsets and line handling, mixed into arbitrary text.
AWKWARD = st.sampled_from(
    [
        "\r\n",
        "\r",
        "\n\n",
        "\u2028",
        "\u2029",
        "\x85",
        "\ufeff",
        "e\u0301",
        "🇺🇦",
        "𝔘",
        ". ",
        "---\n",
    ]
)
TEXT = st.lists(st.one_of(st.text(max_size=40), AWKWARD), max_size=30).map("".join)
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(text=TEXT, title=st.text(max_size=30), suffix=st.sampled_from([".txt", ".md"]))
def test_any_text_loads_back_exactly_or_is_refused(
    tmp_path_factory: pytest.TempPathFactory, text: str, title: str, suffix: str
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    try:
        doc = make_document("doc", text, DocumentMeta(title=title))
    except DocumentError:
        assert not text.strip() or "\x00" in text or not _utf8(text)
        return
    write_article(folder, doc)
    path = folder / "doc.txt"
    if suffix == ".md":
        path = path.rename(folder / "doc.md")
    try:
        loaded = load_document(path)
    except DocumentError:
        # Only a Markdown body that itself opens with a front-matter block may be refused.
        assert suffix == ".md" and text.startswith("---")
        return
    if suffix == ".txt" or not text.startswith("---"):
        assert loaded.text == text  # byte for byte: no newline, BOM or whitespace changes
    assert loaded.meta.title == title.strip()
    assert loaded.id == "doc"


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes_load_or_fail_with_a_document_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    folder = tmp_path_factory.mktemp("bytes")
    (folder / "doc.txt").write_bytes(data)
    try:
        doc = load_document(folder / "doc.txt")
    except RagError as exc:
        assert isinstance(exc, DocumentError)
        return
    assert doc.text == data.decode("utf-8")


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=140), st.from_regex(r"[A-Za-z0-9_./\\%-]{1,20}")))
def test_any_string_is_a_slug_id_or_refused(candidate: str) -> None:
    try:
        accepted = validate_doc_id(candidate)
    except InvalidDocumentId:
        assert not SLUG.fullmatch(candidate)
        return
    assert SLUG.fullmatch(accepted) and accepted == candidate
    assert Path(accepted).name == accepted and ".." not in accepted


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=TEXT.filter(lambda t: bool(t.strip()) and "\x00" not in t and _utf8(t)))
def test_chunk_and_sentence_spans_exact_with_the_real_tokenizer(encoder, text: str) -> None:
    doc = Document(id="doc", text=text)
    chunks = chunk_document(doc, max_tokens=encoder.max_tokens, count_tokens=encoder.count_tokens)
    previous_end = 0
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert previous_end <= chunk.start <= chunk.end <= len(text)
        previous_end = chunk.end
        for sentence in chunk.sentences:
            assert chunk.start <= sentence.start < sentence.end <= chunk.end
            assert text[sentence.start : sentence.end].strip()
