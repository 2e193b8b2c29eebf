"""Scores speaker attribution (rag/attribution.py) against the hand-labelled sentences.

``python -m eval.attribution`` reads ``eval/attribution/seed.jsonl`` (every sentence of the seed
article), ``eval/attribution/standins.jsonl`` (sentences of the stand-in corpora, read back
from ``../shared/benchmarks`` by their source id and offsets: the benchmark text is never copied
here), ``eval/attribution/dev.jsonl`` (one sentence with a reporting cue word from each of
further Reddit, Amazon, new-Wikipedia and SQuAD paragraphs, drawn by ``python -m
eval.attribution_draw`` with seed 20261208 after the held-out set, for developing rules on
informal text) and ``eval/attribution/heldout.jsonl`` (sentences of other paragraphs of the same
corpora, chosen and labelled the same way after the rules were revised on the stand-ins, and
never used to tune them) and ``eval/attribution/heldout2.jsonl`` (a second held-out set,
drawn by ``python -m eval.attribution_draw --round 4`` and labelled before version 5 of the
rules was written; version 6 was written while reading its errors) and
``eval/attribution/heldout3.jsonl`` (the third, drawn by ``--round 5`` and labelled before
version 6 was written; version 7 was written while reading its errors) and
``eval/attribution/heldout4.jsonl`` (the fourth, drawn by ``--round 6`` and labelled before
version 7 was written; version 8 was written while reading its errors) and
``eval/attribution/heldout5.jsonl`` (the fifth, drawn by ``--round 7`` and labelled before
version 8 was written; version 9 was written while reading its errors) and
``eval/attribution/heldout6.jsonl`` (the sixth, drawn by ``--round 8`` and labelled before
version 9 was written; its errors are not read) and ``eval/attribution/heldout7.jsonl`` (the
seventh, drawn by ``--round 9`` and labelled before version 10 was written; its errors are not
read), runs the attribution over each source document,
and prints and writes (``eval/attribution/report.json``) for each part:

* speaker precision and recall over reported sentences: a prediction is right when it says
  "reported" for a sentence labelled reported and names the labelled speaker (any of the listed
  names; a surname matches its full name, see :func:`speaker_matches`);
* voice accuracy (reported or author) over all labelled sentences;
* exactness of the mention and content spans on the rightly attributed sentences: exact match,
  and token-overlap F1 for the content.

``docs/attribution.md`` states the labelling rules and the figures measured.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from core.types import Chunk, Document, DocumentMeta, Span
from rag.attribution import Attribution, Parse, Parser, analyse_many, normalise
from rag.attribution import load as load_parser
from rag.chunk import chunk_document
from rag.load import load_document

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "eval" / "attribution"
SEED_ARTICLE = ROOT / "data" / "sasse-coalition-of-the-willing.txt"
BENCHMARKS = ROOT.parent / "shared" / "benchmarks"
REPORT = LABELS / "report.json"
PARTS = (
    "seed",
    "standins",
    "dev",
    "heldout",
    "heldout2",
    "heldout3",
    "heldout4",
    "heldout5",
    "heldout6",
    "heldout7",
)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Gold:
    part: str
    source: str
    doc_id: str
    sentence: Span
    text: str
    voice: str  # "reported" | "author"
    speakers: tuple[str, ...]  # the names the labelled speaker goes by; empty for the author
    mention: Span | None
    content: Span | None


@dataclass
class PartScore:
    sentences: int = 0
    gold_reported: int = 0
    predicted_reported: int = 0
    correct: int = 0  # reported, right speaker
    voice_correct: int = 0
    unaligned: int = 0  # gold sentences the chunker did not produce as one sentence
    mention_exact: int = 0
    content_exact: int = 0
    content_f1_sum: float = 0.0
    errors: list[dict[str, object]] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.correct / self.predicted_reported if self.predicted_reported else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.gold_reported if self.gold_reported else 0.0

    def summary(self) -> dict[str, float | int]:
        c = self.correct or 1
        return {
            "sentences": self.sentences,
            "gold_reported": self.gold_reported,
            "predicted_reported": self.predicted_reported,
            "correct": self.correct,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "voice_accuracy": round(self.voice_correct / (self.sentences or 1), 4),
            "mention_exact": round(self.mention_exact / c, 4),
            "content_exact": round(self.content_exact / c, 4),
            "content_token_f1": round(self.content_f1_sum / c, 4),
            "unaligned": self.unaligned,
        }


def read_labels(path: Path) -> list[Gold]:
    out: list[Gold] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        speakers = r.get("speaker") or []
        out.append(
            Gold(
                part=r["part"],
                source=r["source"],
                doc_id=r["doc_id"],
                sentence=Span(*r["sentence"]),
                text=r["text"],
                voice=r["voice"],
                speakers=tuple(speakers),
                mention=Span(*r["mention"]) if r.get("mention") else None,
                content=Span(*r["content"]) if r.get("content") else None,
            )
        )
    return out


def _standin_texts(ids: set[str], benchmarks: Path) -> dict[str, str]:
    """The stand-in paragraphs by id: retrieval_bench corpus ids (the distractor file's too) and
    ``squad2:Title#n``."""
    texts: dict[str, str] = {}
    files = [benchmarks / "retrieval_bench" / "corpus.jsonl"]
    if any(i.startswith("sq11train-") for i in ids):  # the distractor file's paragraphs
        files.append(benchmarks / "retrieval_bench" / "corpus_distractors_squad11_train.jsonl")
    for corpus in files:
        with corpus.open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                if row["_id"] in ids:
                    texts[row["_id"]] = row["text"]
    if any(i.startswith("squad2:") for i in ids):
        raw = json.loads((benchmarks / "squad2_dev" / "dev-v2.0.json").read_text("utf-8"))
        for article in raw["data"]:
            for n, para in enumerate(article["paragraphs"]):
                key = f"squad2:{article['title']}#{n}"
                if key in ids:
                    texts[key] = para["context"]
    return texts


def documents(golds: Sequence[Gold], benchmarks: Path = BENCHMARKS) -> dict[str, Document]:
    """The documents the labels index: the seed article, and each stand-in paragraph as a
    document of its own (no author: its author voice is "the author")."""
    docs: dict[str, Document] = {}
    if any(g.part == "seed" for g in golds):
        seed = load_document(SEED_ARTICLE)
        docs[seed.id] = seed
    ids = {g.doc_id for g in golds if g.part != "seed"}
    if ids:
        for doc_id, text in _standin_texts(ids, benchmarks).items():
            docs[doc_id] = Document(id=doc_id, text=text, meta=DocumentMeta())
    for g in golds:
        doc = docs.get(g.doc_id)
        if doc is None:
            raise SystemExit(f"{g.source}: source text not found (is ../shared there?)")
        if doc.text[g.sentence.start : g.sentence.end] != g.text:
            raise SystemExit(f"{g.source}: the labelled sentence no longer matches its source")
    return docs


def speaker_matches(predicted: str, gold: Iterable[str]) -> bool:
    """Whether a predicted speaker name is the labelled speaker: the same name (case, a leading
    article and a possessive aside), or one name ending the other ("Merz" / "Friedrich Merz"),
    or one of the names joined in a coordinated speaker ("UK and France")."""
    p = normalise(predicted)
    if not p:
        return False
    members = {normalise(m) for m in re.split(r",|\band\b|&", predicted) if normalise(m)}
    for name in gold:
        g = normalise(name)
        if not g:
            continue
        if p == g or g in members:
            return True
        pw, gw = p.split(), g.split()
        if pw[-len(gw) :] == gw or gw[-len(pw) :] == pw:
            return True
    return False


def token_f1(text: str, a: Span, b: Span) -> float:
    ta = _WORD.findall(text[a.start : a.end].lower())
    tb = _WORD.findall(text[b.start : b.end].lower())
    if not ta or not tb:
        return float(ta == tb)
    common: dict[str, int] = {}
    for w in ta:
        common[w] = common.get(w, 0) + 1
    overlap = 0
    for w in tb:
        if common.get(w, 0) > 0:
            overlap += 1
            common[w] -= 1
    if overlap == 0:
        return 0.0
    p, r = overlap / len(tb), overlap / len(ta)
    return 2 * p * r / (p + r)


def _until(chunks: Sequence[Chunk], golds: Sequence[Gold]) -> list[Chunk]:
    last = max(g.sentence.end for g in golds)
    out = []
    for c in chunks:
        kept = tuple(sp for sp in c.sentences if sp.end <= last)
        if kept:
            out.append(replace(c, sentences=kept))
    return out


def score(
    golds: Sequence[Gold], docs: dict[str, Document], parser: Parser
) -> tuple[dict[str, PartScore], float, int]:
    """Scores per part, plus the attribution time (seconds) and the paragraphs it covered."""
    by_doc: dict[str, list[Gold]] = {}
    for g in golds:
        by_doc.setdefault(g.doc_id, []).append(g)
    scores: dict[str, PartScore] = {part: PartScore() for part in PARTS}
    # only the sentences up to the last labelled one: attribution reads earlier sentences as
    # context, never later ones, so the rest of a paragraph changes nothing here
    items = [
        (docs[doc_id], _until(chunk_document(docs[doc_id]), golds))
        for doc_id, golds in by_doc.items()
    ]
    t0 = time.perf_counter()
    results = analyse_many(items, parser)
    elapsed = time.perf_counter() - t0
    paragraphs = sum(len({c.paragraph for c in chunks}) for _, chunks in items)
    for (doc, _), result in zip(items, results, strict=True):
        predicted = {(a.sentence.start, a.sentence.end): a for a in result.attributions}
        for g in by_doc[doc.id]:
            part = scores.setdefault(g.part, PartScore())
            _score_one(part, g, doc, predicted.get((g.sentence.start, g.sentence.end)))
    return scores, elapsed, paragraphs


def by_source(golds: Sequence[Gold]) -> list[Gold]:
    """``golds`` with each part split by the corpus its sentence comes from ("heldout/shreddit":
    the source id's first word; "squad2" for SQuAD 2.0 paragraphs), for ``--by-source``."""
    return [replace(g, part=f"{g.part}/{re.split(r'[-:]', g.source)[0]}") for g in golds]


def _score_one(s: PartScore, g: Gold, doc: Document, a: Attribution | None) -> None:
    s.sentences += 1
    if a is None:
        s.unaligned += 1
    voice = a.voice if a is not None else "author"
    gold_reported = g.voice == "reported"
    s.gold_reported += gold_reported
    s.predicted_reported += voice == "reported"
    s.voice_correct += voice == g.voice
    right = (
        a is not None
        and gold_reported
        and voice == "reported"
        and speaker_matches(a.speaker, g.speakers)
    )
    if right and a is not None and g.content is not None:
        s.correct += 1
        s.mention_exact += a.mention == g.mention
        s.content_exact += a.content == g.content
        s.content_f1_sum += token_f1(doc.text, g.content, a.content)
    elif voice == "reported" or gold_reported:
        s.errors.append(
            {
                "source": g.source,
                "sentence": g.text,
                "gold": list(g.speakers) or "author",
                "predicted": a.speaker if a is not None and voice == "reported" else "author",
            }
        )


def render(scores: dict[str, PartScore]) -> str:
    w = max(10, *(len(part) + 1 for part in scores))
    head = (
        f"{'part':<{w}}{'sents':>6}{'gold':>6}{'pred':>6}{'P':>8}{'R':>8}{'voice':>8}"
        f"{'mention=':>10}{'content=':>10}{'contentF1':>10}"
    )
    lines = [head]
    for part, s in scores.items():
        m = s.summary()
        lines.append(
            f"{part:<{w}}{m['sentences']:>6}{m['gold_reported']:>6}{m['predicted_reported']:>6}"
            f"{s.precision:>8.3f}{s.recall:>8.3f}{m['voice_accuracy']:>8.3f}"
            f"{m['mention_exact']:>10.3f}{m['content_exact']:>10.3f}{m['content_token_f1']:>10.3f}"
        )
    return "\n".join(lines)


def run(
    parser: Parser | None = None,
    label_dir: Path = LABELS,
    benchmarks: Path = BENCHMARKS,
    parts: Sequence[str] = PARTS,
) -> tuple[dict[str, PartScore], float, int]:
    golds = [g for part in parts for g in read_labels(label_dir / f"{part}.jsonl")]
    docs = documents(golds, benchmarks)
    return score(golds, docs, parser or load_parser())


@dataclass(frozen=True)
class Timing:
    documents: int
    paragraphs: int
    index_seconds: float  # rag.build.embed_documents without a parse (every sentence "author")
    with_attribution_seconds: float  # the same with the spaCy parse, as indexing runs it

    def summary(self) -> dict[str, float | int]:
        per = max(self.paragraphs, 1)
        return {
            "documents": self.documents,
            "paragraphs": self.paragraphs,
            "index_ms_per_paragraph": round(1000 * self.index_seconds / per, 2),
            "attribution_ms_per_paragraph": round(
                1000 * (self.with_attribution_seconds - self.index_seconds) / per, 2
            ),
            "ratio_with_attribution": round(
                self.with_attribution_seconds / max(self.index_seconds, 1e-9), 3
            ),
        }


class NoParse:
    """A :class:`Parser` that finds no structure: every sentence is then the author's voice,
    at no cost. Indexing with it is indexing without attribution."""

    def parse(self, texts: Sequence[str]) -> list[Parse]:
        return [Parse(()) for _ in texts]


def timing(docs: Sequence[Document], parser: Parser, repeats: int = 3) -> Timing:
    """Indexing time (chunk, attribute, embed: rag.build.embed_documents with the bundled
    encoder) with ``parser`` against the same without a parse (:class:`NoParse`); the best
    of ``repeats`` runs of each, alternated, since the machine is shared."""
    from rag.build import embed_documents
    from rag.engine import Engine
    from rag.settings import get_settings

    settings = get_settings()
    encoder = Engine(settings, use_reranker="off").load_models().encoder
    paragraphs = sum(
        len(
            {
                c.paragraph
                for c in chunk_document(
                    d, max_tokens=encoder.max_tokens, count_tokens=encoder.count_tokens
                )
            }
        )
        for d in docs
    )
    embed_documents(docs[:1], encoder, progress=False, parser=parser)  # warm up
    best_plain = best_with = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        embed_documents(docs, encoder, progress=False, parser=NoParse())
        best_plain = min(best_plain, time.perf_counter() - t0)
        t0 = time.perf_counter()
        embed_documents(docs, encoder, progress=False, parser=parser)
        best_with = min(best_with, time.perf_counter() - t0)
    return Timing(len(docs), paragraphs, best_plain, best_with)


def timing_documents(benchmarks: Path = BENCHMARKS) -> list[Document]:
    """The seed article and the SQuAD 2.0 dev articles (whole multi-paragraph documents, as
    an index holds them)."""
    from eval.squad import load_squad2

    path = benchmarks / "squad2_dev" / "dev-v2.0.json"
    return [load_document(SEED_ARTICLE), *(a.document for a in load_squad2(path))]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.attribution", description=__doc__)
    ap.add_argument("--out", type=Path, default=REPORT, help="where to write the JSON report")
    ap.add_argument("--errors", action="store_true", help="print the wrongly attributed sentences")
    ap.add_argument("--part", choices=PARTS, action="append", help="score only this part")
    ap.add_argument(
        "--by-source",
        action="store_true",
        help="also score each part per corpus (SQuAD, new-Wikipedia, Reddit ...); prints only",
    )
    ap.add_argument(
        "--timing",
        action="store_true",
        help="also time attribution against today's indexing (chunk + embed) per paragraph",
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    parser = load_parser()
    load_s = time.perf_counter() - t0
    scores, elapsed, paragraphs = run(parser, parts=args.part or PARTS)
    print(render(scores))
    print(
        f"attribution of the labelled documents: {elapsed:.2f} s; model load {load_s:.1f} s "
        "(--timing compares it with indexing)"
    )
    if args.by_source:
        golds = [g for part in args.part or PARTS for g in read_labels(LABELS / f"{part}.jsonl")]
        split, _, _ = score(by_source(golds), documents(golds), parser)
        print(render({part: s for part, s in split.items() if s.sentences}))
    if args.errors:
        for part, s in scores.items():
            for e in s.errors:
                print(f"[{part}] gold={e['gold']} predicted={e['predicted']}: {e['sentence']}")
    t = None
    if args.timing:
        t = timing(timing_documents(), parser).summary()
        print(
            f"timing over {t['documents']} documents, {t['paragraphs']} paragraphs: indexing "
            f"{t['index_ms_per_paragraph']} ms/paragraph, attribution "
            f"{t['attribution_ms_per_paragraph']} ms/paragraph, indexing with attribution = "
            f"{t['ratio_with_attribution']}x today's"
        )
    write_report(args.out, scores, elapsed, paragraphs, t)
    print(f"wrote {args.out}")
    return 0


def write_report(
    out: Path,
    scores: dict[str, PartScore],
    elapsed: float,
    paragraphs: int,
    timed: Mapping[str, float | int] | None = None,
) -> None:
    """``eval/attribution/report.json``: the figures per part, the misattributed sentences and,
    when measured, the indexing time (this command and ``rag eval attribution`` both write it,
    so it cannot drift from ``eval/report.md``)."""
    report: dict[str, object] = {
        "parts": {part: s.summary() for part, s in scores.items()},
        "attribution_seconds": round(elapsed, 3),
        "paragraphs": paragraphs,
        "errors": {part: s.errors for part, s in scores.items()},
    }
    if timed is not None:
        report["timing"] = timed
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "Gold",
    "PartScore",
    "asdict",
    "main",
    "read_labels",
    "run",
    "score",
    "speaker_matches",
    "write_report",
]
