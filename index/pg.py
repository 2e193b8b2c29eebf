"""The index in PostgreSQL with pgvector: one database that any number of replicas share.

It holds the articles, their chunks with exact spans, the sentence spans, the chunk and
sentence vectors, the manifest (model, dimension, chunker version) and a generation counter.
The schema is created by the first write; ``vector(d)`` has the manifest's dimension::

    rag_manifest   one row: format_version, model, dimension, chunker_version, generation,
                   created, updated
    rag_documents  doc_id (key), position (the corpus order), text (byte for byte), meta
                   (jsonb), sha256, generation (of its last write)
    rag_chunks     (doc_id, ord) key, cascading from rag_documents; chunk_id (unique),
                   paragraph, part, start_char, end_char, embedding vector(d)
    rag_sentences  (doc_id, chunk_ord, ord) key, cascading from rag_chunks; start_char,
                   end_char, embedding vector(d), voice (jsonb: whose voice the sentence
                   is, rag/attribution.py; schema version 2)

A chunk's text is not stored: it is ``text[start_char:end_char]`` of its document.

Every change is one transaction (:func:`write`): it takes a transaction-scoped advisory lock,
so writers on every machine are serialised; it changes only the rows of the documents it names
(O(article), whatever the corpus's size); it bumps ``rag_manifest.generation`` and sends
``NOTIFY rag_index``, or it changes nothing at all. :func:`load_snapshot` reads one whole
version in one repeatable-read transaction and returns the same
:class:`~index.persist.IndexSnapshot` that the file backend loads, so both backends build the
same in-memory search structures.

Like the rest of ``index/``, nothing here reads settings: the URL, the expected model and the
vector structure are parameters. The URL's password is never put into a message
(:func:`describe`). Connections are in autocommit mode; transactions are explicit.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import faiss
import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper, Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import Format
from psycopg.types import TypeInfo
from psycopg.types.json import Jsonb

from core.errors import (
    DocumentNotFound,
    IndexCorrupt,
    IndexMismatch,
    IndexNotFound,
    StoreUnavailable,
)
from core.types import Chunk, Document, DocumentMeta, Span, Voice, sha256_text
from index.persist import (
    FORMAT_VERSION,
    Expectation,
    IndexSnapshot,
    Manifest,
    consistency_problem,
    setting_differences,
    voice_from_json,
    voice_to_json,
)
from index.store import FaissIndex, IndexType, chunk_key

log = logging.getLogger(__name__)

#: The layout of the tables above; a database of another version is refused (rebuild it).
SCHEMA_VERSION = 2
#: The NOTIFY channel a write announces its new generation on.
CHANNEL = "rag_index"
#: The advisory lock every writer takes for its transaction ("rag_indx" as an int64).
LOCK_KEY = 0x7261675F696E6478
REBUILD_HINT = "rebuild it with `rag index --rebuild` (with RAG_DATABASE_URL set)"
TABLES = ("rag_sentences", "rag_chunks", "rag_documents", "rag_manifest")
#: Rows fetched at a time while loading (memory stays proportional to this, plus the result).
FETCH_ROWS = 5000


# --------------------------------------------------------------------------- connections


def describe(url: str) -> str:
    """The database a URL names, for messages: database, user and host, never the password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "the database (its URL cannot be parsed)"
    host = str(info.get("host") or "localhost")
    port = info.get("port")
    where = f"{host}:{port}" if port and not host.startswith("/") else host
    user = info.get("user")
    name = info.get("dbname") or user or "?"
    return f"database {name!r}" + (f" as {user!r}" if user else "") + f" on {where}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(url: str, *, timeout: float = 5.0) -> psycopg.Connection[Any]:
    """An autocommit connection; StoreUnavailable (with no credentials in it) if it fails."""
    try:
        return psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=max(1, round(timeout)),
            application_name="commentary-rag",
        )
    except psycopg.ProgrammingError:  # a malformed URL: its text could hold the password
        raise StoreUnavailable("cannot connect: the database URL is not valid") from None
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot connect to {describe(url)}: {_first_line(exc)}") from None


@contextmanager
def unavailable_as_error(what: str) -> Iterator[None]:
    """Turn a lost connection (or a database that is shutting down) into StoreUnavailable."""
    try:
        yield
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"{what}: the database is unreachable ({_first_line(exc)})") from exc


# --------------------------------------------------------------------------- vectors


class Vector:
    """A float32 vector to send to a ``vector`` column (in pgvector's binary format)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


class _VectorDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        arr = np.asarray(obj.array if isinstance(obj, Vector) else obj, dtype=">f4")
        return struct.pack(">HH", arr.shape[0], 0) + arr.tobytes()


class _VectorLoader(Loader):
    format = Format.BINARY

    def load(self, data: Any) -> np.ndarray:
        (dim,) = struct.unpack_from(">H", data)
        return np.frombuffer(data, dtype=">f4", count=dim, offset=4)


def _adapt_vectors(conn: psycopg.Connection[Any]) -> None:
    """Register pgvector's binary format on ``conn`` (the extension must exist)."""
    if conn.adapters.types.get("vector") is not None:
        return
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise IndexNotFound("the database has no pgvector extension: build the index first")
    info.register(conn)
    dumper = type("VectorDumper", (_VectorDumper,), {"oid": info.oid})
    conn.adapters.register_dumper(Vector, dumper)
    conn.adapters.register_loader(info.oid, _VectorLoader)


def adapt_vectors(conn: psycopg.Connection[Any]) -> None:
    """Let ``conn`` send :class:`Vector` and read ``vector`` columns as float32 arrays."""
    _adapt_vectors(conn)


def _stack(rows: Sequence[np.ndarray], dim: int) -> np.ndarray:
    if not rows:
        return np.zeros((0, dim), dtype=np.float32)
    return np.ascontiguousarray(np.stack(rows), dtype=np.float32)


# --------------------------------------------------------------------------- the manifest


@dataclass(frozen=True)
class StoredManifest:
    """The manifest row: what the stored vectors were built with, and the live generation."""

    format_version: int
    model: str
    dimension: int
    chunker_version: str
    generation: int
    created: datetime
    updated: datetime


def _table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _manifest_row(conn: psycopg.Connection[Any]) -> StoredManifest | None:
    if not _table_exists(conn, "rag_manifest"):
        return None
    row = conn.execute(
        "SELECT format_version, model, dimension, chunker_version, generation, created, updated"
        " FROM rag_manifest"
    ).fetchone()
    return StoredManifest(*row) if row else None


def check_manifest(stored: StoredManifest, expect: Expectation) -> None:
    """IndexMismatch naming every setting the stored index was built with that differs."""
    if stored.format_version != SCHEMA_VERSION:
        raise IndexMismatch(
            f"the database's index has schema version {stored.format_version}, this version "
            f"reads {SCHEMA_VERSION}; {REBUILD_HINT}"
        )
    diffs = setting_differences(stored.model, stored.dimension, stored.chunker_version, expect)
    if diffs:
        raise IndexMismatch(
            f"the database's index (generation {stored.generation}) does not match the "
            f"current settings ({'; '.join(diffs)}); {REBUILD_HINT}"
        )


def check_expectation(conn: psycopg.Connection[Any], expect: Expectation) -> None:
    """Raise IndexMismatch if the database holds an index built otherwise (none: fine)."""
    with unavailable_as_error("reading the manifest"):
        stored = _manifest_row(conn)
    if stored is not None:
        check_manifest(stored, expect)


def live_generation(conn: psycopg.Connection[Any]) -> int | None:
    """The live generation, or None if the database holds no index yet."""
    with unavailable_as_error("reading the generation"):
        try:
            row = conn.execute("SELECT generation FROM rag_manifest").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return int(row[0]) if row else None


def document_hashes(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """doc id -> sha256 of its text, of every stored document."""
    with unavailable_as_error("reading the documents"):
        if not _table_exists(conn, "rag_documents"):
            return {}
        return {d: s for d, s in conn.execute("SELECT doc_id, sha256 FROM rag_documents")}


def document_hash(conn: psycopg.Connection[Any], doc_id: str) -> str | None:
    """The sha256 of one stored document's text (None: not stored). One index lookup."""
    with unavailable_as_error("reading the documents"):
        if not _table_exists(conn, "rag_documents"):
            return None
        row = conn.execute(
            "SELECT sha256 FROM rag_documents WHERE doc_id = %s", (doc_id,)
        ).fetchone()
    return str(row[0]) if row else None


def read_manifest(conn: psycopg.Connection[Any]) -> Manifest:
    """The stored index described as a file generation's manifest (with its counts)."""
    with unavailable_as_error("reading the manifest"), conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        stored = _manifest_row(conn)
        if stored is None:
            raise IndexNotFound("the database holds no index; build it with `rag index`")
        hashes = {d: s for d, s in conn.execute("SELECT doc_id, sha256 FROM rag_documents")}
        (chunks,) = conn.execute("SELECT count(*) FROM rag_chunks").fetchone() or (0,)
        (sentences,) = conn.execute("SELECT count(*) FROM rag_sentences").fetchone() or (0,)
    counts = {
        "documents": len(hashes),
        "chunks": int(chunks),
        "vectors": int(chunks),
        "sentences": int(sentences),
    }
    return _manifest(stored, hashes, counts, index_type="")


def _manifest(
    stored: StoredManifest, hashes: dict[str, str], counts: dict[str, int], index_type: str
) -> Manifest:
    return Manifest(
        format_version=FORMAT_VERSION,
        generation=stored.generation,
        model=stored.model,
        dimension=stored.dimension,
        chunker_version=stored.chunker_version,
        faiss_version=faiss.__version__,
        documents=hashes,
        counts=counts,
        files={},
        created=stored.updated.astimezone(UTC).isoformat(timespec="seconds"),
        extra={"store": "postgres", "schema_version": str(SCHEMA_VERSION)},
        index_type=index_type,
    )


# --------------------------------------------------------------------------- the schema


def _create_tables(conn: psycopg.Connection[Any], expect: Expectation, generation: int) -> None:
    dim = expect.dimension
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise ValueError(f"dimension must be a positive int, got {dim!r}")
    conn.execute(
        sql.SQL(
            """
        CREATE TABLE rag_manifest (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            format_version integer NOT NULL,
            model text NOT NULL,
            dimension integer NOT NULL,
            chunker_version text NOT NULL,
            generation bigint NOT NULL,
            created timestamptz NOT NULL DEFAULT now(),
            updated timestamptz NOT NULL DEFAULT now()
        );
        CREATE SEQUENCE rag_document_position;
        CREATE TABLE rag_documents (
            doc_id text PRIMARY KEY,
            position bigint NOT NULL UNIQUE,
            text text NOT NULL,
            meta jsonb NOT NULL,
            sha256 text NOT NULL,
            generation bigint NOT NULL
        );
        CREATE TABLE rag_chunks (
            doc_id text NOT NULL REFERENCES rag_documents ON DELETE CASCADE,
            ord integer NOT NULL,
            chunk_id text NOT NULL UNIQUE,
            paragraph integer NOT NULL,
            part integer NOT NULL,
            start_char integer NOT NULL,
            end_char integer NOT NULL,
            embedding vector({dim}) NOT NULL,
            PRIMARY KEY (doc_id, ord)
        );
        CREATE TABLE rag_sentences (
            doc_id text NOT NULL,
            chunk_ord integer NOT NULL,
            ord integer NOT NULL,
            start_char integer NOT NULL,
            end_char integer NOT NULL,
            embedding vector({dim}) NOT NULL,
            voice jsonb,
            PRIMARY KEY (doc_id, chunk_ord, ord),
            FOREIGN KEY (doc_id, chunk_ord) REFERENCES rag_chunks ON DELETE CASCADE
        );
        """
        ).format(dim=sql.Literal(dim))
    )
    conn.execute(
        "INSERT INTO rag_manifest (format_version, model, dimension, chunker_version, generation)"
        " VALUES (%s, %s, %s, %s, %s)",
        (SCHEMA_VERSION, expect.model, dim, expect.chunker_version, generation),
    )


def _prepare(conn: psycopg.Connection[Any], expect: Expectation, rebuild: bool) -> tuple[int, bool]:
    """Within a writer's transaction: the live generation, and whether the tables were
    (re)created. Creates them on the first write, and anew on ``rebuild`` (the generation
    carries on, so replicas see the change); otherwise refuses a mismatched index."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    stored = _manifest_row(conn)
    if stored is not None and not rebuild:
        check_manifest(stored, expect)
        return stored.generation, False
    generation = stored.generation if stored is not None else 0
    conn.execute(
        sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in TABLES)
        )
    )
    conn.execute("DROP SEQUENCE IF EXISTS rag_document_position")
    _create_tables(conn, expect, generation)
    return generation, True


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class DocumentRows:
    """One document with its chunks and vectors, ready to store: ``chunk_vectors`` has a
    row per chunk, ``sentence_vectors`` a row per sentence (chunk order, then sentence
    order)."""

    document: Document
    chunks: tuple[Chunk, ...]
    chunk_vectors: np.ndarray
    sentence_vectors: np.ndarray


@dataclass(frozen=True)
class WriteResult:
    generation: int  # the live generation after the write
    written: tuple[str, ...]  # documents added or replaced
    created: tuple[str, ...]  # of those, the ones that were new
    removed: tuple[str, ...]
    unchanged: tuple[str, ...]  # given, but stored already with the same text


def check_rows(rows: DocumentRows, dimension: int) -> None:
    """ValueError unless the rows are consistent: exact spans, one finite vector per chunk
    and per sentence, of the dimension."""
    doc = rows.document
    n_sent = sum(len(c.sentences) for c in rows.chunks)
    for name, arr, n in (
        ("chunk vectors", rows.chunk_vectors, len(rows.chunks)),
        ("sentence vectors", rows.sentence_vectors, n_sent),
    ):
        if arr.ndim != 2 or arr.shape != (n, dimension):
            raise ValueError(
                f"{doc.id}: {name} have shape {arr.shape}, expected ({n}, {dimension})"
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"{doc.id}: {name} contain non-finite values")
    if doc.sha256 != sha256_text(doc.text):
        raise ValueError(f"{doc.id}: sha256 does not match the text")
    for c in rows.chunks:
        if c.doc_id != doc.id:
            raise ValueError(f"chunk {c.id} belongs to {c.doc_id!r}, not {doc.id!r}")
        if not 0 <= c.start <= c.end <= len(doc.text) or doc.text[c.start : c.end] != c.text:
            raise ValueError(f"chunk {c.id} text differs from {doc.id}[{c.start}:{c.end}]")
        chunk_key(c.id)  # a valid hex id (ValueError otherwise)


def _insert(conn: psycopg.Connection[Any], rows: DocumentRows, generation: int) -> None:
    doc = rows.document
    conn.execute(
        "INSERT INTO rag_documents (doc_id, position, text, meta, sha256, generation)"
        " VALUES (%s, nextval('rag_document_position'), %s, %s, %s, %s)",
        (doc.id, doc.text, Jsonb(asdict(doc.meta)), doc.sha256, generation),
    )
    cur = conn.cursor()
    with cur.copy(
        "COPY rag_chunks (doc_id, ord, chunk_id, paragraph, part, start_char, end_char,"
        " embedding) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["text", "int4", "text", "int4", "int4", "int4", "int4", "vector"])
        for ord_, (c, vec) in enumerate(zip(rows.chunks, rows.chunk_vectors, strict=True)):
            copy.write_row((doc.id, ord_, c.id, c.paragraph, c.part, c.start, c.end, Vector(vec)))
    row = 0
    with cur.copy(
        "COPY rag_sentences (doc_id, chunk_ord, ord, start_char, end_char, embedding, voice)"
        " FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["text", "int4", "int4", "int4", "int4", "vector", "jsonb"])
        for ord_, c in enumerate(rows.chunks):
            for n, s in enumerate(c.sentences):
                vec = rows.sentence_vectors[row]
                voice = Jsonb(voice_to_json(c.voices[n])) if c.voices else None
                copy.write_row((doc.id, ord_, n, s.start, s.end, Vector(vec), voice))
                row += 1


def write(
    conn: psycopg.Connection[Any],
    expect: Expectation,
    *,
    upserts: Iterable[DocumentRows] = (),
    removes: Iterable[str] = (),
    rebuild: bool = False,
) -> WriteResult:
    """Add or replace ``upserts`` and remove ``removes``, in one transaction: all of it is
    committed, with a new generation announced on :data:`CHANNEL`, or none of it.

    A document stored already with the same text is left alone; if nothing changes, neither
    does the generation. ``rebuild`` drops the stored index first (in the same transaction,
    so replicas keep serving the old one until the commit). Raises IndexMismatch if the
    stored index was built with another model or chunker, DocumentNotFound for a removal of
    an absent document, ValueError for inconsistent rows, StoreUnavailable if the database
    is lost (nothing is committed then).
    """
    written: list[str] = []
    created: list[str] = []
    removed: list[str] = []
    unchanged: list[str] = []
    with unavailable_as_error("writing to the database"), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        generation, fresh = _prepare(conn, expect, rebuild)
        _adapt_vectors(conn)
        new = generation + 1
        for rows in upserts:
            check_rows(rows, expect.dimension)
            doc = rows.document
            old = conn.execute(
                "SELECT sha256 FROM rag_documents WHERE doc_id = %s", (doc.id,)
            ).fetchone()
            if old is not None and old[0] == doc.sha256:
                unchanged.append(doc.id)
                continue
            if old is None:
                created.append(doc.id)
            else:
                conn.execute("DELETE FROM rag_documents WHERE doc_id = %s", (doc.id,))
            _insert(conn, rows, new)
            written.append(doc.id)
        for doc_id in removes:
            cur = conn.execute("DELETE FROM rag_documents WHERE doc_id = %s", (doc_id,))
            if cur.rowcount == 0:
                raise DocumentNotFound(f"no document with id {doc_id!r}")
            removed.append(doc_id)
        if fresh or written or removed:
            conn.execute("UPDATE rag_manifest SET generation = %s, updated = now()", (new,))
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(new)))
            generation = new
    return WriteResult(generation, tuple(written), tuple(created), tuple(removed), tuple(unchanged))


# --------------------------------------------------------------------------- reading

_META_FIELDS = tuple(f.name for f in fields(DocumentMeta))


def _meta(value: object) -> DocumentMeta:
    data = value if isinstance(value, dict) else {}
    return DocumentMeta(
        **{k: v for k, v in data.items() if k in _META_FIELDS and isinstance(v, str)}
    )


@dataclass
class _Rows:
    """Documents read from the database, with their chunks and vectors, in corpus order."""

    documents: tuple[Document, ...]
    chunks: list[Chunk]
    chunk_vectors: np.ndarray
    sentence_vectors: np.ndarray


def _read_rows(cur: Any, dim: int, doc_ids: Sequence[str] | None = None) -> _Rows:
    """Every document (``doc_ids`` None) or those named, in position order, with their
    chunks, sentence spans and vectors; IndexCorrupt if sentences do not follow chunks.
    Within the caller's transaction."""
    params = {} if doc_ids is None else {"ids": list(doc_ids)}

    def where(table: str) -> str:
        # On each table's own doc_id: the planner does not carry "= ANY" across the join,
        # and the primary keys' doc_id prefix then reads only these documents' rows.
        return "" if doc_ids is None else f" WHERE {table}.doc_id = ANY(%(ids)s)"

    cur.execute(
        "SELECT d.doc_id, d.text, d.meta, d.sha256 FROM rag_documents d"
        + where("d")
        + " ORDER BY d.position",
        params,
    )
    documents = tuple(
        Document(id=d, text=t, meta=_meta(m), sha256=s) for d, t, m, s in cur.fetchall()
    )
    spans: dict[tuple[str, int], list[Span]] = {}
    voices: dict[tuple[str, int], list[Voice]] = {}
    sentence_rows: list[np.ndarray] = []
    cur.execute(
        "SELECT s.doc_id, s.chunk_ord, s.start_char, s.end_char, s.embedding, s.voice"
        " FROM rag_sentences s JOIN rag_documents d USING (doc_id)"
        + where("s")
        + " ORDER BY d.position, s.chunk_ord, s.ord",
        params,
    )
    sentence_keys: list[tuple[str, int]] = []
    while batch := cur.fetchmany(FETCH_ROWS):
        for doc_id, chunk_ord, start, end, vec, voice in batch:
            key = (doc_id, chunk_ord)
            if key not in spans:
                spans[key] = []
                voices[key] = []
                sentence_keys.append(key)
            spans[key].append(Span(start, end))
            if voice is not None:
                voices[key].append(voice_from_json(voice))
            sentence_rows.append(vec)
    texts = {d.id: d.text for d in documents}
    chunks: list[Chunk] = []
    chunk_keys: list[tuple[str, int]] = []
    chunk_rows: list[np.ndarray] = []
    cur.execute(
        "SELECT c.doc_id, c.ord, c.chunk_id, c.paragraph, c.part, c.start_char, c.end_char,"
        " c.embedding FROM rag_chunks c JOIN rag_documents d USING (doc_id)"
        + where("c")
        + " ORDER BY d.position, c.ord",
        params,
    )
    while batch := cur.fetchmany(FETCH_ROWS):
        for doc_id, ord_, chunk_id, paragraph, part, start, end, vec in batch:
            chunks.append(
                Chunk(
                    id=chunk_id,
                    doc_id=doc_id,
                    paragraph=paragraph,
                    part=part,
                    start=start,
                    end=end,
                    text=texts[doc_id][start:end],
                    sentences=tuple(spans.get((doc_id, ord_), ())),
                    voices=tuple(voices.get((doc_id, ord_), ())),
                )
            )
            chunk_keys.append((doc_id, ord_))
            chunk_rows.append(vec)
    # Sentences read in (document, chunk) order must be the chunks' own, in the same order.
    with_sentences = [k for k, c in zip(chunk_keys, chunks, strict=True) if c.sentences]
    if with_sentences != sentence_keys:
        raise IndexCorrupt("the database's sentences do not follow its chunks")
    return _Rows(documents, chunks, _stack(chunk_rows, dim), _stack(sentence_rows, dim))


class _Counted:
    """Stands for a FAISS index in :func:`consistency_problem` when only rows are checked:
    the right dimension and size, and no ids of its own."""

    def __init__(self, dim: int, n: int) -> None:
        self.dim, self._n = dim, n

    def __len__(self) -> int:
        return self._n

    def ids(self) -> np.ndarray:
        return np.zeros(0, dtype=np.int64)


def _patch_problem(
    dim: int,
    index: FaissIndex,
    chunks: Sequence[Chunk],
    documents: Sequence[Document],
    sentence_vectors: np.ndarray,
) -> str | None:
    """What a patched version must still agree on as a whole (its counts, unique documents,
    every chunk's document present), in O(corpus) steps that are cheap."""
    if len(index) != len(chunks):
        return f"{len(index)} vectors for {len(chunks)} chunks"
    n_sentences = sum(len(c.sentences) for c in chunks)
    if sentence_vectors.shape != (n_sentences, dim):
        return f"{sentence_vectors.shape[0]} sentence vectors for {n_sentences} sentences"
    ids = {d.id for d in documents}
    if len(ids) != len(documents):
        return "duplicate document ids"
    if not ids.issuperset(c.doc_id for c in chunks):
        return "a chunk names an unknown document"
    return None


def _snapshot(
    stored: StoredManifest,
    index: FaissIndex,
    chunks: Sequence[Chunk],
    documents: tuple[Document, ...],
    sentence_vectors: np.ndarray,
    read: _Rows | None = None,
) -> IndexSnapshot:
    """The loaded parts as one snapshot, checked: IndexCorrupt if they disagree. With
    ``read`` (a patch), the rows read for it are checked in full and the whole only by its
    counts: the rest was checked when it was loaded."""
    sentence_vectors.flags.writeable = False
    if read is None:
        problem = consistency_problem(
            dimension=stored.dimension,
            index=index,
            chunks=chunks,
            documents=documents,
            sentence_vectors=sentence_vectors,
        )
        checked = documents
    else:
        problem = _patch_problem(stored.dimension, index, chunks, documents, sentence_vectors)
        if problem is None:
            problem = consistency_problem(
                dimension=stored.dimension,
                index=_Counted(stored.dimension, len(read.chunks)),  # type: ignore[arg-type]
                chunks=read.chunks,
                documents=read.documents,
                sentence_vectors=read.sentence_vectors,
            )
        checked = read.documents
    bad = [d.id for d in checked if d.sha256 != sha256_text(d.text)]
    if problem is None and bad:
        problem = f"documents whose text differs from their sha256: {bad[:5]}"
    if problem is not None:
        raise IndexCorrupt(f"the database's index is inconsistent: {problem}")
    counts = {
        "documents": len(documents),
        "chunks": len(chunks),
        "vectors": len(index),
        "sentences": int(sentence_vectors.shape[0]),
    }
    manifest = _manifest(stored, {d.id: d.sha256 for d in documents}, counts, index.kind)
    return IndexSnapshot(manifest, index, tuple(chunks), documents, sentence_vectors)


def _begin_read(conn: psycopg.Connection[Any], expect: Expectation | None) -> StoredManifest:
    """Within a new transaction: one consistent, read-only view; the manifest, checked."""
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    stored = _manifest_row(conn)
    if stored is None:
        raise IndexNotFound("the database holds no index yet; build it with `rag index`")
    if expect is not None:
        check_manifest(stored, expect)
    _adapt_vectors(conn)
    return stored


def load_snapshot(
    conn: psycopg.Connection[Any],
    expect: Expectation | None = None,
    *,
    index_type: IndexType = "auto",
) -> IndexSnapshot:
    """The whole stored index as one consistent version, its vectors in a new
    :class:`FaissIndex` of ``index_type`` (added in the corpus order, as a fresh file build
    adds them). Raises IndexNotFound (no index yet), IndexMismatch (``expect`` differs;
    checked before the vectors are read), IndexCorrupt (inconsistent rows) or
    StoreUnavailable."""
    with unavailable_as_error("loading the index"), conn.transaction():
        stored = _begin_read(conn, expect)
        rows = _read_rows(conn.cursor(binary=True), stored.dimension)
    return _whole(stored, rows, index_type)


def _whole(stored: StoredManifest, rows: _Rows, index_type: IndexType) -> IndexSnapshot:
    """Every stored row as a snapshot, its vectors in a new FAISS index."""
    try:
        index = FaissIndex(stored.dimension, index_type)
        index.add(
            np.array([chunk_key(c.id) for c in rows.chunks], dtype=np.int64), rows.chunk_vectors
        )
    except ValueError as exc:
        raise IndexCorrupt(f"the database's chunk vectors cannot be indexed: {exc}") from exc
    return _snapshot(stored, index, rows.chunks, rows.documents, rows.sentence_vectors)


@dataclass(frozen=True)
class Loaded:
    """A version brought up to date by :func:`load_newer`, and how: ``"unchanged"`` (the
    given snapshot), ``"incremental"`` (``documents_read`` documents read and patched in) or
    ``"full"`` (everything read)."""

    snapshot: IndexSnapshot
    how: str
    documents_read: int


def load_newer(
    conn: psycopg.Connection[Any],
    snapshot: IndexSnapshot,
    expect: Expectation | None = None,
    *,
    index_type: IndexType = "auto",
) -> Loaded:
    """``snapshot`` (a version this database served) brought up to the live generation by
    reading only the documents written since: those whose row generation is newer than the
    snapshot's, or that it lacks. Documents it holds that are no longer stored are dropped
    (the list of stored ids and generations, without text or vectors, tells which). The
    result equals :func:`load_snapshot`'s: same documents in the same order (a rewritten
    document moves to the end, as its new position puts it), same chunks, spans and vectors.
    ``snapshot`` is never modified (a live service may be searching it). Falls back to a
    full load when the database's generation is behind the snapshot's (it was restored or
    replaced)."""
    since = snapshot.manifest.generation
    with unavailable_as_error("loading the index"), conn.transaction():
        stored = _begin_read(conn, expect)
        if stored.generation == since:
            return Loaded(snapshot, "unchanged", 0)
        if stored.generation > since and stored.dimension == snapshot.index.dim:
            live = conn.execute(
                "SELECT doc_id, generation FROM rag_documents ORDER BY position"
            ).fetchall()
            known = {d.id for d in snapshot.documents}
            kept = {d for d, g in live if g <= since and d in known}
            changed = [d for d, g in live if d not in kept]
            rows = _read_rows(conn.cursor(binary=True), stored.dimension, changed)
            full = None
        else:
            full = _read_rows(conn.cursor(binary=True), stored.dimension)
    if full is not None:
        return Loaded(_whole(stored, full, index_type), "full", len(full.documents))
    try:
        index = FaissIndex.from_bytes(snapshot.index.to_bytes(), index_type)
        gone = [chunk_key(c.id) for c in snapshot.chunks if c.doc_id not in kept]
        index.remove(np.array(gone, dtype=np.int64))
        index.add(
            np.array([chunk_key(c.id) for c in rows.chunks], dtype=np.int64), rows.chunk_vectors
        )
    except ValueError as exc:
        raise IndexCorrupt(f"the database's chunk vectors cannot be indexed: {exc}") from exc
    keep_rows = np.repeat(
        np.array([c.doc_id in kept for c in snapshot.chunks], dtype=bool),
        [len(c.sentences) for c in snapshot.chunks],
    )
    sentence_vectors = np.concatenate(
        [snapshot.sentence_vectors[keep_rows], rows.sentence_vectors]
    ).astype(np.float32)
    chunks = [c for c in snapshot.chunks if c.doc_id in kept] + rows.chunks
    documents = tuple(d for d in snapshot.documents if d.id in kept) + rows.documents
    return Loaded(
        _snapshot(stored, index, chunks, documents, sentence_vectors, rows),
        "incremental",
        len(rows.documents),
    )


# --------------------------------------------------------------------------- change feed


def listen(conn: psycopg.Connection[Any]) -> None:
    """Subscribe ``conn`` (autocommit) to the writers' announcements."""
    with unavailable_as_error("listening for changes"):
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))


def wait_for_notify(conn: psycopg.Connection[Any], timeout: float) -> bool:
    """Block until a write is announced on a :func:`listen`-ing connection (True) or
    ``timeout`` seconds pass (False)."""
    with unavailable_as_error("listening for changes"):
        for _ in conn.notifies(timeout=timeout, stop_after=1):
            return True
    return False
