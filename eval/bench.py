"""External benchmarks, read from ``../shared/benchmarks`` at run time (never copied here).

* ``retrieval_bench`` (BEIR layout): paragraph retrieval over thousands of real paragraphs —
  SQuAD v1.1 dev, and SQuADShifts new_wiki, reddit and amazon — optionally with 18.7k SQuAD
  train paragraphs as distractors. Paragraphs are embedded whole (no sentence vectors are
  needed for ranking) and cached on disk keyed by model and corpus hash; retrieval is the
  pipeline's own :func:`rag.retrieve.retrieve` (BM25, dense, fusion) over a corpus of one chunk
  per paragraph, and the metrics come from ranx.
* ``squad2_dev``: SQuAD 2.0 articles indexed by the real pipeline, their questions asked through
  the façade (:meth:`rag.engine.Engine.ask`): answer hit on the answerable ones, abstention on
  the rest.

``rag eval bench DIR`` and ``rag eval squad2 FILE`` run them (:mod:`eval.cli`).
"""

from __future__ import annotations

import hashlib
import json
import random
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from core.types import Chunk, Document
from eval.dataset import EvalQuestion
from eval.metrics import mean_interval, ranking_scores, summarize_by_category
from eval.render import describe_thresholds
from eval.runner import (
    index_dir_for,
    mode_options,
    mode_thresholds,
    open_eval_corpus,
    run_questions,
)
from index.persist import IndexSnapshot, Manifest
from index.store import FaissIndex, chunk_key
from rag.chunk import chunk_id
from rag.embed import Encoder
from rag.engine import Engine
from rag.rerank import Reranker, rerank_hits
from rag.retrieve import Corpus, retrieve
from rag.settings import Settings

BENCH_METRICS: tuple[str, ...] = ("recall@1", "recall@5", "mrr@10", "ndcg@10")
SQUAD2_METRICS: tuple[str, ...] = (
    "recall@1",
    "recall@5",
    "answer_hit",
    "span_iou",
    "quote_exactness",
    "abstention_recall",
    "abstention_precision",
    "false_abstention",
)
DEPTH = 10
DISTRACTORS_FILE = "corpus_distractors_squad11_train.jsonl"
#: The issue's external target: reddit Recall@5 with hybrid retrieval.
REDDIT_TARGET = 0.62


@dataclass(frozen=True)
class BenchQuery:
    id: str
    text: str
    source: str
    relevant: tuple[str, ...]


@dataclass(frozen=True)
class BenchData:
    texts: dict[str, str]  # paragraph id -> text, in file order (corpus, then distractors)
    queries: tuple[BenchQuery, ...]
    distractor_ids: frozenset[str] = frozenset()


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def read_qrels(path: Path) -> dict[str, list[str]]:
    """``query-id -> [corpus-id, ...]`` for every row with a positive score."""
    qrels: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh):
            parts = line.rstrip("\n").split("\t")
            if number == 0 and parts[0] == "query-id":
                continue
            if len(parts) >= 3 and float(parts[2]) > 0:
                qrels.setdefault(parts[0], []).append(parts[1])
    return qrels


def load_bench(root: Path, *, distractors: bool = False) -> BenchData:
    texts: dict[str, str] = {}
    for row in read_jsonl(root / "corpus.jsonl"):
        texts.setdefault(row["_id"], row["text"])
    extra: set[str] = set()
    if distractors:
        for row in read_jsonl(root / DISTRACTORS_FILE):
            if row["_id"] not in texts:
                texts[row["_id"]] = row["text"]
                extra.add(row["_id"])
    qrels = read_qrels(root / "qrels" / "test.tsv")
    queries = tuple(
        BenchQuery(
            id=row["_id"],
            text=row["text"],
            source=row["source"],
            relevant=tuple(qrels.get(row["_id"], [row["gold_pid"]])),
        )
        for row in read_jsonl(root / "queries.jsonl")
    )
    return BenchData(texts=texts, queries=queries, distractor_ids=frozenset(extra))


def split_by_paragraph(data: BenchData, seed: int) -> tuple[list[BenchQuery], list[BenchQuery]]:
    """(training pool, evaluation pool): questions about one random half of the gold
    paragraphs, and about the other (a question with gold paragraphs in both is in neither).
    The static question table trains on the first (seed 0); its benchmarks evaluate on the
    second."""
    gold = sorted({p for q in data.queries for p in q.relevant})
    random.Random(seed).shuffle(gold)
    held = set(gold[: len(gold) // 2])
    train = [q for q in data.queries if not held.intersection(q.relevant)]
    test = [q for q in data.queries if held.issuperset(q.relevant)]
    return train, test


def sample_queries(
    queries: Sequence[BenchQuery], per_source: int | None, seed: int
) -> list[BenchQuery]:
    """``per_source`` questions of each source (all when None), fixed by ``seed``."""
    if per_source is None:
        return list(queries)
    rng = random.Random(seed)
    chosen: list[BenchQuery] = []
    for source in sorted({q.source for q in queries}):
        pool = sorted((q for q in queries if q.source == source), key=lambda q: q.id)
        chosen.extend(pool if len(pool) <= per_source else rng.sample(pool, per_source))
    return chosen


def choose_paragraphs(
    ids: Sequence[str], queries: Sequence[BenchQuery], size: int | None, seed: int
) -> list[str]:
    """The paragraphs to index: all of them when ``size`` is None, else every gold paragraph
    of ``queries`` plus random others up to ``size`` (a fast subset for CI)."""
    if size is None:
        return list(ids)
    known = set(ids)
    gold = list(dict.fromkeys(p for q in queries for p in q.relevant if p in known))
    gold_set = set(gold)
    others = [p for p in ids if p not in gold_set]
    extra = random.Random(seed).sample(others, max(0, min(len(others), size - len(gold))))
    wanted = gold_set | set(extra)
    return [p for p in ids if p in wanted]


def corpus_key(model: str, texts: Sequence[str]) -> str:
    digest = hashlib.sha256(model.encode())
    for text in texts:
        digest.update(b"\x00")
        digest.update(text.encode("utf-8"))
    return digest.hexdigest()[:24]


def embed_cached(
    encoder: Encoder, texts: Sequence[str], cache_dir: Path, *, progress: bool = False
) -> np.ndarray:
    """Passage vectors for ``texts``, read from ``cache_dir`` when this model already embedded
    exactly this corpus (``.npy`` keyed by model name and the texts' sha256)."""
    path = cache_dir / "bench-embeddings" / f"{corpus_key(encoder.name, texts)}.npy"
    if path.is_file():
        vectors = np.load(path)
        if vectors.shape == (len(texts), encoder.dim):
            return vectors
    vectors = encoder.encode(list(texts), kind="passage", progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors


def paragraph_corpus(
    ids: Sequence[str],
    texts: Sequence[str],
    vectors: np.ndarray,
    *,
    model: str = "",
    stemming: bool = True,
    spelling: bool = True,
) -> Corpus:
    """A searchable corpus with one chunk per paragraph (no sentences: ranking only), built
    by the pipeline's own :meth:`Corpus.from_snapshot`."""
    chunks = tuple(
        Chunk(
            id=chunk_id(pid, 0, len(text), text),
            doc_id=pid,
            paragraph=1,
            part=0,
            start=0,
            end=len(text),
            text=text,
            sentences=(),
        )
        for pid, text in zip(ids, texts, strict=True)
    )
    keys = np.array([chunk_key(c.id) for c in chunks], dtype=np.int64)
    index = FaissIndex(vectors.shape[1])
    index.add(keys, vectors)
    documents = tuple(Document(id=pid, text=text) for pid, text in zip(ids, texts, strict=True))
    manifest = Manifest(  # in memory only: never saved, never checked
        format_version=0,
        generation=0,
        model=model,
        dimension=int(vectors.shape[1]),
        chunker_version="bench",
        faiss_version="",
        documents={d.id: d.sha256 for d in documents},
        counts={"documents": len(documents), "chunks": len(chunks)},
        files={},
        created="",
        extra={},
    )
    snapshot = IndexSnapshot(
        manifest=manifest,
        index=index,
        chunks=chunks,
        documents=documents,
        sentence_vectors=np.zeros((0, vectors.shape[1]), dtype=np.float32),
    )
    return Corpus.from_snapshot(snapshot, stemming=stemming, spelling=spelling)


def rank_queries(
    corpus: Corpus,
    encoder: Encoder,
    queries: Sequence[BenchQuery],
    modes: Sequence[str],
    settings: Settings,
    *,
    progress: bool = False,
    reranker: Reranker | None = None,
) -> dict[str, dict[str, list[str]]]:
    """``mode -> query id -> ranked paragraph ids`` (top :data:`DEPTH`). In ``accurate`` mode
    the first ``settings.rerank_candidates`` hybrid hits are re-ranked by ``reranker`` (with
    the service's early stop), the rest follow in hybrid order."""
    texts = [corpus.speller.correct(q.text) for q in queries]  # as the service searches
    vectors = encoder.encode(texts, kind="query", progress=progress)
    runs: dict[str, dict[str, list[str]]] = {m: {} for m in modes}
    for q, text, vec in tqdm(
        list(zip(queries, texts, vectors, strict=True)),
        desc="ranking",
        unit="q",
        disable=not progress,
    ):
        terms = corpus.lexical.terms(text)
        for mode in modes:
            options = mode_options(mode)
            hits = retrieve(
                corpus,
                vec,
                terms,
                mode=options.retrieval,
                top_k=max(DEPTH, settings.rerank_candidates),
                candidates=settings.tuning.candidates,
                rrf_k=settings.tuning.rrf_k,
                fusion=settings.fusion,
                dense_weight=settings.tuning.dense_weight,
            )
            if options.answer == "accurate":
                if reranker is None:
                    raise ValueError("the accurate mode needs a reranker")
                n = settings.rerank_candidates
                reranked = rerank_hits(
                    reranker,
                    text,
                    hits[:n],
                    keep=n,
                    first=settings.tuning.rerank_first,
                    stop=settings.tuning.rerank_stop,
                    window_words=settings.tuning.rerank_window_words,
                    window_margin=settings.tuning.rerank_window_margin,
                )
                hits = reranked + hits[n:]
            runs[mode][q.id] = [h.chunk.doc_id for h in hits[:DEPTH]]
    return runs


#: ``source -> mode -> metric -> per-question values`` (the source ``all`` included).
SourceValues = dict[str, dict[str, dict[str, list[float]]]]

#: The metrics whose targets get a bootstrap interval in the report.
INTERVAL_METRICS: tuple[str, ...] = ("recall@1", "recall@5")

Intervals = Mapping[str, Mapping[str, Mapping[str, tuple[float, float]]]]


def source_values(
    queries: Sequence[BenchQuery],
    runs: Mapping[str, Mapping[str, list[str]]],
    metrics: Sequence[str] = BENCH_METRICS,
) -> SourceValues:
    """Each question's score per metric (ranx, once per mode), grouped by source and mode."""
    qrels = {q.id: q.relevant for q in queries}
    sources = ["all", *sorted({q.source for q in queries})]
    result: SourceValues = {s: {} for s in sources}
    for mode, run in runs.items():
        per_query = ranking_scores(qrels, run, metrics)
        for source in sources:
            ids = [q.id for q in queries if source in ("all", q.source)]
            result[source][mode] = {m: [per_query[m][i] for i in ids] for m in metrics}
    return result


def means_of(values: SourceValues) -> dict[str, dict[str, dict[str, float]]]:
    return {
        source: {
            mode: {m: round(float(np.mean(v)), 4) for m, v in metrics.items()}
            for mode, metrics in modes.items()
        }
        for source, modes in values.items()
    }


def intervals_of(
    values: SourceValues, metrics: Sequence[str] = INTERVAL_METRICS
) -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
    """95% bootstrap intervals of the means of ``metrics``, so that a target missed on a
    500-question sample can be told apart from a target missed by the system."""
    result: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}
    for source, modes in values.items():
        result[source] = {}
        for mode, by_metric in modes.items():
            spans = {m: mean_interval(by_metric[m]) for m in metrics}
            result[source][mode] = {
                m: (round(lo, 4), round(hi, 4)) for m, (lo, hi) in spans.items()
            }
    return result


def bench_scores(
    queries: Sequence[BenchQuery], runs: Mapping[str, Mapping[str, list[str]]]
) -> dict[str, dict[str, dict[str, float]]]:
    """``source -> mode -> metric -> mean``, plus the source ``all``."""
    return means_of(source_values(queries, runs))


def bench_intervals(
    queries: Sequence[BenchQuery],
    runs: Mapping[str, Mapping[str, list[str]]],
    metrics: Sequence[str] = INTERVAL_METRICS,
) -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
    """``source -> mode -> metric -> (low, high)``: :func:`intervals_of` the questions' scores."""
    return intervals_of(source_values(queries, runs, metrics), metrics)


def run_bench(
    root: Path,
    engine: Engine,
    modes: Sequence[str],
    cache_dir: Path,
    *,
    sample: int | None,
    paragraphs: int | None,
    distractors: bool,
    seed: int,
    progress: bool = False,
) -> dict[str, Any]:
    """Rank the sampled questions in every mode with ``engine``'s models and settings (its
    cross-encoder for ``accurate``)."""
    encoder, reranker, settings = engine.encoder, engine.reranker, engine.settings
    data = load_bench(root, distractors=distractors)
    queries = sample_queries(data.queries, sample, seed)
    ids = choose_paragraphs(list(data.texts), queries, paragraphs, seed)
    texts = [data.texts[i] for i in ids]
    # Corpus and distractors are cached apart, so a run with distractors reuses the corpus's.
    groups = [
        [data.texts[i] for i in ids if i not in data.distractor_ids],
        [data.texts[i] for i in ids if i in data.distractor_ids],
    ]
    vectors = np.concatenate(
        [embed_cached(encoder, group, cache_dir, progress=progress) for group in groups if group]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        corpus = paragraph_corpus(
            ids,
            texts,
            vectors,
            model=encoder.name,
            stemming=settings.bm25_stemming,
            spelling=settings.spell_correction,
        )
    runs = rank_queries(
        corpus, encoder, queries, modes, settings, progress=progress, reranker=reranker
    )
    values = source_values(queries, runs)  # ranx once per mode, for means and intervals
    scores = means_of(values)
    intervals = intervals_of(values)
    return {
        "meta": {
            "paragraphs": len(ids),
            "distractors": distractors,
            "questions": len(queries),
            "per_source": {
                s: sum(1 for q in queries if q.source == s) for s in scores if s != "all"
            },
            "sample": sample,
            "paragraph_subset": paragraphs,
            "seed": seed,
            "model": encoder.name,
            "candidates": settings.tuning.candidates,
            "rrf_k": settings.tuning.rrf_k,
            "fusion": settings.fusion,
            "dense_weight": settings.tuning.dense_weight,
            "rerank_candidates": settings.rerank_candidates,
            "rerank_first": settings.tuning.rerank_first,
            "rerank_stop": settings.tuning.rerank_stop,
            "rerank_window_words": settings.tuning.rerank_window_words,
            "rerank_window_margin": settings.tuning.rerank_window_margin,
        },
        "scores": scores,
        "intervals": intervals,
        "checks": bench_checks(scores, intervals),
    }


#: Issue 5's targets for accurate mode (500+ questions per source).
ACCURATE_TARGETS: tuple[tuple[str, str, float], ...] = (
    ("reddit", "recall@1", 0.55),
    ("reddit", "recall@5", 0.66),
    ("sq11", "recall@1", 0.87),
)


def bench_checks(
    scores: Mapping[str, Mapping[str, Mapping[str, float]]], intervals: Intervals | None = None
) -> list[dict[str, Any]]:
    """The issues' external targets: hybrid beats BM25 and dense on Recall@5 for every source,
    reddit Recall@5 >= 0.62, and accurate mode's :data:`ACCURATE_TARGETS`. Each check carries
    the 95% interval of its measured value when ``intervals`` has it (else None)."""

    def interval(source: str, mode: str, metric: str) -> tuple[float, float] | None:
        return (intervals or {}).get(source, {}).get(mode, {}).get(metric)

    checks: list[dict[str, Any]] = []
    for source, modes in scores.items():
        if source == "all":
            continue
        hybrid = modes["hybrid"]["recall@5"] if "hybrid" in modes else None
        others = {m: v["recall@5"] for m, v in modes.items() if m in ("bm25", "dense")}
        if hybrid is not None and others:
            checks.append(
                {
                    "check": f"{source}: hybrid R@5 > " + " and ".join(sorted(others)),
                    "value": hybrid,
                    "met": all(hybrid > v for v in others.values()),
                    "interval": interval(source, "hybrid", "recall@5"),
                }
            )
        if hybrid is not None and "reddit" in source:
            checks.append(
                {
                    "check": f"{source}: hybrid R@5 >= {REDDIT_TARGET}",
                    "value": hybrid,
                    "met": hybrid >= REDDIT_TARGET,
                    "interval": interval(source, "hybrid", "recall@5"),
                }
            )
        accurate = modes.get("accurate")
        for key, metric, target in ACCURATE_TARGETS:
            if accurate is not None and key in source:
                value = accurate[metric]
                checks.append(
                    {
                        "check": f"{source}: accurate {metric} >= {target}",
                        "value": value,
                        "met": value >= target,
                        "interval": interval(source, "accurate", metric),
                    }
                )
    return checks


def describe_fusion(meta: Mapping[str, Any]) -> str:
    if meta.get("fusion", "rrf") == "score":
        w = meta.get("dense_weight", 0.4)
        return f"normalised scores weighted {w:g} dense / {1 - w:g} BM25"
    return f"RRF k={meta['rrf_k']}"


def bench_markdown(result: Mapping[str, Any], command: str, date: str) -> str:
    meta = result["meta"]
    corpus = (
        f"{meta['paragraphs']} paragraphs"
        + (" (corpus + SQuAD train distractors)" if meta["distractors"] else " (corpus only)")
        + (", a subset of gold + random paragraphs" if meta["paragraph_subset"] else "")
    )
    title = "retrieval_bench" + (" with distractors" if meta["distractors"] else "")
    lines = [
        f"## External benchmark: {title}",
        "",
        f"Command: `{command}` — run {date}, model `{meta['model']}`, {corpus}; "
        f"{meta['questions']} questions "
        f"({', '.join(f'{s} {n}' for s, n in meta['per_source'].items())}, seed {meta['seed']}); "
        f"fusion: {describe_fusion(meta)} over {meta['candidates']} candidates per list; "
        f"accurate re-ranks the first {meta.get('rerank_candidates', 10)} fused candidates"
        + (
            f", stopping after {meta['rerank_first']} when one scores {meta['rerank_stop']:g}"
            if meta.get("rerank_stop") is not None
            else ""
        )
        + (
            f"; the two best are re-read in {meta['rerank_window_words']}-word windows when "
            f"within {meta['rerank_window_margin']:g} logits of each other."
            if meta.get("rerank_window_words")
            else "."
        ),
        "",
        "| source | mode | R@1 | R@5 | MRR@10 | nDCG@10 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for source, modes in result["scores"].items():
        for mode, m in modes.items():
            lines.append(
                f"| {source} | {mode} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | "
                f"{m['mrr@10']:.3f} | {m['ndcg@10']:.3f} |"
            )
    lines += [
        "",
        "| target | measured | 95% interval | met |",
        "|---|---:|---:|---|",
    ]
    for c in result["checks"]:
        span = c.get("interval")
        shown = f"{span[0]:.3f}–{span[1]:.3f}" if span else "–"
        met = "yes" if c["met"] else "**no**"
        lines.append(f"| {c['check']} | {c['value']:.3f} | {shown} | {met} |")
    lines += [
        "",
        "The interval is a bootstrap over the sampled questions (2,000 resamples): where the "
        "whole question pool would most likely put the figure. A target inside the interval "
        "is missed, or met, by less than the sample can tell.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- SQuAD 2.0


def squad2_questions(articles: Sequence[Any], sample: int | None, seed: int) -> list[EvalQuestion]:
    """The articles' questions as eval questions; ``sample`` of each kind (answerable,
    unanswerable) when given, fixed by ``seed``."""
    answerable: list[EvalQuestion] = []
    unanswerable: list[EvalQuestion] = []
    for article in articles:
        text = article.document.text
        for q in article.questions:
            if q.impossible:
                unanswerable.append(
                    EvalQuestion(q.id, q.question, "unanswerable", q.doc_id, (), (), "")
                )
            else:
                first = q.answers[0]
                answerable.append(
                    EvalQuestion(
                        q.id,
                        q.question,
                        "answerable",
                        q.doc_id,
                        (q.paragraph,),
                        q.answers,
                        text[first.start : first.end],
                    )
                )
    rng = random.Random(seed)

    def pick(pool: list[EvalQuestion]) -> list[EvalQuestion]:
        return pool if sample is None or len(pool) <= sample else rng.sample(pool, sample)

    return pick(answerable) + pick(unanswerable)


def run_squad2(
    path: Path,
    engine: Engine,
    modes: Sequence[str],
    cache_dir: Path,
    *,
    sample: int | None,
    articles: int | None,
    seed: int,
    progress: bool = False,
) -> dict[str, Any]:
    """Index the chosen articles and ask their questions through ``engine`` in every mode."""
    from eval.squad import load_squad2

    encoder = engine.encoder

    every = load_squad2(path)
    chosen = every
    if articles is not None and articles < len(every):
        titles = sorted(random.Random(seed).sample([a.document.id for a in every], articles))
        chosen = [a for a in every if a.document.id in titles]
    questions = squad2_questions(chosen, sample, seed)
    corpus = open_eval_corpus(
        [a.document for a in chosen],
        encoder,
        engine.settings,
        index_dir_for(cache_dir / "squad2", encoder),
        progress=progress,
    )
    outcomes = run_questions(questions, corpus, engine, modes, progress=progress)
    threshold = 0.0  # outcomes hold margins over each mode's own threshold
    results: dict[str, Any] = {}
    for mode, items in outcomes.items():
        summary = summarize_by_category(items, threshold)
        results[mode] = {
            m: (None if summary.overall[m] is None else round(float(summary.overall[m] or 0), 4))
            for m in SQUAD2_METRICS
        }
    return {
        "meta": {
            "articles": [a.document.id for a in chosen],
            "paragraphs": sum(len(a.paragraph_spans) for a in chosen),
            "answerable": sum(1 for q in questions if q.answerable),
            "unanswerable": sum(1 for q in questions if not q.answerable),
            "sample": sample,
            "seed": seed,
            "model": encoder.name,
            "abstain_threshold": mode_thresholds(outcomes),
        },
        "modes": results,
    }


def squad2_markdown(result: Mapping[str, Any], command: str, date: str) -> str:
    meta = result["meta"]
    labels = {
        "recall@1": "R@1",
        "recall@5": "R@5",
        "answer_hit": "answer hit",
        "span_iou": "span IoU",
        "quote_exactness": "quote exact",
        "abstention_recall": "abst. recall",
        "abstention_precision": "abst. precision",
        "false_abstention": "false abst.",
    }
    lines = [
        "## External benchmark: SQuAD 2.0 dev (answer spans and abstention)",
        "",
        f"Command: `{command}` — run {date}, model `{meta['model']}`, abstention thresholds "
        f"{describe_thresholds(meta['abstain_threshold'])}; {len(meta['articles'])} articles "
        f"({', '.join(f'`{a}`' for a in meta['articles'])}; {meta['paragraphs']} paragraphs) "
        f"indexed together; {meta['answerable']} answerable "
        f"and {meta['unanswerable']} unanswerable questions (seed {meta['seed']}). SQuAD's "
        "unanswerable questions are adversarial (same article, a fact it lacks).",
        "",
        "| mode | " + " | ".join(labels.values()) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for mode, m in result["modes"].items():
        cells = ["–" if m[k] is None else f"{m[k]:.3f}" for k in labels]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
