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
import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from core.errors import IndexNotFound, StoreUnavailable
from core.types import Document
from index import pg
from index.persist import IndexSnapshot
from rag.build import BuildReport, Embedded, Plan, embed_documents, expectation
from rag.embed import Encoder
from rag.load import load_data_dir
from rag.settings import Settings
from rag.storage import Version, Written

log = logging.getLogger(__name__)

#: Seconds to wait for a connection before calling the database unreachable.
CONNECT_TIMEOUT = 3.0
#: Documents a shard embeds and stores per transaction (:meth:`PostgresStorage.build_shard`).
SHARD_BATCH = 64


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (1-based) of ``count``: the documents whose id hashes to it
    (:func:`shard_of`), so n machines given the same archive embed disjoint parts of it."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: i must be between 1 and n")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"`` (``1 <= i <= n``); ValueError with the reason otherwise."""
        head, sep, tail = text.strip().partition("/")
        if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
            raise ValueError(f"--shard takes i/n (e.g. 1/2: the first of two parts), got {text!r}")
        index, count = int(head), int(tail)
        if count < 1 or not 1 <= index <= count:
            raise ValueError(
                f"--shard {text}: i must be between 1 and n (shards are numbered 1/{max(count, 1)}"
                f" to {max(count, 1)}/{max(count, 1)})"
            )
        return cls(index, count)

    def holds(self, doc_id: str) -> bool:
        return shard_of(doc_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(doc_id: str, count: int) -> int:
    """The shard (1 to ``count``) a document belongs to: a stable hash of its id (the first
    8 bytes of its sha256), the same on every machine, in every process and version."""
    digest = hashlib.sha256(doc_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


@dataclass(frozen=True)
class ShardReport:
    """What :meth:`PostgresStorage.build_shard` did: the usual report for the shard's own
    documents, and how many of the archive's documents belong to other shards."""

    shard: Shard
    report: BuildReport
    outside: int
    transactions: int


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
        # The last version loaded or written here: the next load reads only what changed
        # since (pg.load_newer), and how it went is kept for the benchmarks and tests.
        self._base: IndexSnapshot | None = None
        self._base_lock = threading.Lock()
        self.last_load: pg.Loaded | None = None

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
            return self._load(conn, encoder)

    def _load(self, conn: Any, encoder: Encoder) -> Version:
        """The live version: only the documents written since the last version this object
        loaded are read (all of them the first time), the rest is patched from it."""
        expect, index_type = expectation(encoder), self.settings.index_type
        with self._base_lock:
            base = self._base
        if base is None or base.manifest.model != encoder.name:
            snapshot = pg.load_snapshot(conn, expect, index_type=index_type)
            loaded = pg.Loaded(snapshot, "full", len(snapshot.documents))
        else:
            loaded = pg.load_newer(conn, base, expect, index_type=index_type)
            snapshot = loaded.snapshot
        with self._base_lock:
            if self._base is None or snapshot.manifest.generation >= self._base.manifest.generation:
                self._base = snapshot
            self.last_load = loaded
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

    def build_shard(
        self,
        shard: Shard,
        encoder: Encoder,
        documents: Sequence[Document] | None = None,
        *,
        batch: int = SHARD_BATCH,
        progress: bool = False,
    ) -> ShardReport:
        """Store this shard's part of ``documents`` (default: the data folder's articles),
        embedding only new or changed ones, ``batch`` documents per transaction.

        Shards running at the same time on other machines are serialised per transaction by
        the writers' advisory lock, and each transaction touches only its own documents:
        nothing outside this shard is ever replaced or removed (nor is anything removed
        inside it: like :meth:`build`, a shard only adds and replaces). A shard that stops
        half-way keeps the batches it committed; running it again embeds only the rest, and
        once it is complete, running it again changes nothing (not even the generation).
        """
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        docs = list(documents) if documents is not None else load_data_dir(self.settings.data_dir)
        mine = [d for d in docs if shard.holds(d.id)]
        expect = expectation(encoder)
        added: list[str] = []
        updated: list[str] = []
        chunks = sentences = transactions = 0
        with closing(self._connect()) as conn:
            pg.check_expectation(conn, expect)  # before the (slow) embedding
            stored = pg.document_hashes(conn)
            changed = [d for d in mine if stored.get(d.id) != d.sha256]
            for start in range(0, len(changed), batch):
                part = changed[start : start + batch]
                embedded = embed_documents(part, encoder, progress)
                result = pg.write(conn, expect, upserts=document_rows(part, embedded))
                transactions += 1
                chunks += len(embedded.chunks)
                sentences += int(embedded.sentence_vectors.shape[0])
                added.extend(d for d in result.written if d not in stored)
                updated.extend(d for d in result.written if d in stored)
                if progress:
                    log.info("shard %s: stored %s of %s", shard, start + len(part), len(changed))
            try:
                manifest = pg.read_manifest(conn)
            except IndexNotFound:
                raise IndexNotFound(
                    f"shard {shard} holds none of the {len(docs)} documents, and the database "
                    "holds no index yet"
                ) from None
        written = set(added) | set(updated)
        report = BuildReport(
            plan=Plan(
                added=tuple(added),
                updated=tuple(updated),
                removed=(),
                unchanged=tuple(d.id for d in mine if d.id not in written),
            ),
            chunks_embedded=chunks,
            sentences_embedded=sentences,
            manifest=manifest,
        )
        return ShardReport(shard, report, outside=len(docs) - len(mine), transactions=transactions)

    def upsert(self, document: Document, encoder: Encoder) -> Written:
        expect = expectation(encoder)
        with closing(self._connect()) as conn:
            # One row, not every document's hash: a write stays O(article).
            if pg.document_hash(conn, document.id) == document.sha256:  # the same text
                created = False
            else:
                pg.check_expectation(conn, expect)
                # Embedded before the transaction: it holds the writers' lock only to store.
                embedded = embed_documents([document], encoder, progress=False)
                result = pg.write(conn, expect, upserts=document_rows([document], embedded))
                created = bool(result.created)
            version = self._load(conn, encoder)
        return Written(version, created)

    def remove(self, doc_id: str, encoder: Encoder) -> Written:
        expect = expectation(encoder)
        with closing(self._connect()) as conn:
            pg.write(conn, expect, removes=[doc_id])  # DocumentNotFound if it is absent
            version = self._load(conn, encoder)
        return Written(version, False)
