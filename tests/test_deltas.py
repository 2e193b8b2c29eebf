"""The embedded default's write path (issue 17): a document write appends one delta whose
size is the article's, whatever the corpus; loading base + deltas gives exactly the index a
whole rebuild gives; another process catches up by reading only the deltas it has not seen;
the deltas merge into a whole generation of the same number; a damaged delta ends the chain
without losing later writes; and an interrupted write is finished or undone on start, so the
data folder and the index agree (rag/journal.py). Fake encoder: the logic, not the model."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEncoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.types import Document
from index import persist
from index.persist import (
    DELTAS,
    IndexSnapshot,
    live_generation,
    load_snapshot,
    writer_lock,
)
from index.store import chunk_key
from rag.build import build_index, expectation
from rag.journal import PENDING, Pending, previous_files, write_pending
from rag.load import load_data_dir, make_document, replace_article
from rag.settings import Settings
from rag.storage import FileStorage

ENCODER = FakeEncoder()
WORDS = [
    "harbour",
    "ferry",
    "council",
    "budget",
    "school",
    "rail",
    "minister",
    "troops",
    "ceasefire",
    "treaty",
]


def article(doc_id: str, seed: int, paragraphs: int = 3) -> Document:
    rng = random.Random(seed)
    text = "\n\n".join(
        " ".join(
            f"The {rng.choice(WORDS)} {rng.choice(WORDS)} said {rng.choice(WORDS)} {i}-{j}."
            for j in range(rng.randint(1, 4))
        )
        for i in range(paragraphs)
    )
    return make_document(doc_id, text)


def storage_at(root: Path, documents: list[Document]) -> FileStorage:
    settings = Settings(data_dir=root / "data", index_dir=root / "index")
    (root / "data").mkdir(parents=True, exist_ok=True)
    for doc in documents:
        replace_article(root / "data", doc, doc.id)
    store = FileStorage(settings)
    store.build(None, ENCODER)
    return store


def same_index(a: IndexSnapshot, b: IndexSnapshot) -> None:
    """Two versions hold the same documents, chunks (in order) and vectors."""
    assert [d.id for d in a.documents] == [d.id for d in b.documents]
    assert [d.text for d in a.documents] == [d.text for d in b.documents]
    assert a.chunks == b.chunks
    np.testing.assert_array_equal(a.sentence_vectors, b.sentence_vectors)
    keys = np.array([chunk_key(c.id) for c in a.chunks], dtype=np.int64)
    assert sorted(a.index.ids().tolist()) == sorted(b.index.ids().tolist())
    np.testing.assert_array_equal(a.index.vectors(keys), b.index.vectors(keys))
    assert a.manifest.documents == b.manifest.documents
    assert a.manifest.counts == b.manifest.counts


def delta_files(index_dir: Path) -> list[Path]:
    """The live generation's delta files."""
    live = (index_dir / persist.CURRENT).read_text().strip()
    return sorted((index_dir / live).glob(f"{DELTAS}/delta-*"))


def test_a_write_appends_one_delta_the_size_of_its_article(tmp_path: Path) -> None:
    # Both corpora are big enough that one delta is not due for a merge (a quarter).
    small = storage_at(tmp_path / "small", [article(f"d{i}", i) for i in range(12)])
    large = storage_at(tmp_path / "large", [article(f"d{i}", i) for i in range(200)])
    probe = article("probe", 999)
    sizes = []
    for store in (small, large):
        index_dir = store.settings.index_dir
        bases = sorted(p.name for p in index_dir.glob("gen-*"))
        written = store.upsert(probe, ENCODER)
        assert sorted(p.name for p in index_dir.glob("gen-*")) == bases  # no new generation
        [delta] = delta_files(index_dir)
        sizes.append(delta.stat().st_size)
        assert written.version.generation == live_generation(index_dir) == 2
        assert written.created
    assert sizes[0] == sizes[1]  # the same article costs the same, whatever the corpus


def test_base_plus_deltas_equals_a_rebuild(tmp_path: Path) -> None:
    docs = [article(f"d{i}", i) for i in range(8)]
    store = storage_at(tmp_path / "a", docs)
    rng = random.Random(7)
    for step in range(25):
        live = [d.id for d in load_data_dir(store.settings.data_dir)]
        if rng.random() < 0.25 and len(live) > 2:
            store.remove(rng.choice(live), ENCODER)
        else:
            doc_id = rng.choice([*live, f"new{step}"])
            store.upsert(article(doc_id, 1000 + step), ENCODER)
    store.wait_for_merge()
    index_dir = store.settings.index_dir
    with writer_lock(index_dir, exclusive=False):
        incremental = load_snapshot(index_dir, expectation(ENCODER))
    # The data folder holds exactly what the index holds.
    on_disk = {d.id: d.text for d in load_data_dir(store.settings.data_dir)}
    assert on_disk == {d.id: d.text for d in incremental.documents}
    # A whole rebuild from those documents, in the same order, is the same index.
    rebuilt = FileStorage(
        Settings(data_dir=tmp_path / "b" / "data", index_dir=tmp_path / "b" / "ix")
    )
    rebuilt.build(list(incremental.documents), ENCODER)
    same_index(incremental, load_snapshot(tmp_path / "b" / "ix", expectation(ENCODER)))


def test_another_process_reads_only_the_new_deltas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = storage_at(tmp_path, [article(f"d{i}", i) for i in range(30)])  # no merge due
    reader = FileStorage(writer.settings)
    first = reader.load(ENCODER)
    writer.upsert(article("d1", 50), ENCODER)
    writer.remove("d2", ENCODER)

    def no_whole_load(*args: object, **kwargs: object) -> IndexSnapshot:
        raise AssertionError("the reader loaded the whole index again")

    monkeypatch.setattr("rag.storage.load_snapshot", no_whole_load)
    monkeypatch.setattr(persist, "load_snapshot", no_whole_load)
    caught_up = reader.load(ENCODER)
    monkeypatch.undo()
    assert caught_up.generation == first.generation + 2
    same_index(caught_up.snapshot, load_snapshot(writer.settings.index_dir, expectation(ENCODER)))


def test_merge_keeps_the_number_and_the_content(tmp_path: Path) -> None:
    store = storage_at(tmp_path, [article(f"d{i}", i) for i in range(2)])
    index_dir = store.settings.index_dir
    for i in range(6):
        store.upsert(article(f"w{i}", 100 + i), ENCODER)
    store.wait_for_merge()
    # Deltas of this size pass a quarter of so small a base: merged in the background.
    assert (index_dir / persist.CURRENT).read_text().strip() != "gen-000001"
    before = load_snapshot(index_dir, expectation(ENCODER))
    generation = live_generation(index_dir)
    had_deltas = bool(delta_files(index_dir))
    assert store.merge(ENCODER, force=True) == had_deltas
    live = (index_dir / persist.CURRENT).read_text().strip()
    assert live == f"gen-{generation:06d}"  # a whole generation under the live number
    assert live_generation(index_dir) == generation
    assert not list((index_dir / live).glob(f"{DELTAS}/*"))
    same_index(before, load_snapshot(index_dir, expectation(ENCODER)))
    store.upsert(article("after", 7), ENCODER)  # writes go on, as deltas of the merged base
    assert live_generation(index_dir) == generation + 1


def test_a_damaged_delta_ends_the_chain_and_the_next_write_saves_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = storage_at(tmp_path, [article(f"d{i}", i) for i in range(20)])
    index_dir = store.settings.index_dir
    store.upsert(article("a", 1), ENCODER)
    store.upsert(article("b", 2), ENCODER)
    damaged = delta_files(index_dir)[-1]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))
    fresh = FileStorage(store.settings)
    served = fresh.load(ENCODER).snapshot
    assert "unusable" in caplog.text
    assert {"a"} <= {d.id for d in served.documents} and "b" not in {d.id for d in served.documents}
    written = fresh.upsert(article("c", 3), ENCODER)
    ids = {d.id for d in written.version.snapshot.documents}
    assert {"a", "c"} <= ids
    reloaded = load_snapshot(index_dir, expectation(ENCODER))
    same_index(reloaded, written.version.snapshot)


@pytest.mark.parametrize("stage", ["noted", "article_written", "index_committed"])
def test_an_interrupted_write_is_finished_or_undone_on_start(tmp_path: Path, stage: str) -> None:
    """A crash after each step of a write (rag/journal.py), recreated on disk: the next start
    leaves the data folder and the index in agreement, with the write either whole (it
    reached the index) or absent (it did not)."""
    store = storage_at(tmp_path, [article(f"d{i}", i) for i in range(4)])
    settings = store.settings
    index_dir, data_dir = settings.index_dir, settings.data_dir
    old = next(d for d in load_data_dir(data_dir) if d.id == "d1")
    new = article("d1", 4242)
    generation = persist.next_generation(index_dir)
    write_pending(index_dir, Pending(generation, "d1", previous_files(data_dir, "d1")))
    if stage != "noted":
        replace_article(data_dir, new, "d1")
    if stage == "index_committed":
        snapshot = load_snapshot(index_dir, expectation(ENCODER))
        from rag.build import make_delta

        persist.append_delta(index_dir, make_delta("d1", new, ENCODER, generation))
        del snapshot
    (index_dir / "gen-000009.tmp-dead").mkdir()  # a whole-generation write cut short
    restarted = FileStorage(settings).load(ENCODER).snapshot
    expected = new if stage == "index_committed" else old
    assert {d.id: d.text for d in restarted.documents}["d1"] == expected.text
    assert {d.id: d.text for d in load_data_dir(data_dir)} == {
        d.id: d.text for d in restarted.documents
    }
    assert not (index_dir / PENDING).exists()
    assert not persist.find_strays(index_dir)


def test_a_failed_index_write_puts_the_article_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = storage_at(tmp_path, [article(f"d{i}", i) for i in range(3)])
    data_dir = store.settings.data_dir
    before = {p.name: p.read_bytes() for p in data_dir.iterdir()}

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("rag.storage.append_delta", full_disk)
    with pytest.raises(OSError, match="No space"):
        store.upsert(article("d0", 77), ENCODER)
    with pytest.raises(OSError, match="No space"):
        store.remove("d1", ENCODER)
    assert {p.name: p.read_bytes() for p in data_dir.iterdir()} == before
    assert not (store.settings.index_dir / PENDING).exists()
    assert live_generation(store.settings.index_dir) == 1


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["put", "delete"]), st.integers(0, 5), st.integers(0, 50)),
        min_size=1,
        max_size=12,
    )
)
def test_any_sequence_of_writes_reads_back_as_written(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, int]]
) -> None:
    root = tmp_path_factory.mktemp("ops")
    store = storage_at(root, [article("d0", 0)])
    expected = {"d0": article("d0", 0).text}
    for op, n, seed in ops:
        doc_id = f"d{n}"
        if op == "put":
            store.upsert(article(doc_id, seed, paragraphs=1 + seed % 3), ENCODER)
            expected[doc_id] = article(doc_id, seed, paragraphs=1 + seed % 3).text
        elif doc_id in expected:
            store.remove(doc_id, ENCODER)
            del expected[doc_id]
    store.wait_for_merge()
    loaded = load_snapshot(store.settings.index_dir, expectation(ENCODER))
    assert {d.id: d.text for d in loaded.documents} == expected
    assert {d.id: d.text for d in load_data_dir(store.settings.data_dir)} == expected
    for chunk in loaded.chunks:
        doc = next(d for d in loaded.documents if d.id == chunk.doc_id)
        assert doc.text[chunk.start : chunk.end] == chunk.text
    build_index(store.settings, ENCODER)  # `rag index` afterwards changes nothing
    assert {d.id: d.text for d in load_snapshot(store.settings.index_dir).documents} == expected
