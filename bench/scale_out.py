"""What one document write costs as the corpus grows, in each backend (docs/scale-out.md),
where the time goes, and how long a replica takes to load the index.

``python -m bench.scale_out [--backend postgres|files|both] [--chunks 10000 100000 1000000]
[--sentences 3] [--repeats 3] [--reload-up-to 200000] [--database-url URL]``

For each corpus size, a synthetic corpus of that many chunks (documents of 10 paragraphs of
``--sentences`` sentences, real English words, random unit vectors: the vectors' values do not
change what a write or a load costs) is stored in the chosen backends: an index folder
(``files``, the embedded default), and a database (``postgres``: an embedded PostgreSQL 18 with
pgvector, started in a temporary folder, unless ``--database-url`` names one). A replica's
first, whole load is timed (it builds the FAISS structure). Then one real article is written
``--repeats`` times with the real model, as ``PUT /documents`` writes it
(:meth:`rag.storage.Storage.upsert`), and the in-memory corpus is rebuilt, as the service does
after a write. Both parts are timed, and the Postgres write is split into its stages: embed,
the transaction, and the incremental load that patches the replica's version with the
written article (:func:`index.pg.load_newer`).

Above ``--reload-up-to`` chunks, no replica loads the index (and so ``upsert``, which returns
the new version, and the corpus rebuild are not run): at 1M chunks a whole load needs the
vectors twice over in one process, a FAISS HNSW build and minutes of BM25 building, beyond
this benchmark's bounds on a shared 2-core machine; the write is then measured as embed +
transaction, which is what the database does per write at any size.

Results: var/bench/results/scale_out.json (with the machine's CPU flags and load average) and
a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import cpu_summary, load_average, save
from bench.pg_common import postgres, random_embedded, store, synthetic_documents

REPO = Path(__file__).resolve().parent.parent
BACKENDS = ("postgres", "files")


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


def seed_database(url: str, encoder: Any, docs: list[Any], embedded: Any) -> float:
    """The corpus into a fresh database, 2,000 documents per transaction; seconds."""
    from rag.build import expectation

    return store(url, expectation(encoder), docs, embedded)


def time_writes(
    storage: Any, engine: Any, article: Any, repeats: int, base: Any
) -> dict[str, float]:
    """Median seconds of the storage write and of the corpus update after it, as the service
    makes it (from the version it replaces: only the article is tokenized), and the seconds
    of building ``base``'s corpus from scratch (a replica's start)."""
    from core.types import Document

    t = time.perf_counter()
    corpus = engine.corpus_of(base)
    scratch = time.perf_counter() - t
    writes, rebuilds = [], []
    for n in range(repeats):
        doc = Document(article.id, article.text + f"\n\nRevision {n}.", article.meta)
        started = time.perf_counter()
        written = storage.upsert(doc, engine.encoder)
        wrote = time.perf_counter()
        corpus = engine.corpus_of(written.version.snapshot, corpus)
        writes.append(wrote - started)
        rebuilds.append(time.perf_counter() - wrote)
    return {
        "write_s": statistics.median(writes),
        "corpus_s": statistics.median(rebuilds),
        "corpus_scratch_s": scratch,
    }


def pg_stages(
    url: str, engine: Any, article: Any, settings: Any, repeats: int, base: Any | None
) -> dict[str, float]:
    """A Postgres write split into its stages (medians): embed, the transaction, and, given
    a ``base`` version to patch, the incremental load that brings it up to date
    (:func:`index.pg.load_newer`, what a replica does on a change)."""
    from core.types import Document
    from index import pg
    from rag.build import embed_documents, expectation
    from rag.pgstore import document_rows

    expect = expectation(engine.encoder)
    stages: dict[str, list[float]] = {"embed_s": [], "transaction_s": [], "patch_s": []}
    with closing(pg.connect(url)) as conn:
        for n in range(repeats):
            doc = Document(article.id, article.text + f"\n\nStage timing {n}.", article.meta)
            t0 = time.perf_counter()
            embedded = embed_documents([doc], engine.encoder, progress=False)
            t1 = time.perf_counter()
            pg.write(conn, expect, upserts=document_rows([doc], embedded))
            t2 = time.perf_counter()
            stages["embed_s"].append(t1 - t0)
            stages["transaction_s"].append(t2 - t1)
            if base is not None:
                loaded = pg.load_newer(conn, base, expect, index_type=settings.index_type)
                stages["patch_s"].append(time.perf_counter() - t2)
                assert loaded.how == "incremental", loaded.how
                base = loaded.snapshot
    return {k: statistics.median(v) for k, v in stages.items() if v}


def run_size(
    n_chunks: int, backends: list[str], url: str | None, work: Path, engine: Any, args: Any
) -> dict[str, Any]:
    from pydantic import SecretStr

    from rag.load import load_data_dir
    from rag.settings import Settings
    from rag.storage import FileStorage, open_storage

    article = load_data_dir(REPO / "data")[0]
    encoder = engine.encoder
    t = time.perf_counter()
    docs = synthetic_documents(n_chunks, sentences=args.sentences)
    embedded = random_embedded(docs, encoder.dim)
    row: dict[str, Any] = {
        "chunks": len(embedded.chunks),
        "sentences": int(embedded.sentence_vectors.shape[0]),
        "documents": len(docs),
        "generate_s": time.perf_counter() - t,
    }
    reload = len(embedded.chunks) <= args.reload_up_to
    settings = Settings(data_dir=work / f"data-{n_chunks}", index_dir=work / f"index-{n_chunks}")
    if "files" in backends:
        t = time.perf_counter()
        seed_files(settings, encoder, docs, embedded)
        row["files_seed_s"] = time.perf_counter() - t
    if "postgres" in backends:
        assert url is not None
        row["postgres_seed_s"] = seed_database(url, encoder, docs, embedded)
    del docs, embedded
    row["load_s"] = {}
    if "files" in backends:
        files = FileStorage(settings)
        t = time.perf_counter()
        loaded = files.load(encoder).snapshot
        row["load_s"]["files"] = time.perf_counter() - t
        row["files"] = time_writes(files, engine, article, args.repeats, loaded)
        del loaded
        files.close()  # a background merge of the deltas, if one started
    if "postgres" in backends:
        assert url is not None
        database = open_storage(settings.model_copy(update={"database_url": SecretStr(url)}))
        base = None
        if reload:
            t = time.perf_counter()
            base = database.load(encoder).snapshot  # whole: the FAISS structure is built
            row["load_s"]["postgres"] = time.perf_counter() - t
            # Each write patches the version this storage holds (only the article is read).
            row["postgres"] = time_writes(database, engine, article, args.repeats, base)
            base = database.load(encoder).snapshot
        else:
            row["postgres"] = {}
            row["postgres_reload"] = f"not run: more than --reload-up-to {args.reload_up_to} chunks"
        row["postgres"] |= pg_stages(url, engine, article, settings, args.repeats, base)
        database.close()
    row["load_average"] = load_average()
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| chunks | sentences | write: files | write: postgres | postgres: embed + "
        "transaction + patch | corpus update after a write | corpus from scratch "
        "| load: files | load: postgres |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def sec(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f} s"

    for r in rows:
        p, f = r.get("postgres", {}), r.get("files", {})
        stages = " + ".join(sec(p.get(k)) for k in ("embed_s", "transaction_s", "patch_s"))
        corpus = p.get("corpus_s", f.get("corpus_s"))
        scratch = p.get("corpus_scratch_s", f.get("corpus_scratch_s"))
        lines.append(
            f"| {r['chunks']:,} | {r['sentences']:,} | {sec(f.get('write_s'))} "
            f"| {sec(p.get('write_s'))} | {stages if p else '—'} | {sec(corpus)} | {sec(scratch)} "
            f"| {sec(r['load_s'].get('files'))} | {sec(r['load_s'].get('postgres'))} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__)
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    parser.add_argument("--chunks", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--sentences", type=int, default=3, help="per paragraph (chunk)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reload-up-to", type=int, default=200_000, metavar="CHUNKS")
    parser.add_argument("--database-url", help="default: an embedded PostgreSQL, started here")
    args = parser.parse_args(argv)
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]

    from rag.engine import Engine
    from rag.settings import Settings

    print(f"{cpu_summary()}; load average {load_average()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="scale-out-"))
    engine = Engine(Settings(reranker=""), use_reranker="off")
    engine.load_models()
    rows: list[dict[str, Any]] = []
    server_start = 0.0
    try:
        with postgres(args.database_url if "postgres" in backends else "unused") as server:
            server_start = server.start_s
            for n_chunks in args.chunks:
                url = server.database(f"scale_{n_chunks}") if "postgres" in backends else None
                row = run_size(n_chunks, backends, url, work, engine, args)
                if url is not None:
                    server.drop(url)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = save(
        "scale_out",
        {
            "server_start_s": server_start,
            "repeats": args.repeats,
            "backends": backends,
            "rows": rows,
        },
    )
    if "postgres" in backends and args.database_url is None:
        print(f"\nembedded PostgreSQL started (initdb included) in {server_start:.1f} s")
    print(f"load average after: {load_average()}; results in {path}\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
