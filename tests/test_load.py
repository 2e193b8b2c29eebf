"""The loader keeps article text byte for byte and refuses bad input with a clear error."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import DocumentError, InvalidDocumentId
from rag.load import load_data_dir, load_document, validate_doc_id


def test_text_file_with_sidecar_is_kept_byte_for_byte(tmp_path: Path) -> None:
    raw = "Title\r\n\r\n“Curly” quotes — and a CRLF body\r\nno trailing newline".encode()
    (tmp_path / "op-ed_1.txt").write_bytes(raw)
    (tmp_path / "op-ed_1.json").write_text(
        json.dumps({"title": "Title", "author": "Jane Doe", "publisher": "Somewhere"}), "utf-8"
    )
    doc = load_document(tmp_path / "op-ed_1.txt")
    assert doc.id == "op-ed_1"
    assert doc.text.encode("utf-8") == raw
    assert doc.sha256 == hashlib.sha256(raw).hexdigest()
    assert (doc.meta.author, doc.meta.publisher, doc.meta.url) == ("Jane Doe", "Somewhere", "")


def test_markdown_front_matter_gives_metadata_and_the_body_as_text(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_text(
        "---\nid: my-note\nauthor: A. Writer\npublished: 2026-01-07\n---\n# Head\n\nBody.\n"
    )
    doc = load_document(path)
    assert doc.id == "my-note"
    assert doc.meta.author == "A. Writer"
    assert doc.meta.published == "2026-01-07"
    assert doc.text == "# Head\n\nBody.\n"


@pytest.mark.parametrize(
    "bad", ["../x", "/etc/passwd", "%2e%2e", "a\x00b", "", "a b", "é", "x" * 129]
)
def test_invalid_document_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidDocumentId):
        validate_doc_id(bad)


@given(st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True))
def test_slug_ids_are_accepted(doc_id: str) -> None:
    assert validate_doc_id(doc_id) == doc_id


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.txt": b"\xff\xfe not utf-8"}, "not valid UTF-8"),
        ({"a.txt": b"   \n  "}, "text is empty"),
        ({"a.txt": b"text", "a.json": b"{not json"}, "not valid JSON"),
        ({"a.txt": b"text", "a.json": b"[1, 2]"}, "JSON object"),
        ({"a.txt": b"text", "a.json": b'{"auther": "typo"}'}, "unknown metadata field"),
        ({"a.txt": b"text", "a.json": b'{"author": 3}'}, "must be a string"),
        ({"a.txt": b"text", "a.json": b'{"id": "../up"}'}, "invalid document id"),
        ({"a.txt": b"text", "b.md": b"---\nid: a\n---\nother"}, "used by both"),
    ],
)
def test_bad_articles_get_a_specific_error(tmp_path: Path, files: dict, message: str) -> None:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises((DocumentError, InvalidDocumentId), match=message):
        load_data_dir(tmp_path)


def test_missing_article_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="does not exist"):
        load_document(tmp_path / "nope.txt")
    with pytest.raises(DocumentError, match="does not exist"):
        load_data_dir(tmp_path / "nowhere")
