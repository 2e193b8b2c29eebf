"""The Postgres backend (index/pg.py, rag/pgstore.py) against a real PostgreSQL with pgvector
(the session's ``pg_server``), with the fake encoder of tests/fakes.py: the stored index is
the one the file backend stores, writes are transactions, changes are announced, and the
embedded default never imports psycopg."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
from fakes import FakeEncoder, articles, fake_settings
from pydantic import SecretStr

from core.errors import DocumentNotFound, IndexMismatch, StoreUnavailable
from core.types import Document
from index import pg
from rag.build import embed_documents, expectation
from rag.pgstore import PostgresStorage, document_rows
from rag.settings import Settings
from rag.storage import FileStorage, open_storage

REPO = Path(__file__).resolve().parent.parent
FERRY = Document("ferry-news", "The ferry to the island runs twice a day.\n\nIt is always late.")


@pytest.fixture
def url(pg_server) -> str:  # type: ignore[no-untyped-def]
    return str(pg_server.create_database("store"))


def pg_settings(root: Path, url: str) -> Settings:
    return fake_settings(root, database_url=SecretStr(url))


@pytest.fixture
def storage(tmp_path: Path, url: str) -> PostgresStorage:
    store = open_storage(pg_settings(tmp_path, url))
    assert isinstance(store, PostgresStorage)
    yield store
    store.close()


def state_of(url: str) -> tuple[int | None, dict[str, str], int, int]:
    """What the database holds: generation, documents' hashes, chunk and sentence rows."""
    with pg.connect(url) as conn:
        counts = [
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in ("rag_chunks", "rag_sentences")
        ]
        return pg.live_generation(conn), pg.document_hashes(conn), counts[0], counts[1]


def test_the_database_holds_the_index_the_files_hold(tmp_path: Path, storage) -> None:
    encoder = FakeEncoder()
    files = FileStorage(fake_settings(tmp_path / "files"))
    files.build(articles(), encoder)
    report = storage.build(articles(), encoder)
    assert report.added == tuple(d.id for d in articles()) and report.manifest.generation == 1

    a, b = files.load(encoder).snapshot, storage.load(encoder).snapshot
    assert b.documents == a.documents  # text byte for byte, metadata, sha256, order
    assert b.chunks == a.chunks  # ids, exact spans, sentence spans, order
    assert np.array_equal(b.sentence_vectors, a.sentence_vectors)
    ids = a.index.ids()
    assert np.array_equal(b.index.ids(), ids)
    assert np.array_equal(b.index.vectors(ids), a.index.vectors(ids))  # float32, bit for bit
    assert b.manifest.counts == a.manifest.counts
    assert (b.manifest.model, b.manifest.dimension) == (encoder.name, encoder.dim)


def test_indexing_again_changes_nothing_and_writes_are_per_document(storage, url) -> None:
    encoder = FakeEncoder()
    storage.build(articles(), encoder)
    before = state_of(url)
    again = storage.build(articles(), encoder)
    assert again.chunks_embedded == 0 and again.added == again.updated == ()
    assert state_of(url) == before  # not even the generation moves

    written = storage.upsert(FERRY, encoder)
    assert written.created and written.version.generation == 2
    assert FERRY.id in {d.id for d in written.version.snapshot.documents}
    same = storage.upsert(FERRY, encoder)  # the same text: nothing to store
    assert not same.created and same.version.generation == 2
    changed = dataclasses.replace(FERRY, text=FERRY.text + " Tickets cost more now.", sha256="")
    replaced = storage.upsert(changed, encoder)
    assert not replaced.created and replaced.version.generation == 3
    texts = {d.id: d.text for d in replaced.version.snapshot.documents}
    assert texts[FERRY.id] == changed.text
    # A document's generation is that of its own last write: the others' rows were untouched.
    with pg.connect(url) as conn:
        gens = dict(conn.execute("SELECT doc_id, generation FROM rag_documents").fetchall())
    assert gens == {**{d.id: 1 for d in articles()}, FERRY.id: 3}

    removed = storage.remove(FERRY.id, encoder)
    assert removed.version.generation == 4
    assert state_of(url)[1] == before[1]
    with pytest.raises(DocumentNotFound):
        storage.remove(FERRY.id, encoder)
    assert storage.live_generation() == 4


def test_a_mismatched_model_is_refused_until_rebuilt(tmp_path: Path, storage, url) -> None:
    storage.build(articles(), FakeEncoder())
    other = FakeEncoder(dim=128, name="fake-other")
    with pytest.raises(IndexMismatch) as refused:
        storage.load(other)
    message = str(refused.value)
    assert "fake-bow" in message and "dimension" in message and "--rebuild" in message
    with pytest.raises(IndexMismatch):
        storage.upsert(FERRY, other)
    with pytest.raises(IndexMismatch):
        storage.build(articles(), other)  # never silently replaced
    report = storage.build(articles(), other, rebuild=True)
    assert report.manifest.generation == 2  # the generation goes on: replicas reload
    assert storage.load(other).snapshot.manifest.dimension == 128


def rows_of(documents: list[Document]) -> list[pg.DocumentRows]:
    return list(document_rows(documents, embed_documents(documents, FakeEncoder(), False)))


def test_a_connection_lost_mid_transaction_leaves_nothing_written(storage, url) -> None:
    encoder = FakeEncoder()
    storage.build(articles(), encoder)
    before = state_of(url)
    second = Document("second-new", "Another new article.\n\nWith a second paragraph.")
    rows = rows_of([FERRY, second])
    conn = pg.connect(url)
    pid = conn.info.backend_pid

    def upserts():  # type: ignore[no-untyped-def]
        yield rows[0]  # stored inside the open transaction...
        with psycopg.connect(url, autocommit=True) as killer:  # ...then the backend dies
            killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        yield rows[1]

    with pytest.raises(StoreUnavailable):
        pg.write(conn, expectation(encoder), upserts=upserts())
    conn.close()
    assert state_of(url) == before  # no document, chunk, sentence or generation of it


def test_a_write_the_database_refuses_is_rolled_back_whole(storage, url) -> None:
    encoder = FakeEncoder()
    storage.build(articles(), encoder)
    before = state_of(url)
    first, second = rows_of([FERRY, Document("clash", "A clashing article.\n\nTwo parts.")])
    # The second document reuses a chunk id of the first: the database's unique constraint
    # refuses it after the first document's rows were inserted in the same transaction.
    clash = dataclasses.replace(second.chunks[0], id=first.chunks[0].id)
    second = dataclasses.replace(second, chunks=(clash, *second.chunks[1:]))
    with pg.connect(url) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        pg.write(conn, expectation(encoder), upserts=[first, second])
    assert state_of(url) == before
    # Rows that are inconsistent are refused before anything is sent.
    bad = dataclasses.replace(first, chunk_vectors=first.chunk_vectors * np.nan)
    with pg.connect(url) as conn, pytest.raises(ValueError, match="non-finite"):
        pg.write(conn, expectation(encoder), upserts=[bad])
    assert state_of(url) == before


def test_a_write_is_announced_at_once(storage, url) -> None:
    encoder = FakeEncoder()
    storage.build(articles(), encoder)
    assert storage.live_generation() == 1  # subscribes the change feed
    other = PostgresStorage(storage.settings, url)  # another replica
    timer = threading.Timer(0.3, lambda: other.upsert(FERRY, encoder))
    started = time.perf_counter()
    timer.start()
    storage.wait_for_change(5.0)
    waited = time.perf_counter() - started
    timer.join()
    other.close()
    assert waited < 2.0, f"woke after {waited:.2f} s"  # the NOTIFY, not the 5 s timeout
    assert storage.live_generation() == 2


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    secret_url = "postgresql://reader:s3cret-pw@127.0.0.1:9/articles?connect_timeout=1"
    store = open_storage(pg_settings(tmp_path, secret_url))
    with pytest.raises(StoreUnavailable) as lost:
        store.live_generation()
    assert "s3cret" not in str(lost.value) and "'articles'" in str(lost.value)
    assert "s3cret" not in store.describe() and "s3cret" not in repr(store.settings)
    with pytest.raises(StoreUnavailable) as bad:
        pg.connect("postgresql://reader:s3cret-pw@host:notaport/db")
    assert "s3cret" not in str(bad.value)


def test_the_embedded_default_never_imports_psycopg() -> None:
    code = (
        "import sys; from rag.settings import Settings; from rag.storage import open_storage;"
        " import api.app, cli.main; from rag.engine import Engine;"
        " s = open_storage(Settings(_env_file=None)); Engine(Settings(_env_file=None)).storage;"
        " print(type(s).__name__, 'psycopg' in sys.modules, 'index.pg' in sys.modules)"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["FileStorage", "False", "False"]
