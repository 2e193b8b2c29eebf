"""Scale: vector indexes of 10k, 100k and 1M chunks: build time, memory, search p50/p99 and
recall@10 against exact search, for each index kind (flat, ivf, hnsw) and what ``auto`` picks.

``python -m bench.scale [--sizes 10000 100000 1000000] [--queries 300] [--hnsw-max 100000]``

Vectors: the real MiniLM vectors of the retrieval benchmark's 26,476 paragraphs (corpus plus
distractors, embedded once and cached under var/cache/bench-embeddings, as ``rag eval
--bench`` does), then synthetic vectors up to the size: each a normalised mix of two random
real paragraphs' vectors (0.6/0.4) plus 0.3 of a random direction, so they lie where text
embeddings lie rather than uniformly on the sphere. Queries: real benchmark questions encoded
as queries. Exact neighbours come from a brute-force matrix product. HNSW builds slowly
(minutes per 100k on two cores), so it stops at ``--hnsw-max``.
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any, cast

import faiss
import numpy as np

from bench.common import DOCS, REPO, RETRIEVAL_BENCH, percentiles, require_shared, rss_mb, save

K = 10


def real_vectors() -> tuple[np.ndarray, list[str]]:
    from eval.bench import embed_cached, load_bench
    from rag.embed import SentenceTransformerEncoder

    require_shared()
    data = load_bench(RETRIEVAL_BENCH, distractors=True)
    encoder = SentenceTransformerEncoder().load()
    groups = [
        [t for i, t in data.texts.items() if i not in data.distractor_ids],
        [t for i, t in data.texts.items() if i in data.distractor_ids],
    ]
    cache = REPO / "var" / "cache"
    vectors = np.concatenate([embed_cached(encoder, g, cache, progress=True) for g in groups])
    rng = np.random.default_rng(0)
    picked = rng.choice(len(data.queries), 2000, replace=False)
    queries = [data.queries[i].text for i in picked]
    return vectors.astype(np.float32), queries


def synthetic(real: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    step = 100_000
    for lo in range(0, n, step):
        m = min(step, n - lo)
        a = real[rng.integers(0, len(real), m)]
        b = real[rng.integers(0, len(real), m)]
        g = rng.standard_normal((m, real.shape[1])).astype(np.float32)
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        v = 0.6 * a + 0.4 * b + 0.3 * g
        out[lo : lo + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    step = 200_000
    for lo in range(0, len(vectors), step):
        s = queries @ vectors[lo : lo + step].T
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, top, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, top + lo], axis=1)
        order = np.argsort(-cand_s, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, order, axis=1)
        best_i = np.take_along_axis(cand_i, order, axis=1)
    return best_i


def measure(kind: str, vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, truth: Any):
    from index.store import FaissIndex

    gc.collect()
    before = rss_mb()
    t = time.perf_counter()
    index = FaissIndex(vectors.shape[1], kind)  # type: ignore[arg-type]
    index.add(ids, vectors)
    build = time.perf_counter() - t
    gc.collect()
    grown = rss_mb() - before
    size_mb = len(index.to_bytes()) / 2**20
    for q in queries[:20]:
        index.search(q[None, :], K)
    samples, found = [], []
    for q in queries:
        t = time.perf_counter()
        _, got = index.search(q[None, :], K)
        samples.append((time.perf_counter() - t) * 1000)
        found.append(got[0])
    truth_ids = ids[truth]
    pairs = zip(found, truth_ids, strict=True)
    recall = float(np.mean([len(set(f.tolist()) & set(g.tolist())) / K for f, g in pairs]))
    sweep = {}
    if index.kind in ("ivf", "hnsw"):  # the knob that trades recall for time
        raw: Any = index._index
        if index.kind == "ivf":
            target, name, values = raw, "nprobe", [16, 32, 64, 128, 256]
        else:
            target = cast(Any, faiss.downcast_index(raw.index)).hnsw
            name, values = "efSearch", [32, 64, 96, 128, 192]
        default = getattr(target, name)
        for value in values:
            setattr(target, name, value)
            # FaissIndex.search passes HNSW its own efSearch per call (hnsw_ef_search), which
            # would override the attribute: the HNSW sweep searches the FAISS index itself.
            params: Any = None
            if index.kind == "hnsw":
                params = cast(Any, faiss).SearchParametersHNSW()
                params.efSearch = value
            times, hits = [], []
            for q, g in zip(queries, truth_ids, strict=True):
                t = time.perf_counter()
                if params is None:
                    _, got = index.search(q[None, :], K)
                else:
                    _, got = raw.search(q[None, :], K, params=params)
                times.append((time.perf_counter() - t) * 1000)
                hits.append(len(set(got[0].tolist()) & set(g.tolist())) / K)
            sweep[f"{name}={value}"] = {
                "p50_ms": percentiles(times)["p50"],
                "recall@10": float(np.mean(hits)),
            }
        setattr(target, name, default)
    result = {
        "sweep": sweep,
        "kind": index.kind,
        "build_s": build,
        "index_mb": size_mb,
        "rss_growth_mb": grown,
        "search_ms": percentiles(samples),
        "recall@10": recall,
    }
    del index
    gc.collect()
    return result


def run(sizes: list[int], n_queries: int, hnsw_max: int) -> dict[str, Any]:
    from index.store import choose_kind
    from rag.embed import SentenceTransformerEncoder

    real, query_texts = real_vectors()
    encoder = SentenceTransformerEncoder().load()
    queries = encoder.encode(query_texts[:n_queries], kind="query")
    results: dict[str, Any] = {"real_vectors": len(real), "queries": n_queries, "sizes": {}}
    for size in sizes:
        n_real = min(size, len(real))
        vectors = np.concatenate([real[:n_real], synthetic(real, size - n_real)])
        ids = np.random.default_rng(size).choice(2**62, size, replace=False).astype(np.int64)
        truth = exact_top(vectors, queries)
        row: dict[str, Any] = {"auto": choose_kind("auto", size)}
        for kind in ("flat", "ivf", "hnsw"):
            if kind == "hnsw" and size > hnsw_max:
                continue
            print(f"size {size}: {kind} ...", flush=True)
            row[kind] = measure(kind, vectors, ids, queries, truth)
            print(f"  {row[kind]}", flush=True)
        results["sizes"][str(size)] = row
        del vectors
        gc.collect()
    plot(results)
    return results


def plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    sizes = sorted(int(s) for s in results["sizes"])
    for kind in ("flat", "ivf", "hnsw"):
        xs = [s for s in sizes if kind in results["sizes"][str(s)]]
        if not xs:
            continue
        rows = [results["sizes"][str(s)][kind] for s in xs]
        left.plot(xs, [r["search_ms"]["p50"] for r in rows], "-o", label=f"{kind} p50")
        left.plot(xs, [r["search_ms"]["p99"] for r in rows], "--", label=f"{kind} p99")
        right.plot(xs, [r["index_mb"] for r in rows], "-o", label=kind)
    left.set(xscale="log", yscale="log", xlabel="chunks", ylabel="search time, k=10 (ms)")
    left.set_title("search time vs corpus size")
    right.set(xscale="log", yscale="log", xlabel="chunks", ylabel="index size (MB)")
    right.set_title("index memory vs corpus size")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    DOCS.mkdir(exist_ok=True)
    fig.savefig(DOCS / "bench-scale.png", dpi=100)


def table(results: dict[str, Any]) -> str:
    rows = [
        "| chunks | kind | auto picks | build s | index MB | RSS growth MB | search p50 ms | "
        "p99 ms | recall@10 |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size, row in results["sizes"].items():
        for kind in ("flat", "ivf", "hnsw"):
            r = row.get(kind)
            if r:
                mark = "yes" if row["auto"] == kind else ""
                rows.append(
                    f"| {int(size):,} | {kind} | {mark} | {r['build_s']:.1f} | "
                    f"{r['index_mb']:.0f} | {r['rss_growth_mb']:.0f} | "
                    f"{r['search_ms']['p50']:.2f} | {r['search_ms']['p99']:.2f} | "
                    f"{r['recall@10']:.3f} |"
                )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--hnsw-max", type=int, default=100_000)
    args = parser.parse_args(argv)
    results = run(args.sizes, args.queries, args.hnsw_max)
    save("scale", results)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
