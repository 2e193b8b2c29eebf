"""Incremental follow in the Postgres backend (index/pg.py ``load_newer``, rag/pgstore.py):
a replica that has a version loads only the documents written since, and what it gets is
exactly what a full load gives, after adds, replacements, removals, several writers'
batches and a rebuild; against a real PostgreSQL (the session's ``pg_server``), with the
fake encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fakes import FakeEncoder, articles, fake_settings
from pydantic import SecretStr

from index import pg
from index.persist import IndexSnapshot
from rag.load import make_document
from rag.pgstore import PostgresStorage
from rag.storage import open_storage


def storage_for(root: Path, url: str) -> PostgresStorage:
    store = open_storage(fake_settings(root, database_url=SecretStr(url)))
    assert isinstance(store, PostgresStorage)
    return store


def full_load(url: str, encoder: FakeEncoder) -> IndexSnapshot:
    from rag.build import expectation

    with pg.connect(url) as conn:
        return pg.load_snapshot(conn, expectation(encoder))


def assert_same(a: IndexSnapshot, b: IndexSnapshot) -> None:
    assert a.documents == b.documents  # same texts, metadata, corpus order
    assert a.chunks == b.chunks  # same ids, spans, sentence spans, order
    assert np.array_equal(a.sentence_vectors, b.sentence_vectors)
    ids = b.index.ids()
    assert sorted(a.index.ids().tolist()) == sorted(ids.tolist())
    assert np.array_equal(a.index.vectors(ids), b.index.vectors(ids))
    assert a.manifest.generation == b.manifest.generation
    assert a.manifest.counts == b.manifest.counts
    assert a.manifest.documents == b.manifest.documents


def doc(doc_id: str, text: str):  # type: ignore[no-untyped-def]
    return make_document(doc_id, text)


@pytest.fixture
def url(pg_server) -> str:  # type: ignore[no-untyped-def]
    return str(pg_server.create_database("follow"))


def test_a_replica_reads_only_what_changed_and_gets_what_a_full_load_gets(
    tmp_path: Path, url: str
) -> None:
    encoder = FakeEncoder()
    writer, replica = storage_for(tmp_path / "w", url), storage_for(tmp_path / "r", url)
    writer.build(articles(), encoder)
    first = replica.load(encoder)
    assert replica.last_load is not None and replica.last_load.how == "full"
    assert replica.last_load.documents_read == len(articles())

    # Nothing written since: the same version, nothing read.
    assert replica.load(encoder).snapshot is first.snapshot
    assert replica.last_load.how == "unchanged"

    steps = [
        (
            "add",
            lambda: writer.upsert(doc("ferry", "The ferry to the island runs at dawn."), encoder),
            1,
        ),
        (
            "replace",
            lambda: writer.upsert(
                doc("rail-budget", "The rail budget was cut.\n\nThe minister resigned."), encoder
            ),
            1,
        ),
        ("remove", lambda: writer.remove("school-meals", encoder), 0),
        (
            "two writes",
            lambda: (
                writer.upsert(doc("ferry", "The ferry now sails twice a day."), encoder),
                writer.upsert(doc("court", "The court ruled on the harbour."), encoder),
            ),
            2,
        ),
        ("rebuild", lambda: writer.build(articles(), encoder, rebuild=True), 3),
    ]
    for name, write, read in steps:
        write()
        version = replica.load(encoder)
        assert replica.last_load.how == "incremental", name
        assert replica.last_load.documents_read == read, name
        assert_same(version.snapshot, full_load(url, encoder))
        # And the replica's result answers searches as a fresh load's would.
        query = encoder.encode(["ferry harbour rail budget"], kind="query")
        got = version.snapshot.index.search(query, 5)
        want = full_load(url, encoder).index.search(query, 5)
        assert np.array_equal(got[1], want[1]), name


def test_the_writing_replica_patches_its_own_version(tmp_path: Path, url: str) -> None:
    encoder = FakeEncoder()
    writer = storage_for(tmp_path, url)
    writer.build(articles(), encoder)
    writer.load(encoder)
    written = writer.upsert(doc("ferry", "The ferry to the island runs at dawn."), encoder)
    assert writer.last_load is not None and writer.last_load.how == "incremental"
    assert writer.last_load.documents_read == 1
    assert_same(written.version.snapshot, full_load(url, encoder))
    removed = writer.remove("ferry", encoder)
    assert writer.last_load.documents_read == 0
    assert_same(removed.version.snapshot, full_load(url, encoder))


def test_a_database_behind_the_replica_is_loaded_whole(pg_server, tmp_path: Path) -> None:
    """A version from a database that is now behind it (restored from a backup, or another
    database at the same URL) is not patched: everything is read again."""
    encoder = FakeEncoder()
    ahead, behind = pg_server.create_database("ahead"), pg_server.create_database("behind")
    storage_for(tmp_path / "a", ahead).build(articles(), encoder)
    storage_for(tmp_path / "a", ahead).upsert(doc("ferry", "The ferry runs."), encoder)
    storage_for(tmp_path / "b", behind).build(articles()[:1], encoder)
    replica = storage_for(tmp_path / "r", ahead)
    replica.load(encoder)
    replica._url = behind  # the same replica, now pointed at the older database
    version = replica.load(encoder)
    assert replica.last_load is not None and replica.last_load.how == "full"
    assert_same(version.snapshot, full_load(behind, encoder))
