"""Generational, checksummed persistence: round trips, mismatches, corruption, crashes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import IndexCorrupt, IndexMismatch, IndexNotFound
from core.types import Chunk, Document, DocumentMeta, Span
from index import persist
from index.persist import (
    Expectation,
    IndexSnapshot,
    load_snapshot,
    read_manifest,
    save_snapshot,
)
from index.store import FaissIndex, chunk_key

DIM = 8
MODEL = "test-model"
CHUNKER = "chunker-1"
EXPECT = Expectation(model=MODEL, dimension=DIM, chunker_version=CHUNKER)

TEXTS = {
    # CRLF line ends, curly quotes, emoji, no trailing newline.
    "crlf": "First \u201cquoted\u201d line. Still first! \U0001f389\r\n\r\n"
    "Second para \u2014 with \u2018curly\u2019 quotes.\r\nSame para",
    # Lone CR, U+2028/U+2029, NEL, ZWJ emoji, tab, trailing newline.
    "mixed": "Old mac.\rSame para.\u2028Sep line\u2029end. \x85NEL.\n\n"
    "Family \U0001f469\u200d\U0001f469\u200d\U0001f467 here.\tTab? Yes.\n",
    "plain": "One paragraph only",
}

PARAGRAPH_BREAK = re.compile(r"(?:\r\n|\r|\n)[ \t]*(?:\r\n|\r|\n)")
SENTENCE = re.compile(r"[^.!?]+[.!?]*")


def chunk_document(doc: Document) -> list[Chunk]:
    """A toy chunker: paragraphs split on blank lines, sentences on . ! ? (real slicing)."""
    chunks = []
    starts = [0] + [m.end() for m in PARAGRAPH_BREAK.finditer(doc.text)]
    ends = [m.start() for m in PARAGRAPH_BREAK.finditer(doc.text)] + [len(doc.text)]
    for number, (start, end) in enumerate(zip(starts, ends, strict=True), 1):
        text = doc.text[start:end]
        if not text:
            continue
        spans = tuple(Span(start + m.start(), start + m.end()) for m in SENTENCE.finditer(text))
        cid = hashlib.sha256(f"{doc.id}\0{start}\0{text}".encode()).hexdigest()
        chunks.append(Chunk(cid, doc.id, number, 0, start, end, text, spans))
    return chunks


def build(texts: dict[str, str], seed: int = 0) -> dict[str, Any]:
    """Keyword arguments for save_snapshot, from article texts."""
    rng = np.random.default_rng(seed)
    documents = [
        Document(doc_id, text, DocumentMeta(title=f"\u201c{doc_id}\u201d", author="Zo\u00eb"))
        for doc_id, text in texts.items()
    ]
    chunks = [c for d in documents for c in chunk_document(d)]
    index = FaissIndex(DIM)
    index.add(
        np.array([chunk_key(c.id) for c in chunks], dtype=np.int64),
        rng.standard_normal((len(chunks), DIM)).astype(np.float32),
    )
    n_sentences = sum(len(c.sentences) for c in chunks)
    return {
        "model": MODEL,
        "dimension": DIM,
        "chunker_version": CHUNKER,
        "index": index,
        "chunks": chunks,
        "documents": documents,
        "sentence_vectors": rng.standard_normal((n_sentences, DIM)).astype(np.float32),
        "extra": {"query_prefix": "query: "},
    }


def assert_same(snapshot: IndexSnapshot, parts: dict[str, Any]) -> None:
    assert snapshot.documents == tuple(parts["documents"])
    assert snapshot.chunks == tuple(parts["chunks"])
    for doc, orig in zip(snapshot.documents, parts["documents"], strict=True):
        assert doc.text.encode("utf-8") == orig.text.encode("utf-8")
    np.testing.assert_array_equal(snapshot.sentence_vectors, parts["sentence_vectors"])
    assert snapshot.index.ids().tolist() == parts["index"].ids().tolist()
    queries = np.random.default_rng(1).standard_normal((4, DIM)).astype(np.float32)
    for got, want in zip(
        snapshot.index.search(queries, 5), parts["index"].search(queries, 5), strict=True
    ):
        np.testing.assert_array_equal(got, want)


def gen_dir(index_dir: Path, generation: int) -> Path:
    return index_dir / f"gen-{generation:06d}"


def generations(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.iterdir() if p.is_dir())


def write_manifest(directory: Path, data: bytes) -> None:
    """Replace manifest.json and its checksum file (a consistent forgery)."""
    (directory / "manifest.json").write_bytes(data)
    (directory / "manifest.sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")


def rewrite(directory: Path, name: str, data: bytes) -> None:
    """Replace a data file and fix its checksum in the manifest (a consistent forgery)."""
    (directory / name).write_bytes(data)
    manifest = json.loads((directory / "manifest.json").read_text("utf-8"))
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    write_manifest(directory, json.dumps(manifest).encode("utf-8"))


def edit_manifest(directory: Path, **changes: Any) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text("utf-8"))
    manifest.update(changes)
    write_manifest(directory, json.dumps(manifest).encode("utf-8"))


def snapshot_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# --------------------------------------------------------------------------- round trip


def test_round_trip(tmp_path: Path) -> None:
    parts = build(TEXTS)
    manifest = save_snapshot(tmp_path, **parts)
    assert (tmp_path / "CURRENT").read_text().strip() == "gen-000001"
    assert manifest.generation == 1
    assert manifest.faiss_version == faiss.__version__
    assert manifest.counts == {
        "documents": 3,
        "chunks": len(parts["chunks"]),
        "vectors": len(parts["chunks"]),
        "sentences": len(parts["sentence_vectors"]),
    }
    assert set(manifest.files) == {
        "vectors.faiss",
        "chunks.jsonl",
        "documents.jsonl",
        "sentences.npy",
    }
    assert manifest.extra == {"query_prefix": "query: "}

    snapshot = load_snapshot(tmp_path, EXPECT)
    assert snapshot.manifest == manifest == read_manifest(tmp_path)
    assert_same(snapshot, parts)
    assert not snapshot.sentence_vectors.flags.writeable

    raw = (gen_dir(tmp_path, 1) / "manifest.json").read_text("utf-8")
    keys = list(json.loads(raw))
    assert keys == sorted(keys)
    # One record per line, even with U+2028, CR and NEL inside the text.
    lines = (gen_dir(tmp_path, 1) / "documents.jsonl").read_bytes().split(b"\n")
    assert len(lines) == 4 and lines[-1] == b""


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(st.text(min_size=0, max_size=80), min_size=1, max_size=3))
def test_round_trip_any_unicode(texts: list[str]) -> None:
    parts = build({f"doc{i}": t for i, t in enumerate(texts)})
    with tempfile.TemporaryDirectory() as tmp:
        save_snapshot(Path(tmp), **parts)
        assert_same(load_snapshot(Path(tmp), EXPECT), parts)


def test_empty_corpus_round_trip(tmp_path: Path) -> None:
    parts = build({})
    save_snapshot(tmp_path, **parts)
    snapshot = load_snapshot(tmp_path)
    assert snapshot.chunks == snapshot.documents == ()
    assert snapshot.sentence_vectors.shape == (0, DIM)


def test_save_refuses_inconsistent_parts(tmp_path: Path) -> None:
    parts = build(TEXTS)
    bad_chunk = parts["chunks"][0]
    bad = [Chunk(**{**bad_chunk.__dict__, "text": bad_chunk.text + "x"}), *parts["chunks"][1:]]
    cases: list[dict[str, Any]] = [
        {"chunks": bad},
        {"chunks": parts["chunks"][1:]},
        {"sentence_vectors": parts["sentence_vectors"][1:]},
        {"dimension": DIM + 1},
        {"sentence_vectors": np.full_like(parts["sentence_vectors"], np.nan)},
    ]
    for change in cases:
        with pytest.raises(ValueError):
            save_snapshot(tmp_path / "idx", **{**parts, **change})
    assert not (tmp_path / "idx").exists() or not list((tmp_path / "idx").iterdir())


# --------------------------------------------------------------------------- settings mismatch


@pytest.mark.parametrize(
    ("expect", "names"),
    [
        (Expectation("other-model", DIM, CHUNKER), ["model", "test-model", "other-model"]),
        (Expectation(MODEL, DIM * 2, CHUNKER), ["dimension", "16"]),
        (Expectation(MODEL, DIM, "chunker-2"), ["chunker version", "chunker-2"]),
    ],
)
def test_mismatch_refused(tmp_path: Path, expect: Expectation, names: list[str]) -> None:
    save_snapshot(tmp_path, **build(TEXTS))
    with pytest.raises(IndexMismatch) as info:
        load_snapshot(tmp_path, expect)
    message = str(info.value)
    assert "rag index --rebuild" in message
    for name in names:
        assert name in message


def test_faiss_version_mismatch(tmp_path: Path) -> None:
    save_snapshot(tmp_path, **build(TEXTS))
    edit_manifest(gen_dir(tmp_path, 1), faiss_version="0.0.1")
    with pytest.raises(IndexMismatch, match="rag index --rebuild") as info:
        load_snapshot(tmp_path, EXPECT)
    assert "0.0.1" in str(info.value) and faiss.__version__ in str(info.value)
    with pytest.raises(IndexMismatch):
        persist.check_manifest(read_manifest(tmp_path), EXPECT)


def test_mismatch_checked_before_big_files(tmp_path: Path) -> None:
    save_snapshot(tmp_path, **build(TEXTS))
    (gen_dir(tmp_path, 1) / "vectors.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexMismatch):
        load_snapshot(tmp_path, Expectation("other", DIM, CHUNKER))


def test_unknown_format_version_is_a_mismatch(tmp_path: Path) -> None:
    save_snapshot(tmp_path, **build(TEXTS))
    edit_manifest(gen_dir(tmp_path, 1), format_version=2)
    with pytest.raises(IndexMismatch, match="rag index --rebuild"):
        load_snapshot(tmp_path)


# --------------------------------------------------------------------------- missing / corrupt


def test_missing_index(tmp_path: Path) -> None:
    for directory in (tmp_path, tmp_path / "nope"):
        with pytest.raises(IndexNotFound, match="rag index"):
            load_snapshot(directory)
        with pytest.raises(IndexNotFound):
            read_manifest(directory)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncate": truncate,
    "flip": flip_bit,
    "delete": Path.unlink,
}
DATA_FILES = ["vectors.faiss", "chunks.jsonl", "documents.jsonl", "sentences.npy"]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", DATA_FILES)
def test_damaged_file_is_corrupt(tmp_path: Path, name: str, damage: str) -> None:
    save_snapshot(tmp_path, **build(TEXTS))
    DAMAGE[damage](gen_dir(tmp_path, 1) / name)
    with pytest.raises(IndexCorrupt, match=re.escape(name)):
        load_snapshot(tmp_path)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", [*DATA_FILES, "manifest.json"])
def test_falls_back_to_previous_generation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, damage: str
) -> None:
    first = build(TEXTS, seed=1)
    save_snapshot(tmp_path, **first)
    save_snapshot(tmp_path, **build({"plain": "Something else."}, seed=2))
    DAMAGE[damage](gen_dir(tmp_path, 2) / name)
    with caplog.at_level(logging.WARNING, logger="index.persist"):
        snapshot = load_snapshot(tmp_path, EXPECT)
    assert snapshot.manifest.generation == 1
    assert_same(snapshot, first)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "falling back" in warnings[0].getMessage()
    assert "gen-000001" in warnings[0].getMessage()


def test_both_generations_corrupt(tmp_path: Path) -> None:
    save_snapshot(tmp_path, **build(TEXTS))
    save_snapshot(tmp_path, **build(TEXTS, seed=3))
    flip_bit(gen_dir(tmp_path, 1) / "chunks.jsonl")
    flip_bit(gen_dir(tmp_path, 2) / "sentences.npy")
    with pytest.raises(IndexCorrupt, match=r"sentences\.npy"):
        load_snapshot(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'"x"', b"\xff\xfe", b'{"format_version": 1}', b""],
)
def test_bad_manifest_is_corrupt(tmp_path: Path, content: bytes) -> None:
    save_snapshot(tmp_path, **build(TEXTS))
    write_manifest(gen_dir(tmp_path, 1), content)  # checksummed: the parser must refuse it
    with pytest.raises(IndexCorrupt, match=r"manifest\.json"):
        load_snapshot(tmp_path)
    with pytest.raises(IndexCorrupt, match=r"manifest\.json"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    "changes",
    [
        {"dimension": "8"},
        {"counts": {"documents": 3, "chunks": 1, "vectors": 1, "sentences": 1}},
        {"documents": {"crlf": "0" * 64}},
        {"generation": 5},
        {"files": {}},
        {"extra": {"a": 1}},
        {"model": None},
    ],
)
def test_manifest_fields_validated(tmp_path: Path, changes: dict[str, Any]) -> None:
    save_snapshot(tmp_path, **build(TEXTS))
    edit_manifest(gen_dir(tmp_path, 1), **changes)
    with pytest.raises(IndexCorrupt):
        load_snapshot(tmp_path)


def test_inconsistent_but_checksummed_files_are_corrupt(tmp_path: Path) -> None:
    parts = build(TEXTS)
    save_snapshot(tmp_path, **parts)
    directory = gen_dir(tmp_path, 1)
    original = snapshot_files(directory)
    chunks = parts["chunks"]
    first = chunks[0]
    forged_chunk = Chunk(**{**first.__dict__, "text": first.text.upper()})
    forgeries = {
        "chunks.jsonl": [
            persist.chunks_to_bytes([forged_chunk, *chunks[1:]]),  # text != doc slice
            persist.chunks_to_bytes(chunks[1:]),  # vector count != chunk count
            original["chunks.jsonl"] + b"\n",  # blank line
        ],
        "sentences.npy": [persist.array_to_bytes(parts["sentence_vectors"][:-1])],
        "documents.jsonl": [persist.documents_to_bytes(parts["documents"][1:])],
    }
    for name, variants in forgeries.items():
        for data in variants:
            rewrite(directory, name, data)
            with pytest.raises(IndexCorrupt):
                load_snapshot(tmp_path)
            for fname, content in original.items():
                (directory / fname).write_bytes(content)
    load_snapshot(tmp_path)


def test_vectors_of_other_chunks_are_corrupt(tmp_path: Path) -> None:
    parts = build(TEXTS)
    save_snapshot(tmp_path, **parts)
    other = FaissIndex(DIM)
    n = len(parts["chunks"])
    other.add(np.arange(n, dtype=np.int64), np.ones((n, DIM), dtype=np.float32))
    rewrite(gen_dir(tmp_path, 1), "vectors.faiss", other.to_bytes())
    with pytest.raises(IndexCorrupt):
        load_snapshot(tmp_path)


def test_every_manifest_bit_flip_is_corrupt_and_falls_back(tmp_path: Path) -> None:
    """A flipped bit anywhere in manifest.json (or its checksum file) reads as corruption, not
    as an index built with other settings, so the previous generation is served."""
    first = build(TEXTS, seed=1)
    save_snapshot(tmp_path, **first)
    save_snapshot(tmp_path, **build({"plain": "Something else."}, seed=2))
    directory = gen_dir(tmp_path, 2)
    for name in ("manifest.json", "manifest.sha256"):
        path = directory / name
        original = path.read_bytes()
        for position in range(len(original)):  # every byte, each of the 8 bits in turn
            damaged = bytearray(original)
            damaged[position] ^= 1 << (position % 8)
            path.write_bytes(bytes(damaged))
            if position % 16 == 0:
                with pytest.raises(IndexCorrupt, match="manifest"):
                    read_manifest(tmp_path)
            snapshot = load_snapshot(tmp_path, EXPECT)
            assert snapshot.manifest.generation == 1, (name, position)
        for length in (0, 1, len(original) // 2, len(original) - 1):
            path.write_bytes(original[:length])
            assert load_snapshot(tmp_path, EXPECT).manifest.generation == 1, (name, length)
        path.write_bytes(original)
    assert_same(load_snapshot(tmp_path, EXPECT), build({"plain": "Something else."}, seed=2))


def test_generation_without_manifest_checksum_still_loads(tmp_path: Path) -> None:
    """Indexes written before manifest.sha256 existed load as before."""
    parts = build(TEXTS)
    save_snapshot(tmp_path, **parts)
    (gen_dir(tmp_path, 1) / "manifest.sha256").unlink()
    assert_same(load_snapshot(tmp_path, EXPECT), parts)


def test_bad_current_is_corrupt(tmp_path: Path) -> None:
    save_snapshot(tmp_path, **build(TEXTS))
    (tmp_path / "CURRENT").write_text("../../etc")
    with pytest.raises(IndexCorrupt, match="CURRENT"):
        load_snapshot(tmp_path)


# --------------------------------------------------------------------------- crashes, pruning


def count_fsyncs(tmp_path: Path) -> int:
    calls = 0
    real = os.fsync

    def counting(fd: int) -> None:
        nonlocal calls
        calls += 1
        real(fd)

    save_snapshot(tmp_path, **build(TEXTS))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", counting)
        save_snapshot(tmp_path, **build(TEXTS))
    return calls


def test_crash_at_every_fsync_keeps_an_intact_generation(tmp_path: Path) -> None:
    n_fsyncs = count_fsyncs(tmp_path / "probe")
    assert n_fsyncs >= 8
    old, new = build(TEXTS, seed=1), build({"plain": "New text."}, seed=2)
    for crash_at in range(1, n_fsyncs + 1):
        index_dir = tmp_path / f"crash{crash_at}"
        save_snapshot(index_dir, **old)
        before = snapshot_files(gen_dir(index_dir, 1))
        calls = 0

        def failing(
            fd: int, crash_at: int = crash_at, real: Callable[[int], None] = os.fsync
        ) -> None:
            nonlocal calls
            calls += 1
            if calls == crash_at:
                raise OSError("simulated crash")
            real(fd)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "fsync", failing)
            with pytest.raises(OSError, match="simulated crash"):
                save_snapshot(index_dir, **new)
        snapshot = load_snapshot(index_dir, EXPECT)
        assert_same(snapshot, new if snapshot.manifest.generation == 2 else old)
        assert snapshot_files(gen_dir(index_dir, 1)) == before
        # The next save succeeds and leaves exactly the live and the previous generation.
        manifest = save_snapshot(index_dir, **new)
        assert manifest.generation >= 2
        assert len([g for g in generations(index_dir) if ".tmp-" not in g]) == 2
        assert not any(".tmp-" in g for g in generations(index_dir))


def test_crash_before_current_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = build(TEXTS, seed=1)
    save_snapshot(tmp_path, **old)
    before = snapshot_files(gen_dir(tmp_path, 1))

    def broken_replace(*args: object, **kwargs: object) -> None:
        raise OSError("simulated crash in os.replace")

    with monkeypatch.context() as mp:
        mp.setattr(os, "replace", broken_replace)
        with pytest.raises(OSError, match="simulated"):
            save_snapshot(tmp_path, **build({"plain": "New."}, seed=2))
    assert (tmp_path / "CURRENT").read_text().strip() == "gen-000001"
    assert_same(load_snapshot(tmp_path, EXPECT), old)
    assert snapshot_files(gen_dir(tmp_path, 1)) == before

    # The orphaned gen-000002 is skipped (numbers stay monotonic) and pruned.
    manifest = save_snapshot(tmp_path, **build({"plain": "Newer."}, seed=3))
    assert manifest.generation == 3
    assert generations(tmp_path) == ["gen-000001", "gen-000003"]


def test_crash_leaving_partial_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = build(TEXTS, seed=1)
    save_snapshot(tmp_path, **old)
    stray = tmp_path / "gen-000002.tmp-deadbeef"
    stray.mkdir()
    (stray / "vectors.faiss").write_bytes(b"half")
    assert_same(load_snapshot(tmp_path), old)

    def broken_rename(*args: object, **kwargs: object) -> None:
        raise OSError("simulated crash in os.rename")

    with monkeypatch.context() as mp:
        mp.setattr(os, "rename", broken_rename)
        with pytest.raises(OSError):
            save_snapshot(tmp_path, **build({"plain": "New."}))
    assert_same(load_snapshot(tmp_path), old)
    save_snapshot(tmp_path, **build({"plain": "New."}))
    assert generations(tmp_path) == ["gen-000001", "gen-000002"]


def test_bad_current_is_overwritten_without_losing_the_newest(tmp_path: Path) -> None:
    save_snapshot(tmp_path, **build(TEXTS, seed=1))
    save_snapshot(tmp_path, **build(TEXTS, seed=2))
    (tmp_path / "CURRENT").write_text("garbage")
    manifest = save_snapshot(tmp_path, **build(TEXTS, seed=3))
    assert manifest.generation == 3
    assert generations(tmp_path) == ["gen-000002", "gen-000003"]


def test_pruning_keeps_two_generations(tmp_path: Path) -> None:
    for n in range(1, 5):
        manifest = save_snapshot(tmp_path, **build({"plain": f"Version {n}."}, seed=n))
        assert manifest.generation == n
    assert generations(tmp_path) == ["gen-000003", "gen-000004"]
    assert (tmp_path / "CURRENT").read_text().strip() == "gen-000004"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CURRENT", "gen-000003", "gen-000004"]
    assert load_snapshot(tmp_path).documents[0].text == "Version 4."


def test_failed_current_switch_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while writing CURRENT: the previous generation stays live, and neither the
    new generation nor a partial CURRENT.tmp is left taking space."""
    first = build(TEXTS, seed=1)
    save_snapshot(tmp_path, **first)
    real = persist._write_durable

    def no_space_for_current(path: Path, data: bytes) -> None:
        if path.name == "CURRENT.tmp":
            path.write_bytes(data[:2])
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(persist, "_write_durable", no_space_for_current)
    with pytest.raises(OSError, match="No space"):
        save_snapshot(tmp_path, **build({"plain": "New text."}, seed=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CURRENT", "gen-000001"]
    assert_same(load_snapshot(tmp_path, EXPECT), first)
