"""The Postgres backend of :class:`rag.storage.Storage` (``RAG_DATABASE_URL``).

The database (:mod:`index.pg`) is the source of truth: documents are embedded here, in the
process that writes them, and stored with their chunks and vectors in one transaction. Each
replica loads the whole stored index into the same in-memory FAISS and BM25 structures the
embedded default builds (:class:`rag.retrieve.Corpus`), so both backends give the same
answers, and follows other replicas' writes through ``LISTEN``/``NOTIFY`` and the generation
counter.

The data folder is only an import source here: ``rag index`` stores its articles (adding and
replacing, never removing what other machines stored), and ``PUT``/``DELETE /documents``
change the database alone.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Any

from core.errors import StoreUnavailable
from core.types import Document
from index import pg
from rag.build import BuildReport, Embedded, Plan, embed_documents, expectation
from rag.embed import Encoder
from rag.load import load_data_dir
from rag.settings import Settings
from rag.storage import Version, Written

log = logging.getLogger(__name__)

#: Seconds to wait for a connection before calling the database unreachable.
CONNECT_TIMEOUT = 3.0


def document_rows(documents: Sequence[Document], embedded: Embedded) -> Iterator[pg.DocumentRows]:
    """Split what :func:`rag.build.embed_documents` made of ``documents`` by document."""
    by_doc: dict[str, list[int]] = {}
    for i, chunk in enumerate(embedded.chunks):
        by_doc.setdefault(chunk.doc_id, []).append(i)
    sentence_start = []
    row = 0
    for chunk in embedded.chunks:
        sentence_start.append(row)
        row += len(chunk.sentences)
    for doc in documents:
        positions = by_doc.get(doc.id, [])
        chunks = tuple(embedded.chunks[i] for i in positions)
        sentence_rows = [
            r
            for i in positions
            for r in range(sentence_start[i], sentence_start[i] + len(embedded.chunks[i].sentences))
        ]
        yield pg.DocumentRows(
            document=doc,
            chunks=chunks,
            chunk_vectors=embedded.chunk_vectors[positions],
            sentence_vectors=embedded.sentence_vectors[sentence_rows],
        )


class PostgresStorage:
    """:class:`rag.storage.Storage` in PostgreSQL. Loads and writes use a connection of
    their own each; the change feed (the generation and ``LISTEN``) keeps one open, and
    makes it anew after the database comes back."""

    announces_changes = True

    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self._url = url
        self._feed: Any = None  # psycopg.Connection while listening
        self._feed_lock = threading.Lock()

    def describe(self) -> str:
        return pg.describe(self._url)

    def _connect(self) -> Any:
        return pg.connect(self._url, timeout=CONNECT_TIMEOUT)

    # ------------------------------------------------------------------ following changes

    def _feed_connection(self) -> Any:
        if self._feed is None or self._feed.closed:
            conn = self._connect()
            try:
                pg.listen(conn)
            except BaseException:
                conn.close()
                raise
            self._feed = conn
        return self._feed

    def _drop_feed(self) -> None:
        if self._feed is not None:
            # A broken connection may fail to close; it is gone anyway.
            with contextlib.suppress(Exception):
                self._feed.close()
            self._feed = None

    def live_generation(self) -> int | None:
        with self._feed_lock:
            try:
                return pg.live_generation(self._feed_connection())
            except StoreUnavailable:
                self._drop_feed()
                raise

    def wait_for_change(self, timeout: float) -> None:
        with self._feed_lock:
            try:
                pg.wait_for_notify(self._feed_connection(), timeout)
            except StoreUnavailable:
                self._drop_feed()
                raise

    def close(self) -> None:
        with self._feed_lock:
            self._drop_feed()

    # ------------------------------------------------------------------ reading

    def load(self, encoder: Encoder) -> Version:
        with closing(self._connect()) as conn:
            snapshot = pg.load_snapshot(
                conn, expectation(encoder), index_type=self.settings.index_type
            )
        return Version(snapshot, snapshot.manifest.generation)

    # ------------------------------------------------------------------ writing

    def build(
        self,
        documents: Sequence[Document] | None,
        encoder: Encoder,
        *,
        rebuild: bool = False,
        progress: bool = False,
    ) -> BuildReport:
        """Store ``documents`` (default: the data folder's), embedding only new or changed
        ones; documents stored before and not given are kept (other machines may have
        stored them). One transaction: all of it, or nothing."""
        docs = list(documents) if documents is not None else load_data_dir(self.settings.data_dir)
        expect = expectation(encoder)
        with closing(self._connect()) as conn:
            stored: dict[str, str] = {}
            if not rebuild:
                pg.check_expectation(conn, expect)  # before the (slow) embedding
                stored = pg.document_hashes(conn)
            changed = [d for d in docs if stored.get(d.id) != d.sha256]
            embedded = embed_documents(changed, encoder, progress)
            result = pg.write(
                conn, expect, upserts=document_rows(changed, embedded), rebuild=rebuild
            )
            manifest = pg.read_manifest(conn)
        written = set(result.written)
        log.info("database index: generation %s, %s", manifest.generation, manifest.counts)
        return BuildReport(
            plan=Plan(
                added=tuple(d.id for d in changed if d.id in written and d.id not in stored),
                updated=tuple(d.id for d in changed if d.id in written and d.id in stored),
                removed=(),
                unchanged=tuple(d.id for d in docs if d.id not in written),
            ),
            chunks_embedded=len(embedded.chunks),
            sentences_embedded=int(embedded.sentence_vectors.shape[0]),
            manifest=manifest,
        )

    def upsert(self, document: Document, encoder: Encoder) -> Written:
        expect = expectation(encoder)
        with closing(self._connect()) as conn:
            stored = pg.document_hashes(conn)
            if stored.get(document.id) == document.sha256:  # the same text: nothing to do
                created = False
            else:
                pg.check_expectation(conn, expect)
                # Embedded before the transaction: it holds the writers' lock only to store.
                embedded = embed_documents([document], encoder, progress=False)
                result = pg.write(conn, expect, upserts=document_rows([document], embedded))
                created = bool(result.created)
            snapshot = pg.load_snapshot(conn, expect, index_type=self.settings.index_type)
        return Written(Version(snapshot, snapshot.manifest.generation), created)

    def remove(self, doc_id: str, encoder: Encoder) -> Written:
        expect = expectation(encoder)
        with closing(self._connect()) as conn:
            pg.write(conn, expect, removes=[doc_id])  # DocumentNotFound if it is absent
            snapshot = pg.load_snapshot(conn, expect, index_type=self.settings.index_type)
        return Written(Version(snapshot, snapshot.manifest.generation), False)
