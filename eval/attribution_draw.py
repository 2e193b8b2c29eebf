"""Draws the candidate sentences of the attribution dev set (``eval/attribution/dev.jsonl``)
and of the second held-out set (``eval/attribution/heldout2.jsonl``).

``python -m eval.attribution_draw`` reads the retrieval_bench corpus from
``../shared/benchmarks`` and, for each of the corpora in :data:`COUNTS` (Reddit, Amazon
reviews, new Wikipedia articles, SQuAD 1.1 dev), shuffles its paragraphs with
``random.Random(SEED)`` (one generator, the corpora in that order, each corpus's ids sorted
before its shuffle), leaving out every paragraph already in ``standins.jsonl`` or
``heldout.jsonl``. It walks the shuffled paragraphs and takes one sentence per paragraph, chosen
at random among the paragraph's sentences (the chunker's, :func:`rag.chunk.chunk_document`)
that hold a reporting cue (:data:`CUES`, whole words, any case), until the corpus has its
count. Paragraphs without a cue sentence are skipped.

``--round 2`` draws a second batch the same way with ``random.Random(20261209)``
(:data:`ROUNDS`: sq11dev 50, shnewwiki 50, shreddit 90, shamazon 40, in that order). It also
leaves out every paragraph round 1 drew (so every paragraph of round 1's labels in
``dev.jsonl``; round 1 is drawn again for their ids, which keeps round 2 the same once its own
labels are appended there), and it keeps only the sentences where a cue is a verb form that
follows a third-person subject (:data:`SUBJECT_CUE`): a word other than I, we or you directly
before a third-person form of a cue (:data:`THIRD_PERSON_CUES`; not the noun-like "states"), or
"according to".

``--round 3`` (seed 20261210) draws more development candidates the same way as round 2,
leaving out the paragraphs of rounds 1 and 2; ``--round 4`` (seed 20261211) draws the second
held-out set (``heldout2.jsonl``, part ``heldout2``), leaving out rounds 1 to 3; ``--round 5``
(seed 20261213) draws the third (``heldout3.jsonl``, part ``heldout3``) the same way, leaving out
rounds 1 to 4, before the second held-out set's errors were read; ``--round 6`` (seed 20261214)
draws the fourth (``heldout4.jsonl``, part ``heldout4``), leaving out rounds 1 to 5, before the
third held-out set's errors were read. New-Wikipedia and Reddit being used up, it draws from
SQuAD 1.1 dev, Amazon reviews and the SQuAD 1.1 train paragraphs of the distractor file
(:data:`DISTRACTORS`). ``--round 7`` (seed 20261215) draws the fifth (``heldout5.jsonl``, part
``heldout5``) from Amazon reviews and SQuAD 1.1 train paragraphs, leaving out rounds 1 to 6,
before the fourth held-out set's errors were read; ``--round 8`` (seed 20261216) draws the
sixth (``heldout6.jsonl``, part ``heldout6``) the same way, leaving out rounds 1 to 7, before
the fifth held-out set's errors were read; ``--round 9`` (seed 20261217) draws the seventh
(``heldout7.jsonl``, part ``heldout7``), leaving out rounds 1 to 8, before version 10 was
written. Each round is drawn once per process.

The candidates are printed as JSON lines (or written to ``--out``), with the fields the
labelled files share (part, source, doc_id, paragraph, sentence, text, corpus, sentence_index)
and the cue words found; they are labelled by hand, and nothing is written into the
repository.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from core.types import Document, DocumentMeta
from eval.attribution import read_labels
from rag.chunk import chunk_document

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "eval" / "attribution"
BENCHMARKS = ROOT.parent / "shared" / "benchmarks"
CORPUS = BENCHMARKS / "retrieval_bench" / "corpus.jsonl"
#: SQuAD 1.1 train paragraphs (``sq11train-*``) beside the corpus: rounds 6 to 9 draw from
#: them, the other corpora being nearly used up.
DISTRACTORS = "corpus_distractors_squad11_train.jsonl"
SEED = 20261208
PART = "dev"
#: Candidates per corpus (the ``_id`` prefix), drawn in this order.
COUNTS: dict[str, int] = {"shreddit": 110, "shamazon": 50, "shnewwiki": 45, "sq11dev": 45}
#: Labelled paragraphs that are never drawn again.
EXCLUDED_FILES = ("standins.jsonl", "heldout.jsonl")
#: The reporting cue words, each inflection listed; "according to" is a phrase.
CUES: tuple[str, ...] = (
    "say", "said", "says", "saying",
    "tell", "told", "tells",
    "state", "stated", "states",
    "claim", "claimed", "claims",
    "argue", "argued", "argues",
    "according to",
    "add", "added",
    "announce", "announced",
    "explain", "explained",
    "suggest", "suggested",
    "believe", "believes", "believed",
    "think", "thinks", "thought",
    "feel", "feels", "felt",
    "insist", "insisted",
    "warn", "warned",
    "report", "reported",
    "write", "wrote", "writes",
    "ask", "asked",
    "reply", "replied",
    "admit", "admitted",
    "complain", "complained",
    "mention", "mentioned",
    "recommend", "recommended",
    "promise", "promised",
    "deny", "denied",
    "agree", "agreed",
    "want", "wanted",
)  # fmt: skip
CUE = re.compile(
    r"\b(?:" + "|".join(re.escape(c).replace(r"\ ", r"\s+") for c in CUES) + r")\b",
    re.IGNORECASE,
)
#: The cue forms that follow a third-person subject (round 2): the -s and past forms of
#: :data:`CUES`, "according to" aside, but not "states", which after a word is nearly always
#: the noun ("United States", "member states").
THIRD_PERSON_CUES: tuple[str, ...] = (
    "says", "said", "tells", "told", "stated", "claims", "claimed",
    "argues", "argued", "added", "announced", "explained", "suggested",
    "believes", "believed", "thinks", "thought", "feels", "felt", "insisted", "warned",
    "reported", "wrote", "writes", "asked", "replied", "admitted", "complained",
    "mentioned", "recommended", "promised", "denied", "agreed", "wanted",
)  # fmt: skip
#: A whole word (letters, apostrophes, hyphens) other than I, we or you (nor their contractions:
#: "I'd", "you're") directly before a third-person cue form, or "according to"; any case.
SUBJECT_CUE = re.compile(
    r"(?<![A-Za-z'’-])(?!(?:i|we|you)(?![A-Za-z]))[A-Za-z'’-]+\s+(?:"
    + "|".join(THIRD_PERSON_CUES)
    + r")\b|\baccording\s+to\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Round:
    """One draw: its generator seed, its counts, and what else it requires and leaves out."""

    seed: int
    counts: dict[str, int]
    #: A sentence must also match this to be a candidate (None: any cue sentence).
    require: re.Pattern[str] | None = None
    #: Leave out every paragraph these earlier rounds drew.
    after: tuple[int, ...] = ()
    #: The labelled part its candidates go to.
    part: str = PART


ROUNDS: dict[int, Round] = {
    1: Round(SEED, COUNTS),
    2: Round(
        20261209,
        {"sq11dev": 50, "shnewwiki": 50, "shreddit": 90, "shamazon": 40},
        require=SUBJECT_CUE,
        after=(1,),
    ),
    3: Round(
        20261210,
        {"sq11dev": 40, "shnewwiki": 40, "shreddit": 100, "shamazon": 20},
        require=SUBJECT_CUE,
        after=(1, 2),
    ),
    4: Round(
        20261211,
        {"sq11dev": 70, "shnewwiki": 60, "shreddit": 90},
        require=SUBJECT_CUE,
        after=(1, 2, 3),
        part="heldout2",
    ),
    5: Round(
        20261213,
        # new-Wikipedia and Reddit have only 38 and 81 paragraphs left with such a sentence
        {"sq11dev": 100, "shnewwiki": 35, "shreddit": 80},
        require=SUBJECT_CUE,
        after=(1, 2, 3, 4),
        part="heldout3",
    ),
    6: Round(
        20261214,
        # new-Wikipedia and Reddit are used up (3 and 1 paragraphs left with such a sentence,
        # SQuAD 1.1 dev 43): SQuAD 1.1 train paragraphs make up the rest
        {"sq11dev": 40, "shamazon": 30, "sq11train": 140},
        require=SUBJECT_CUE,
        after=(1, 2, 3, 4, 5),
        part="heldout4",
    ),
    # SQuAD 1.1 dev has 3 paragraphs left with such a sentence: from the fifth held-out set
    # on, SQuAD 1.1 train paragraphs and Amazon reviews, each round leaving out all before it
    **{
        number: Round(
            seed,
            {"shamazon": 30, "sq11train": 180},
            require=SUBJECT_CUE,
            after=tuple(range(1, number)),
            part=f"heldout{number - 2}",
        )
        for number, seed in ((7, 20261215), (8, 20261216), (9, 20261217))
    },
}


def cues(text: str) -> list[str]:
    """The cue words in ``text``, lower-cased, in order."""
    return [" ".join(m.group(0).lower().split()) for m in CUE.finditer(text)]


def excluded(label_dir: Path = LABELS) -> set[str]:
    """The sources already labelled (read for their ids only)."""
    return {g.source for name in EXCLUDED_FILES for g in read_labels(label_dir / name)}


def paragraphs(corpus: Path, prefixes: Iterable[str]) -> dict[str, dict[str, str]]:
    """The corpus texts by ``_id``, per ``_id`` prefix (``sq11train`` from the distractor file
    beside ``corpus``)."""
    wanted = set(prefixes)
    out: dict[str, dict[str, str]] = {p: {} for p in wanted}
    files = [corpus, *([corpus.parent / DISTRACTORS] if "sq11train" in wanted else [])]
    for path in files:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                prefix = row["_id"].split("-", 1)[0]
                if prefix in wanted:
                    out[prefix][row["_id"]] = row["text"]
    return out


def cue_sentences(
    doc_id: str, text: str, require: re.Pattern[str] | None = None, part: str = PART
) -> list[dict[str, object]]:
    """The chunker's sentences of one paragraph that hold a cue word (and match ``require``,
    if given), as candidate records."""
    if not cues(text) or (require is not None and not require.search(text)):
        return []  # no sentence can hold what the paragraph does not (and chunking is slow)
    doc = Document(id=doc_id, text=text, meta=DocumentMeta())
    out: list[dict[str, object]] = []
    index = 0
    for chunk in chunk_document(doc):
        for span in chunk.sentences:
            sentence = text[span.start : span.end]
            found = cues(sentence)
            if found and (require is None or require.search(sentence)):
                out.append(
                    {
                        "part": part,
                        "source": doc_id,
                        "doc_id": doc_id,
                        "paragraph": chunk.paragraph,
                        "sentence": [span.start, span.end],
                        "text": sentence,
                        "corpus": "retrieval_bench",
                        "sentence_index": index,
                        "cues": found,
                    }
                )
            index += 1
    return out


def draw(
    corpus: Path = CORPUS,
    label_dir: Path = LABELS,
    counts: dict[str, int] = COUNTS,
    seed: int = SEED,
    require: re.Pattern[str] | None = None,
    also_skip: Iterable[str] = (),
    part: str = PART,
) -> list[dict[str, object]]:
    """The candidates: ``counts[prefix]`` sentences per corpus, one per paragraph, leaving out
    the labelled paragraphs and ``also_skip``; with ``require``, only sentences matching it."""
    rng = random.Random(seed)
    skip = excluded(label_dir) | set(also_skip)
    texts = paragraphs(corpus, counts)
    out: list[dict[str, object]] = []
    for prefix, wanted in counts.items():
        ids = sorted(i for i in texts[prefix] if i not in skip)
        rng.shuffle(ids)
        taken = 0
        for doc_id in ids:
            if taken == wanted:
                break
            found = cue_sentences(doc_id, texts[prefix][doc_id], require, part)
            if not found:
                continue
            out.append(rng.choice(found))
            taken += 1
        if taken < wanted:
            raise SystemExit(f"{prefix}: only {taken} paragraphs with a cue sentence")
    return out


def draw_round(
    number: int, corpus: Path = CORPUS, label_dir: Path = LABELS
) -> list[dict[str, object]]:
    """The candidates of round ``number`` (:data:`ROUNDS`)."""
    return [dict(c) for c in _drawn(number, corpus, label_dir)]


@cache
def _drawn(number: int, corpus: Path, label_dir: Path) -> tuple[dict[str, object], ...]:
    """:func:`draw_round`, each round drawn once per process (a later round leaves out the
    paragraphs of every earlier one, which would otherwise be drawn again and again)."""
    spec = ROUNDS[number]
    earlier = {str(c["source"]) for n in spec.after for c in _drawn(n, corpus, label_dir)}
    return tuple(draw(corpus, label_dir, spec.counts, spec.seed, spec.require, earlier, spec.part))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.attribution_draw", description=__doc__)
    ap.add_argument("--out", type=Path, help="write the candidates here (default: print them)")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="retrieval_bench corpus.jsonl")
    ap.add_argument(
        "--round", type=int, choices=sorted(ROUNDS), default=1, help="which draw (default: 1)"
    )
    args = ap.parse_args(argv)
    lines = [json.dumps(c, ensure_ascii=False) for c in draw_round(args.round, args.corpus)]
    if args.out is None:
        print("\n".join(lines))
    else:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {len(lines)} candidates to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
