"""When may the cross-encoder stop reading? The early-stop rule of the accurate mode, measured.

``python -m bench.rerank_stop [--per-source 300] [--squad2 600] [--write]`` takes two kinds of
questions, neither of them reported elsewhere, so that the rule is not chosen on the questions
it is reported on:

- retrieval_bench questions *not* in the reported sample (``rag eval bench ... --sample
  500``, seed 13): one corpus of paragraphs on every topic;
- SQuAD 2.0 dev answerable questions about articles *other* than the own question set's,
  with every dev article indexed: many paragraphs on the same topic, as in an op-ed, where
  several passages read as relevant and stopping early is riskier.

For each it retrieves the fused first stage as the service does and has the cross-encoder
score the first ``rerank_candidates`` passages, once. Each rule is then replayed on those
scores: read the first ``first`` passages; if the best of them scores ``stop`` or more, stop,
else read the rest. The table gives Recall@1 / Recall@5 per source and the passages read per
question, against reading all of them. With ``--write`` it goes into ``eval/report.md``
(section ``rerank-stop``).
"""

from __future__ import annotations

import argparse
import random
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.common import RETRIEVAL_BENCH, load_models, publish, report_command
from core.types import Hit
from eval.bench import BenchQuery, embed_cached, load_bench, paragraph_corpus, sample_queries
from eval.dataset import SQUAD_QUESTIONS, load_question_set, paragraph_id
from eval.runner import REPO, index_dir_for, open_eval_corpus
from eval.squad import DEFAULT_PATH as SQUAD2
from eval.squad import SquadQuestion
from rag.embed import Encoder
from rag.rerank import CrossEncoderReranker
from rag.retrieve import Corpus, retrieve
from rag.settings import Settings

#: The reported sample (``rag eval bench``'s defaults), kept out of the tuning questions.
REPORTED_SAMPLE, REPORTED_SEED = 500, 13
RULES: tuple[tuple[int, float | None], ...] = (
    (10, None),
    *((first, stop) for first in (1, 2, 3, 4) for stop in (0.0, 2.0, 4.0, 6.0)),
)


@dataclass(frozen=True)
class Scored:
    """One question's fused candidates (paragraph ids, best first) and their logits."""

    source: str
    relevant: frozenset[str]
    ids: tuple[str, ...]
    logits: tuple[float, ...]
    tokens: tuple[int, ...]  # words per candidate: what reading it costs


def tuning_questions(queries: Sequence[BenchQuery], per_source: int, seed: int) -> list[BenchQuery]:
    reported = {q.id for q in sample_queries(queries, REPORTED_SAMPLE, REPORTED_SEED)}
    pool = [q for q in queries if q.id not in reported and q.source != "seed"]
    rng = random.Random(seed)
    chosen: list[BenchQuery] = []
    for source in sorted({q.source for q in pool}):
        group = sorted((q for q in pool if q.source == source), key=lambda q: q.id)
        chosen.extend(rng.sample(group, min(per_source, len(group))))
    return chosen


def first_candidates(
    corpus: Corpus, encoder: Encoder, settings: Settings, questions: Sequence[str]
) -> list[list[Hit]]:
    """The fused first stage's ``rerank_candidates`` hits per question, as the service's."""
    vectors = encoder.encode(list(questions), kind="query")
    return [
        retrieve(
            corpus,
            vec,
            corpus.lexical.terms(q),
            mode="hybrid",
            top_k=settings.rerank_candidates,
            candidates=settings.tuning.candidates,
            rrf_k=settings.tuning.rrf_k,
            fusion=settings.fusion,
            dense_weight=settings.tuning.dense_weight,
        )
        for q, vec in zip(questions, vectors, strict=True)
    ]


def read_all(
    reranker: CrossEncoderReranker,
    question: str,
    hits: Sequence[Hit],
    source: str,
    relevant: frozenset[str],
    key: Callable[[Hit], str],
) -> Scored:
    passages = [h.chunk.text for h in hits]
    return Scored(
        source=source,
        relevant=relevant,
        ids=tuple(key(h) for h in hits),
        logits=tuple(float(x) for x in reranker.score(question, passages)),
        tokens=tuple(len(p.split()) for p in passages),
    )


def bench_candidates(
    root: Path, per_source: int, seed: int, encoder: Encoder
) -> tuple[list[BenchQuery], list[list[Hit]]]:
    """The tuning questions of retrieval_bench and their fused candidates over its corpus."""
    settings = Settings()
    data = load_bench(root)
    questions = tuning_questions(data.queries, per_source, seed)
    ids = list(data.texts)
    texts = [data.texts[i] for i in ids]
    vectors = embed_cached(encoder, texts, REPO / "var" / "cache", progress=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        corpus = paragraph_corpus(
            ids, texts, vectors, model=encoder.name, stemming=settings.bm25_stemming
        )
    return questions, first_candidates(corpus, encoder, settings, [q.text for q in questions])


def score_bench(
    root: Path, per_source: int, seed: int, encoder: Encoder, reranker: CrossEncoderReranker
) -> list[Scored]:
    questions, hits = bench_candidates(root, per_source, seed, encoder)
    return [
        read_all(reranker, q.text, h, q.source, frozenset(q.relevant), lambda x: x.chunk.doc_id)
        for q, h in tqdm(list(zip(questions, hits, strict=True)), desc="scoring bench")
    ]


def squad2_outside_own(
    path: Path, n: int, seed: int, encoder: Encoder, settings: Settings
) -> tuple[list[SquadQuestion], Corpus]:
    """``n`` answerable SQuAD 2.0 dev questions about articles other than the own question
    set's (seeded sample), and a corpus of every dev article (cached index)."""
    from eval.squad import load_squad2

    articles = load_squad2(path)
    own = set(load_question_set(SQUAD_QUESTIONS, squad_path=path).documents)
    pool = [
        q for a in articles if a.document.id not in own for q in a.questions if not q.impossible
    ]
    questions = random.Random(seed).sample(pool, min(n, len(pool)))
    corpus = open_eval_corpus(
        [a.document for a in articles],
        encoder,
        settings,
        index_dir_for(REPO / "var" / "cache" / "squad2-all", encoder),
        progress=True,
    )
    return questions, corpus


def squad2_candidates(
    path: Path, n: int, seed: int, encoder: Encoder
) -> tuple[list[SquadQuestion], list[list[Hit]]]:
    """:func:`squad2_outside_own`'s questions and their fused candidates."""
    settings = Settings()
    questions, corpus = squad2_outside_own(path, n, seed, encoder, settings)
    return questions, first_candidates(corpus, encoder, settings, [q.question for q in questions])


def squad2_key(hit: Hit) -> str:
    return paragraph_id(hit.chunk.doc_id, hit.chunk.paragraph)


def score_squad2(
    path: Path, n: int, seed: int, encoder: Encoder, reranker: CrossEncoderReranker
) -> list[Scored]:
    questions, hits = squad2_candidates(path, n, seed, encoder)
    return [
        read_all(
            reranker,
            q.question,
            h,
            "squad2",
            frozenset({paragraph_id(q.doc_id, q.paragraph)}),
            squad2_key,
        )
        for q, h in tqdm(list(zip(questions, hits, strict=True)), desc="scoring squad2")
    ]


def replay(s: Scored, first: int, stop: float | None) -> tuple[list[str], int]:
    """The ranking under the rule, and how many passages it read (as ``rerank_hits``)."""
    n = len(s.ids) if stop is None else min(first, len(s.ids))
    if stop is not None and n < len(s.ids) and max(s.logits[:n]) < stop:
        n = len(s.ids)
    order = sorted(range(n), key=lambda i: (-s.logits[i], i))
    return [s.ids[i] for i in order] + list(s.ids[n:]), n


def recall_by_source(
    found: Mapping[str, Sequence[tuple[bool, bool]]],
) -> tuple[dict[str, tuple[float, float]], float]:
    """Per source, (Recall@1, Recall@5) from each question's (top hit relevant, any of the
    top 5 relevant); and Recall@1 averaged over the sources."""
    cells = {
        src: (float(np.mean([a for a, _ in v])), float(np.mean([b for _, b in v])))
        for src, v in found.items()
    }
    return cells, float(np.mean([r1 for r1, _ in cells.values()]))


def rule_row(row: Mapping[str, object], sources: Sequence[str]) -> str:
    """A table row's rule, Recall@1 / Recall@5 cells and mean Recall@1 (open at the end)."""
    cells = row["sources"]
    assert isinstance(cells, dict)
    return (
        f"| {row['rule']} | "
        + " | ".join(f"{cells[s][0]:.3f} / {cells[s][1]:.3f}" for s in sources)
        + f" | {row['r1']:.3f} |"
    )


def tuning_parser(prog: str, description: str | None, squad2: int) -> argparse.ArgumentParser:
    """The options of the benchmarks that replay a rule on the tuning questions."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--per-source", type=int, default=300, help="retrieval_bench")
    parser.add_argument("--squad2", type=int, default=squad2, help="SQuAD 2.0 questions")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bench", type=Path, default=RETRIEVAL_BENCH, help="retrieval_bench")
    parser.add_argument("--write", action="store_true", help="update eval/report.md")
    return parser


def table(scored: Sequence[Scored]) -> list[dict[str, object]]:
    sources = sorted({s.source for s in scored})
    full_cost = sum(sum(s.tokens) for s in scored)
    rows: list[dict[str, object]] = []
    for first, stop in RULES:
        per: dict[str, list[tuple[bool, bool]]] = {src: [] for src in sources}
        read, cost, stopped = [], 0, 0
        for s in scored:
            ranked, n = replay(s, first, stop)
            per[s.source].append((ranked[0] in s.relevant, bool(s.relevant & set(ranked[:5]))))
            read.append(n)
            cost += sum(s.tokens[:n])
            stopped += n < len(s.ids)
        cells, r1 = recall_by_source(per)
        rows.append(
            {
                "rule": "read all" if stop is None else f"first {first}, stop at {stop:g}",
                "sources": cells,
                "r1": r1,
                "read": float(np.mean(read)),
                "cost": cost / full_cost,
                "stopped": stopped / len(scored),
            }
        )
    return rows


def markdown(rows: Sequence[dict[str, object]], command: str, n: int) -> str:
    first = rows[0]["sources"]
    assert isinstance(first, dict)
    sources = list(first)
    lines = [
        "## Reranker early stop (accurate mode)",
        "",
        f"Command: `{command}`. {n} questions: retrieval_bench questions outside the reported "
        "sample (one corpus on every topic), and SQuAD 2.0 dev answerable questions on "
        "articles other than the own set's, every dev article indexed (*squad2*: many "
        "paragraphs on one topic, as in an op-ed). The cross-encoder scores the first 10 "
        "fused candidates once and each rule is replayed on those scores. Cells are "
        "Recall@1 / Recall@5; *R@1 mean* is over the sources; *read* is passages read per "
        "question, "
        "*tokens* the share of the tokens of reading all, *stopped* the share of questions "
        "answered from the first passages alone.",
        "",
        "| rule | " + " | ".join(sources) + " | R@1 mean | read | tokens | stopped |",
        "|---|" + "---:|" * (len(sources) + 4),
    ]
    for r in rows:
        lines.append(
            rule_row(r, sources) + f" {r['read']:.2f} | {r['cost']:.2f} | {r['stopped']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = tuning_parser("python -m bench.rerank_stop", __doc__, 600).parse_args(argv)
    if not (args.bench / "queries.jsonl").is_file() or not SQUAD2.is_file():
        print(f"skipped: no {args.bench} or {SQUAD2} (../shared/benchmarks absent)")
        return 0
    encoder, reranker = load_models(Settings())
    scored = score_bench(args.bench, args.per_source, args.seed, encoder, reranker)
    scored += score_squad2(SQUAD2, args.squad2, args.seed, encoder, reranker)
    text = markdown(table(scored), report_command("bench.rerank_stop", argv), len(scored))
    publish(text, "rerank-stop", args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
