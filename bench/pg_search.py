"""Where the first stage runs (issue 17, docs/scale-out.md): in each replica, in memory (the
FAISS and BM25 structures of :class:`rag.retrieve.Corpus`, built from the database), or in
PostgreSQL (dense search by a pgvector HNSW index over ``rag_chunks.embedding``, lexical search
by Postgres full-text search: ``ts_rank`` over a ``tsvector`` with a GIN index).

``python -m bench.pg_search [quality] [--sample 100] [--database-url URL]``
``python -m bench.pg_search scale --chunks 10000 100000``

``quality`` stores three corpora with the real model's vectors in a database (an embedded
PostgreSQL 18 with pgvector, started here, unless ``--database-url`` names one), builds the
search indexes there, and ranks every question both ways, timing each search:

- ``seed``: the seed article and its questions (eval/questions.jsonl);
- ``squad``: the SQuAD stand-ins' three articles and questions (eval/questions-squad.jsonl);
- ``retrieval-bench``: the 7,733 paragraphs of ../shared/benchmarks/retrieval_bench (SQuAD 1.1
  dev and three other sources, one chunk per paragraph, vectors from var/cache), with
  ``--sample`` questions per source.

Recall@1/@5 is over paragraphs, first stage only (no reranker), as eval.first_stage counts it.
The in-memory side is the pipeline's own :func:`rag.retrieve.retrieve` with the settings'
depth and fusion; the Postgres side fuses its two lists the same way
(:func:`rag.retrieve.score_fusion`). Full text is tried two ways: ``websearch_to_tsquery`` as
it is (every word required) and with its terms OR-ed (as BM25 does).

``scale`` measures what changes with the corpus size on synthetic corpora (real English words
drawn from the retrieval benchmark's vocabulary, random unit vectors, real questions' words as
lexical queries): replica start (load from the database + build the in-memory corpus) and its
memory, the Postgres indexes' build time, and search latency both ways. Recall is not measured
there (the vectors are random).

Latencies are of the search alone (the question's embedding is the same either way), measured
in this process; the Postgres side includes the local socket round trip. Results:
var/bench/results/pg_search[_scale].json and Markdown tables.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.common import REPO, RETRIEVAL_BENCH, cpu_summary, load_average, percentiles, rss_mb, save
from bench.pg_common import Server, postgres, random_embedded, store, synthetic_documents

CACHE = REPO / "var" / "cache"
#: HNSW parameters (pgvector's defaults) and the search breadth (at least the list depth).
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 16, 64, 100
TS_CONFIG = "english"

SEARCH_DDL = (
    "ALTER TABLE rag_chunks ADD COLUMN IF NOT EXISTS tsv tsvector",
    f"UPDATE rag_chunks c SET tsv = to_tsvector('{TS_CONFIG}', "
    "substr(d.text, c.start_char + 1, c.end_char - c.start_char))"
    " FROM rag_documents d WHERE d.doc_id = c.doc_id",
    "CREATE INDEX IF NOT EXISTS rag_chunks_tsv ON rag_chunks USING gin (tsv)",
)
HNSW_DDL = (
    "CREATE INDEX IF NOT EXISTS rag_chunks_hnsw ON rag_chunks USING hnsw"
    f" (embedding vector_ip_ops) WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
)
DENSE_SQL = (
    "SELECT chunk_id, -(embedding <#> %(v)s) FROM rag_chunks ORDER BY embedding <#> %(v)s"
    " LIMIT %(k)s"
)
#: The question's words, every one required (websearch_to_tsquery's own meaning).
FTS_AND_SQL = (
    "SELECT chunk_id, ts_rank(tsv, q) AS r FROM rag_chunks,"
    f" websearch_to_tsquery('{TS_CONFIG}', %(q)s) q WHERE tsv @@ q ORDER BY r DESC LIMIT %(k)s"
)
#: The same terms, any one enough (as BM25 ranks).
FTS_OR_SQL = (
    "SELECT chunk_id, ts_rank(tsv, q) AS r FROM rag_chunks,"
    f" (SELECT replace(websearch_to_tsquery('{TS_CONFIG}', %(q)s)::text, ' & ', ' | ')::tsquery"
    " AS q) s WHERE tsv @@ q ORDER BY r DESC LIMIT %(k)s"
)


def build_search_indexes(url: str) -> dict[str, float]:
    """The full-text column and GIN index, and the HNSW index; seconds for each."""
    out = {}
    with closing(_connect(url)) as conn:
        conn.execute("SET max_parallel_maintenance_workers = 1")
        t = time.perf_counter()
        for ddl in SEARCH_DDL:
            conn.execute(ddl)
        out["fulltext_s"] = time.perf_counter() - t
        t = time.perf_counter()
        conn.execute(HNSW_DDL)
        out["hnsw_s"] = time.perf_counter() - t
        conn.execute("VACUUM ANALYZE rag_chunks")
        (size,) = conn.execute(
            "SELECT pg_relation_size('rag_chunks_hnsw') + pg_relation_size('rag_chunks_tsv')"
        ).fetchone() or (0,)
        out["index_mb"] = int(size) / 2**20
    return out


def _connect(url: str) -> Any:
    from index import pg

    conn = pg.connect(url)
    pg.adapt_vectors(conn)
    conn.execute(f"SET hnsw.ef_search = {HNSW_EF_SEARCH}")
    return conn


@dataclass
class Searcher:
    """One way of searching, timed: ``search(vector, text, depth) -> [(position, score)]``."""

    name: str
    search: Callable[[np.ndarray, str, int], list[tuple[int, float]]]


def memory_searchers(corpus: Any, settings: Any) -> list[Searcher]:
    from rag.retrieve import retrieve

    def run(mode: str) -> Callable[[np.ndarray, str, int], list[tuple[int, float]]]:
        def search(vec: np.ndarray, text: str, depth: int) -> list[tuple[int, float]]:
            hits = retrieve(
                corpus,
                vec,
                corpus.lexical.terms(text),
                mode=mode,  # type: ignore[arg-type]  # one of rag.retrieve.MODES
                top_k=depth,
                candidates=settings.tuning.candidates,
                rrf_k=settings.tuning.rrf_k,
                fusion=settings.fusion,
                dense_weight=settings.tuning.dense_weight,
            )
            return [(corpus.position_of(h.chunk), h.score) for h in hits]

        return search

    return [Searcher(f"memory {m}", run(m)) for m in ("dense", "bm25", "hybrid")]


def pg_searchers(conn: Any, corpus: Any, settings: Any) -> list[Searcher]:
    from index import pg
    from index.store import chunk_key
    from rag.retrieve import score_fusion

    positions = corpus.positions if corpus is not None else None

    def rows(sql: str, params: dict[str, Any]) -> list[tuple[int, float]]:
        out = conn.execute(sql, params).fetchall()
        if positions is None:
            return [(chunk_key(c), float(s)) for c, s in out]
        return [(positions[chunk_key(c)], float(s)) for c, s in out]

    def dense(vec: np.ndarray, text: str, depth: int) -> list[tuple[int, float]]:
        return rows(DENSE_SQL, {"v": pg.Vector(vec), "k": depth})

    def lexical(sql: str) -> Callable[[np.ndarray, str, int], list[tuple[int, float]]]:
        return lambda vec, text, depth: rows(sql, {"q": text, "k": depth})

    def hybrid(vec: np.ndarray, text: str, depth: int) -> list[tuple[int, float]]:
        k = max(settings.tuning.candidates, depth)
        d = dense(vec, text, k)
        lex = rows(FTS_OR_SQL, {"q": text, "k": k})
        w = settings.tuning.dense_weight
        fused = score_fusion([d, lex], [w, 1.0 - w])
        rank = {p: r for r, (p, _) in enumerate(d, start=1)}
        order = sorted(fused, key=lambda p: (-fused[p], rank.get(p, k + 1), p))
        return [(p, fused[p]) for p in order[:depth]]

    return [
        Searcher("pgvector hnsw", dense),
        Searcher("fulltext and", lexical(FTS_AND_SQL)),
        Searcher("fulltext or", lexical(FTS_OR_SQL)),
        Searcher("pg hybrid (hnsw + fulltext or)", hybrid),
    ]


# --------------------------------------------------------------------------- quality


@dataclass(frozen=True)
class Question:
    text: str
    gold: frozenset[str]


def seed_and_squad(encoder: Any, settings: Any) -> dict[str, tuple[Any, list[Question], Any]]:
    """name -> (corpus, questions, key of a hit's paragraph) for the two question sets."""
    from eval.dataset import DEFAULT_QUESTIONS, SQUAD_QUESTIONS, load_question_set, paragraph_id
    from eval.runner import index_dir_for, open_eval_corpus
    from eval.squad import DEFAULT_PATH
    from rag.query import retrieval_text

    out = {}
    for name, path in (("seed", DEFAULT_QUESTIONS), ("squad", SQUAD_QUESTIONS)):
        qset = load_question_set(path, squad_path=DEFAULT_PATH, data_dir=REPO / "data")
        corpus = open_eval_corpus(
            list(qset.documents.values()),
            encoder,
            settings,
            index_dir_for(CACHE / "pg-search" / name, encoder),
            progress=True,
        )
        questions = [
            Question(retrieval_text(q.question, list(q.previous)), frozenset(q.paragraph_ids()))
            for q in qset.questions
            if q.answerable
        ]
        out[name] = (corpus, questions, lambda c: paragraph_id(c.doc_id, c.paragraph))
    return out


def retrieval_bench(encoder: Any, sample: int) -> tuple[Any, list[Question], Any]:
    import warnings

    from eval.bench import embed_cached, load_bench, paragraph_corpus, sample_queries

    data = load_bench(RETRIEVAL_BENCH)
    ids = list(data.texts)
    texts = [data.texts[i] for i in ids]
    vectors = embed_cached(encoder, texts, CACHE, progress=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        corpus = paragraph_corpus(ids, texts, vectors, model=encoder.name)
    queries = sample_queries(data.queries, sample, seed=0)
    return (
        corpus,
        [Question(q.text, frozenset(q.relevant)) for q in queries],
        lambda c: c.doc_id,
    )


def store_corpus(url: str, corpus: Any, encoder: Any) -> float:
    """The corpus's documents, chunks and vectors into the database; seconds."""
    from rag.build import Embedded, expectation

    vectors = corpus.index.vectors(corpus.keys)
    embedded = Embedded(corpus.chunks, vectors, corpus.sentence_vectors)
    docs = list(corpus.documents.values())
    return store(url, expectation(encoder), docs, embedded)


def measure(
    searchers: Sequence[Searcher],
    corpus: Any,
    questions: Sequence[Question],
    vectors: np.ndarray,
    key: Callable[[Any], str] | None,
    depth: int = 20,
) -> dict[str, dict[str, Any]]:
    out = {}
    for s in searchers:
        s.search(vectors[0], questions[0].text, depth)  # warm up
        times, r1, r5 = [], [], []
        for q, vec in zip(questions, vectors, strict=True):
            t = time.perf_counter()
            hits = s.search(vec, q.text, depth)
            times.append((time.perf_counter() - t) * 1000)
            if key is not None:
                ranked = list(dict.fromkeys(key(corpus.chunks[p]) for p, _ in hits))
                r1.append(bool(q.gold & set(ranked[:1])))
                r5.append(bool(q.gold & set(ranked[:5])))
        row: dict[str, Any] = {"latency_ms": percentiles(times)}
        if key is not None:
            row |= {"r1": float(np.mean(r1)), "r5": float(np.mean(r5))}
        out[s.name] = row
    return out


def run_quality(server: Server, sample: int) -> dict[str, Any]:
    from eval.runner import one_thread
    from rag.engine import Engine
    from rag.settings import Settings

    settings = Settings(reranker="")
    encoder = Engine(settings, use_reranker="off").load_models().encoder
    sets = seed_and_squad(encoder, settings)
    sets["retrieval-bench"] = retrieval_bench(encoder, sample)
    results: dict[str, Any] = {}
    for name, (corpus, questions, key) in sets.items():
        url = server.database(name.replace("-", "_"))
        stored_s = store_corpus(url, corpus, encoder)
        built = build_search_indexes(url)
        with one_thread():
            vectors = encoder.encode([q.text for q in questions], kind="query")
        with closing(_connect(url)) as conn:
            rows = measure(
                memory_searchers(corpus, settings) + pg_searchers(conn, corpus, settings),
                corpus,
                questions,
                vectors,
                key,
            )
        results[name] = {
            "chunks": len(corpus.chunks),
            "questions": len(questions),
            "store_s": stored_s,
            **built,
            "rows": rows,
            "load_average": load_average(),
        }
        print(json.dumps({name: results[name]}), flush=True)
        server.drop(url)
    return results


def quality_markdown(results: dict[str, Any]) -> str:
    lines = [
        "| corpus | chunks | questions | search | Recall@1 | Recall@5 | p50 ms | p95 ms |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        for search, row in r["rows"].items():
            lat = row["latency_ms"]
            lines.append(
                f"| {name} | {r['chunks']:,} | {r['questions']} | {search} | {row['r1']:.3f} "
                f"| {row['r5']:.3f} | {lat['p50']:.2f} | {lat['p95']:.2f} |"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- scale


def scale_questions(n: int) -> list[str]:
    from eval.bench import read_jsonl

    path = RETRIEVAL_BENCH / "queries.jsonl"
    if not path.is_file():
        return ["harbour ferry council budget"] * n
    texts = [row["text"] for row in read_jsonl(path)]
    step = max(1, len(texts) // n)
    return texts[::step][:n]


def run_scale(server: Server, n_chunks: int, n_queries: int) -> dict[str, Any]:
    from index import pg
    from rag.build import corpus_of, expectation
    from rag.engine import Engine
    from rag.settings import Settings

    settings = Settings(reranker="")
    # Its name and dimension: nothing is embedded.
    encoder = Engine(settings, use_reranker="off").load_models().encoder
    expect = expectation(encoder)
    docs = synthetic_documents(n_chunks)
    embedded = random_embedded(docs, encoder.dim)
    url = server.database(f"scale_{n_chunks}")
    store_s = store(url, expect, docs, embedded)
    del docs
    built = build_search_indexes(url)
    del embedded
    gc.collect()

    before = rss_mb()
    t = time.perf_counter()
    with closing(pg.connect(url)) as conn:
        snapshot = pg.load_snapshot(conn, expect, index_type=settings.index_type)
    loaded = time.perf_counter()
    corpus = corpus_of(snapshot, settings)
    built_corpus = time.perf_counter()
    del snapshot
    gc.collect()
    memory = rss_mb() - before
    texts = scale_questions(n_queries)
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((len(texts), encoder.dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    questions = [Question(t, frozenset()) for t in texts]
    with closing(_connect(url)) as conn:
        rows = measure(
            memory_searchers(corpus, settings) + pg_searchers(conn, corpus, settings),
            corpus,
            questions,
            vectors,
            None,
        )
    server.drop(url)
    result = {
        "chunks": len(corpus.chunks),
        "sentences": int(corpus.sentence_vectors.shape[0]),
        "store_s": store_s,
        **built,
        "memory_replica": {
            "load_s": loaded - t,
            "corpus_s": built_corpus - loaded,
            "rss_mb": memory,
            "chunk_vectors_mb": len(corpus.chunks) * encoder.dim * 4 / 2**20,
            "sentence_vectors_mb": corpus.sentence_vectors.nbytes / 2**20,
        },
        "rows": rows,
        "load_average": load_average(),
    }
    print(json.dumps(result), flush=True)
    return result


def scale_markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| chunks | replica start: load + corpus | replica memory (RSS) | pg: store, "
        "fulltext, HNSW build | search | p50 ms | p95 ms |",
        "|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        m = r["memory_replica"]
        head = (
            f"| {r['chunks']:,} | {m['load_s']:.1f} + {m['corpus_s']:.1f} s | "
            f"{m['rss_mb']:,.0f} MB | {r['store_s']:.0f} + {r['fulltext_s']:.0f} + "
            f"{r['hnsw_s']:.0f} s |"
        )
        for n, (search, row) in enumerate(r["rows"].items()):
            lat = row["latency_ms"]
            prefix = head if n == 0 else "| | | | |"
            lines.append(f"{prefix} {search} | {lat['p50']:.2f} | {lat['p95']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_search", description=__doc__)
    parser.add_argument("part", nargs="?", choices=("quality", "scale"), default="quality")
    parser.add_argument("--sample", type=int, default=100, help="questions per source")
    parser.add_argument("--chunks", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--queries", type=int, default=200, help="scale: questions")
    parser.add_argument("--database-url", help="default: an embedded PostgreSQL, started here")
    args = parser.parse_args(argv)
    print(f"{cpu_summary()}; load average {load_average()}", flush=True)
    with postgres(args.database_url) as server:
        if args.part == "quality":
            quality = run_quality(server, args.sample)
            save("pg_search", {"results": quality, "sample": args.sample})
            print("\n" + quality_markdown(quality))
        else:
            scale = [run_scale(server, n, args.queries) for n in args.chunks]
            save("pg_search_scale", {"results": scale})
            print("\n" + scale_markdown(scale))
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
