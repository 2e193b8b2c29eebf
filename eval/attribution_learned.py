"""Does a small learned decision on top of the attribution rules raise held-out precision and
recall? A measured experiment (nothing here is used by the service).

``python -m eval.attribution_learned`` runs the rules (rag/attribution.py) over every labelled
sentence, exactly as ``python -m eval.attribution`` does, and extracts generic features from
what they produced and from the spaCy parse they read: the cue's class and tense, how the
speaker was found (a named entity, a pronoun, a description, "according to"), the mention's
distance from the cue, first person, questions, quotes, length, the source corpus. Then:

* the *keep* head: for a sentence the rules call reported, whether to keep that attribution
  (the rules' speaker is the labelled one); a rejected one becomes the author's voice;
* the *flag* head: for a sentence the rules leave to the author, whether it reports after all,
  attributed to the rules' own best speaker candidate (the subject of a reporting verb, or
  the object of "according to", resolved as the rules resolve it); sentences with no
  candidate stay the author's.

Each head is a logistic regression and a small gradient-boosted tree (fixed seeds), trained only
on the development parts (seed, standins, dev and the retired heldout); the model and the
threshold are chosen by cross-validation there, grouped by source document (nested, so the
cross-validated figures are honest), and the chosen models are evaluated once on heldout2,
whose sentences are never read here: only its totals are printed. Precision and recall are
eval/attribution.py's own (its scorer is reused). It prints a Markdown table and writes
``var/attribution_learned.json``. ``--cv-only`` leaves heldout2 out altogether.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.types import Chunk, Document, Span
from eval.attribution import (
    BENCHMARKS,
    LABELS,
    Gold,
    PartScore,
    _score_one,
    _until,
    documents,
    read_labels,
)
from rag.attribution import (
    CUE_VERBS,
    FIRST_PERSON,
    PRONOUNS,
    SPEAKER_ENTS,
    Attribution,
    Parse,
    Parser,
    Token,
    _according_to,
    _Context,
    _Found,
    _is_cue,
    _note_sentence,
    _speaker,
    _subject,
    analyse_many,
    frozenset_of,
    sentences_of,
)
from rag.attribution import load as load_parser
from rag.chunk import chunk_document

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "attribution_learned.json"
TRAIN_PARTS = ("seed", "standins", "dev", "heldout")
TEST_PART = "heldout2"
SEED = 20261208
FOLDS = 5
#: Rejection (keep head) or flagging (flag head) thresholds the cross-validation chooses from;
#: 0.0 for the keep head and 1.01 for the flag head mean "never": the rules alone.
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(20))

#: Coarse classes of the rules' reporting verbs (linguistic, not drawn from the labels).
CUE_CLASSES: Mapping[str, str] = {
    **dict.fromkeys(
        frozenset_of(
            """say tell state add write speak announce declare reply respond note explain
        mention remark comment report reiterate testify affirm assert claim allege insist maintain
        contend counter concede admit acknowledge deny reveal confirm recall observe conclude
        hold"""
        ),
        "speech",
    ),
    **dict.fromkeys(
        frozenset_of(
            """argue suggest warn urge propose recommend demand ask promise pledge vow
        predict caution criticize criticise praise blame accuse advocate emphasise emphasize stress
        complain describe question agree disagree signal signalled signaled"""
        ),
        "stance",
    ),
    **dict.fromkeys(
        frozenset_of("think believe feel want hope fear expect doubt consider estimate"), "mental"
    ),
    **dict.fromkeys(frozenset_of("find show indicate"), "finding"),
}
#: The source corpus of a labelled sentence, from its source id's first word.
CORPORA: Mapping[str, str] = {
    "sasse": "seed",
    "sq11dev": "squad",
    "squad2": "squad",
    "shnewwiki": "newwiki",
    "shreddit": "reddit",
    "shamazon": "amazon",
}
_TENSES = {"VBD": "past", "VBZ": "present", "VBP": "present", "VB": "base", "VBN": "participle"}
_DOUBLE_QUOTES = frozenset({'"', "“", "”"})


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    """One labelled sentence: the rules' attribution, and the best candidate when they left it
    to the author, each with its features and whether the scorer counts it right."""

    gold: Gold
    document: Document
    corpus: str
    rules: Attribution | None  # None: the chunker did not produce the labelled sentence
    rules_right: bool
    candidate: Attribution | None  # for a rules-author sentence: its best speaker candidate
    candidate_right: bool
    features: Mapping[str, float]  # of the rules' attribution, or of the candidate

    @property
    def reported(self) -> bool:
        return self.rules is not None and self.rules.voice == "reported"


class RecordingParser:
    """A :class:`Parser` that keeps what it parsed: the features read the very parses the
    rules read, with no second parse."""

    def __init__(self, inner: Parser) -> None:
        self.inner = inner
        self.parses: list[Parse] = []

    def parse(self, texts: Sequence[str]) -> list[Parse]:
        out = self.inner.parse(texts)
        self.parses.extend(out)
        return out


def corpus_of(gold: Gold) -> str:
    """The corpus kind of a labelled sentence: seed, squad, newwiki, reddit or amazon."""
    if gold.part == "seed":
        return "seed"
    prefix = re.split(r"[-:]", gold.source)[0]
    return CORPORA.get(prefix, prefix)


def right(gold: Gold, document: Document, attribution: Attribution | None) -> bool:
    """Whether eval/attribution.py counts ``attribution`` right for ``gold`` (its scorer)."""
    s = PartScore()
    _score_one(s, gold, document, attribution)
    return s.correct == 1


def token_at(parse: Parse, base: int, span: Span | None) -> list[Token]:
    """The tokens of ``parse`` (a sentence starting at ``base``) that overlap ``span``."""
    if span is None:
        return []
    return [t for t in parse.tokens if base + t.start < span.end and base + t.end > span.start]


def features(
    parse: Parse,
    sentence: Span,
    attribution: Attribution | None,
    corpus: str,
    position: int,
    people_before: int = 0,
) -> dict[str, float]:
    """Generic features of one sentence's attribution (reported, or a candidate) and parse;
    ``position`` is the sentence's index in its document, ``people_before`` the number of
    people the sentences before it named in the rules' window (how ambiguous a "he" is)."""
    toks = parse.tokens
    n = max(len(toks), 1)
    base = sentence.start
    words = [t.text.lower() for t in toks]
    root = next((t for t in toks if t.dep == "ROOT"), None)
    root_subj = [t for t in toks if root is not None and t.head == root.i and t.dep == "nsubj"]
    f: dict[str, float] = {
        f"corpus={corpus}": 1.0,
        "log_tokens": math.log(n),
        "question": float(any(t.text == "?" for t in toks)),
        "ends_question": float(bool(toks) and toks[-1].text == "?"),
        "double_quotes": float(any(t.text in _DOUBLE_QUOTES for t in toks)),
        "first_person_subject": float(any(t.text.lower() in FIRST_PERSON for t in root_subj)),
        "first_person_share": sum(w in FIRST_PERSON or w in {"my", "our"} for w in words) / n,
        "second_person": float(any(w in {"you", "your"} for w in words)),
        "persons": float(sum(1 for e in parse.entities if e.label == "PERSON")),
        "speaker_entities": float(sum(1 for e in parse.entities if e.label in SPEAKER_ENTS)),
        "conditional": float(any(t.dep == "mark" and t.lemma in {"if", "unless"} for t in toks)),
        "first_sentence": float(position == 0),
        "people_before": float(min(people_before, 5)),
    }
    if attribution is None or attribution.voice != "reported":
        f["no_attribution"] = 1.0
        return f
    cue = token_at(parse, base, attribution.cue)
    mention = token_at(parse, base, attribution.mention)
    head = cue[0] if cue else None
    if head is not None and head.text.lower() == "according":
        f["cue=according"] = 1.0
    elif head is not None:
        f[f"cue={CUE_CLASSES.get(head.lemma, 'other')}"] = 1.0
        f[f"tense={_TENSES.get(head.tag, 'other')}"] = 1.0
        kids = parse.children(head.i)
        f["cue_negated"] = float(any(k.dep == "neg" for k in kids))
        f["cue_modal"] = float(any(k.tag == "MD" for k in kids))
        f["cue_root"] = float(head.dep == "ROOT")
        f["cue_is_cue"] = float(_is_cue(parse, head))
        f["cue_position"] = head.i / n
        f["cue_clause"] = float(any(k.dep in {"ccomp", "parataxis", "xcomp"} for k in kids))
        f["cue_object"] = float(any(k.dep == "dobj" for k in kids))
    if mention:
        m_ents = {t.ent for t in mention} & SPEAKER_ENTS
        m_words = {t.text.lower() for t in mention}
        if len(mention) == 1 and mention[0].text.lower() in PRONOUNS:
            kind = "pronoun"
        elif m_ents:
            kind = "entity"
        elif any(t.pos == "PROPN" for t in mention):
            kind = "proper_noun"
        elif any(t.text.lower() in {"the", "this"} for t in mention[:1]):
            kind = "description"
        else:
            kind = "common_noun"
        f[f"speaker={kind}"] = 1.0
        for label in m_ents:
            f[f"speaker_entity={label}"] = 1.0
        f["speaker_subject"] = float(any(t.dep in {"nsubj", "nsubjpass"} for t in mention))
        f["speaker_possessive_first"] = float(bool(m_words & {"my", "our"}))
        f["mention_tokens"] = float(len(mention))
        if head is not None:
            gap = min(abs(t.i - head.i) for t in mention)
            f["log_cue_distance"] = math.log1p(gap)
            f["mention_after_cue"] = float(mention[0].i > head.i)
        mention_text = " ".join(t.text for t in mention)
        f["speaker_from_context"] = float(attribution.speaker.lower() not in mention_text.lower())
    f["resolved"] = float(attribution.resolved)
    f["speaker_words"] = float(len(attribution.speaker.split()))
    f["speaker_capitalised"] = float(attribution.speaker[:1].isupper())
    names = attribution.speaker.split()
    f["speaker_lower_share"] = sum(w[:1].islower() for w in names) / max(len(names), 1)
    f["speaker_odd_characters"] = float(bool(re.search(r"[\d/()\[\]&]", attribution.speaker)))
    span = max(sentence.end - sentence.start, 1)
    f["content_share"] = (attribution.content.end - attribution.content.start) / span
    return f


def candidate(
    parse: Parse, text: str, sentence: Span, paragraph: int, ctx: _Context
) -> Attribution | None:
    """The rules' best speaker for a sentence they left to the author: the subject (or agent)
    of its first reporting verb that names a speaker, else the object of "according to",
    resolved with the context of the sentences before it as the rules resolve it."""
    base, end = sentence.start, sentence.end
    found: _Found | None = None
    cue: Token | None = None
    for tok in parse.tokens:
        if tok.lemma not in CUE_VERBS or tok.pos not in {"VERB", "AUX"}:
            continue
        subj = _subject(parse, tok)
        if subj is None:
            continue
        found = _speaker(parse, subj, text, base, ctx, paragraph, end)
        if found is not None:
            cue = tok
            break
    if found is None:
        acc = _according_to(parse)
        if acc is None:
            return None
        found = _speaker(parse, acc[1], text, base, ctx, paragraph, end)
        cue = acc[0]
    if found is None or cue is None:
        return None
    return Attribution(
        sentence,
        found.speaker,
        found.mention,
        sentence,
        "reported",
        paragraph,
        Span(base + cue.start, base + cue.end),
        found.resolved,
    )


def split_parses(
    items: Sequence[tuple[Document, Sequence[Chunk]]], parses: Sequence[Parse]
) -> list[list[tuple[int, Span, Parse]]]:
    """The parses :func:`analyse_many` asked for, back per document and sentence, in the order
    it parsed them."""
    it = iter(parses)
    out = [[(p, s, next(it)) for p, s in sentences_of(chunks)] for _, chunks in items]
    if next(it, None) is not None:
        raise ValueError("more parses than sentences")
    return out


def collect(
    parts: Sequence[str], parser: Parser, label_dir: Path = LABELS, benchmarks: Path = BENCHMARKS
) -> list[Row]:
    """Every labelled sentence of ``parts`` with the rules' attribution and its features: the
    rules run as eval.attribution.score runs them (one batch, sentences up to the last
    labelled one)."""
    golds = [g for part in parts for g in read_labels(label_dir / f"{part}.jsonl")]
    docs = documents(golds, benchmarks)
    by_doc: dict[str, list[Gold]] = {}
    for g in golds:
        by_doc.setdefault(g.doc_id, []).append(g)
    items = [(docs[d], _until(chunk_document(docs[d]), gs)) for d, gs in by_doc.items()]
    recorder = RecordingParser(parser)
    results = analyse_many(items, recorder)
    rows: list[Row] = []
    for (doc, _), result, sents in zip(
        items, results, split_parses(items, recorder.parses), strict=True
    ):
        predicted = {(a.sentence.start, a.sentence.end): a for a in result.attributions}
        labelled = {(g.sentence.start, g.sentence.end): g for g in by_doc[doc.id]}
        found: dict[tuple[int, int], Row] = {}
        ctx = _Context()
        for position, (paragraph, span, parse) in enumerate(sents):
            key = (span.start, span.end)
            labelled_gold = labelled.get(key)
            if labelled_gold is not None:
                found[key] = _row(
                    labelled_gold, doc, predicted.get(key), parse, span, paragraph, ctx, position
                )
            _note_sentence(ctx, parse, doc.text, span.start, paragraph)
        for g in by_doc[doc.id]:
            key = (g.sentence.start, g.sentence.end)
            a = predicted.get(key)
            rows.append(found.get(key) or _unaligned(g, doc, a))
    return rows


def _row(
    g: Gold,
    doc: Document,
    a: Attribution | None,
    parse: Parse,
    span: Span,
    paragraph: int,
    ctx: _Context,
    position: int,
) -> Row:
    """A labelled sentence's row, with ``ctx`` the context of the sentences before it."""
    corpus = corpus_of(g)
    cand = None
    if a is not None and a.voice == "author":
        cand = candidate(parse, doc.text, span, paragraph, ctx)
    people = len({m.name for m in ctx.window(paragraph) if m.kind == "person"})
    feats = features(parse, span, cand if cand is not None else a, corpus, position, people)
    feats["rules_reported"] = float(a is not None and a.voice == "reported")
    cand_right = cand is not None and right(g, doc, cand)
    return Row(g, doc, corpus, a, right(g, doc, a), cand, cand_right, feats)


def _unaligned(g: Gold, doc: Document, a: Attribution | None) -> Row:
    """A labelled sentence the chunker did not produce as one sentence: no features."""
    feats = {f"corpus={corpus_of(g)}": 1.0, "no_attribution": 1.0}
    return Row(g, doc, corpus_of(g), a, right(g, doc, a), None, False, feats)


# --------------------------------------------------------------------------- decisions


def decide(
    row: Row, keep: float | None, flag: float | None, keep_at: float, flag_at: float
) -> Attribution | None:
    """The attribution after the learned heads: a rules-reported sentence whose keep
    probability is below ``keep_at`` becomes the author's voice; a rules-author sentence whose
    flag probability is at least ``flag_at`` takes its candidate speaker."""
    a = row.rules
    if a is None:
        return None
    if a.voice == "reported" and keep is not None and keep < keep_at:
        return Attribution(a.sentence, "the author", None, a.sentence, "author", a.paragraph)
    if a.voice == "author" and row.candidate is not None and flag is not None and flag >= flag_at:
        return row.candidate
    return a


def tally(
    rows: Sequence[Row], decided: Sequence[Attribution | None], key: Callable[[Row], str]
) -> dict[str, PartScore]:
    """eval/attribution.py's scores of the decided attributions, grouped by ``key``."""
    scores: dict[str, PartScore] = {}
    for row, a in zip(rows, decided, strict=True):
        _score_one(scores.setdefault(key(row), PartScore()), row.gold, row.document, a)
    return scores


def pooled(scores: Mapping[str, PartScore]) -> PartScore:
    total = PartScore()
    for s in scores.values():
        total.sentences += s.sentences
        total.gold_reported += s.gold_reported
        total.predicted_reported += s.predicted_reported
        total.correct += s.correct
    return total


def f1(s: PartScore) -> float:
    p, r = s.precision, s.recall
    return 2 * p * r / (p + r) if p + r else 0.0


def grouped_folds(
    groups: Sequence[str], labels: Sequence[int], n_splits: int = FOLDS, seed: int = SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays of a stratified k-fold split that keeps every group (source
    document) on one side."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(labels)
    splits = min(n_splits, int(np.bincount(y).min()) if len(set(labels)) > 1 else n_splits)
    cv = StratifiedGroupKFold(n_splits=max(splits, 2), shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in cv.split(np.zeros(len(y)), y, np.asarray(groups))]


@dataclass(frozen=True)
class Head:
    """One learned decision: which rows it sees, what it predicts, how it moves the output."""

    name: str  # "keep" | "flag"
    eligible: Callable[[Row], bool]
    label: Callable[[Row], bool]


KEEP = Head("keep", lambda r: r.reported, lambda r: r.rules_right)
FLAG = Head("flag", lambda r: r.candidate is not None, lambda r: r.candidate_right)


def make_model(kind: str) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        clf: Any = LogisticRegression(C=0.1, max_iter=5000, random_state=SEED)
        return make_pipeline(DictVectorizer(sparse=False), StandardScaler(), clf)
    clf = GradientBoostingClassifier(
        n_estimators=100, max_depth=2, learning_rate=0.05, subsample=0.8, random_state=SEED
    )
    return make_pipeline(DictVectorizer(sparse=False), clf)


MODELS = ("logistic", "boosted")


def fit_predict(kind: str, train: Sequence[Row], test: Sequence[Row], head: Head) -> np.ndarray:
    """The probability, for each ``test`` row, that the head's label holds (a model fitted on
    the eligible ``train`` rows); a constant when the training rows have one label only."""
    x = [dict(r.features) for r in train if head.eligible(r)]
    y = [int(head.label(r)) for r in train if head.eligible(r)]
    if not test:
        return np.zeros(0)
    if len(set(y)) < 2:
        return np.full(len(test), float(y[0]) if y else 0.0)
    model = make_model(kind).fit(x, y)
    return np.asarray(model.predict_proba([dict(r.features) for r in test])[:, 1])


def probabilities(
    kind: str, train: Sequence[Row], test: Sequence[Row], heads: Sequence[Head]
) -> dict[str, list[float | None]]:
    """Each head's probability for each ``test`` row (None where the head does not apply)."""
    out: dict[str, list[float | None]] = {}
    for head in heads:
        eligible = [r for r in test if head.eligible(r)]
        probs = iter(fit_predict(kind, train, eligible, head))
        out[head.name] = [float(next(probs)) if head.eligible(r) else None for r in test]
    return out


def out_of_fold(
    kind: str, rows: Sequence[Row], heads: Sequence[Head], seed: int = SEED
) -> dict[str, list[float | None]]:
    """Each row's probabilities from a model that never saw its document."""
    labels = [int(r.rules_right or r.candidate_right) for r in rows]
    out: dict[str, list[float | None]] = {h.name: [None] * len(rows) for h in heads}
    for tr, te in grouped_folds([r.gold.doc_id for r in rows], labels, seed=seed):
        probs = probabilities(kind, [rows[i] for i in tr], [rows[i] for i in te], heads)
        for name, ps in probs.items():
            for i, p in zip(te, ps, strict=True):
                out[name][i] = p
    return out


@dataclass(frozen=True)
class Choice:
    keep_at: float  # reject a rules-reported sentence below this keep probability (0: never)
    flag_at: float  # flag a rules-author sentence at or above this (above 1: never)


NEVER = Choice(0.0, 1.01)


def apply(
    rows: Sequence[Row], probs: Mapping[str, Sequence[float | None]], c: Choice
) -> list[Attribution | None]:
    keep = probs.get("keep", [None] * len(rows))
    flag = probs.get("flag", [None] * len(rows))
    return [decide(r, k, f, c.keep_at, c.flag_at) for r, k, f in zip(rows, keep, flag, strict=True)]


def choose(
    rows: Sequence[Row], probs: Mapping[str, Sequence[float | None]], heads: Sequence[Head]
) -> Choice:
    """The thresholds with the best pooled F1 of ``rows`` under ``probs`` (out-of-fold), each
    head chosen in turn (keep first); ties go to the milder threshold (closer to the rules)."""
    best = NEVER
    names = {h.name for h in heads}
    if "keep" in names:
        cands = [replace(best, keep_at=t) for t in THRESHOLDS]
        best = max(cands, key=lambda c: (round(f1(_pool(rows, probs, c)), 6), -c.keep_at))
    if "flag" in names:
        cands = [replace(best, flag_at=t) for t in (*THRESHOLDS[1:], 1.01)]
        best = max(cands, key=lambda c: (round(f1(_pool(rows, probs, c)), 6), c.flag_at))
    return best


def _pool(rows: Sequence[Row], probs: Mapping[str, Sequence[float | None]], c: Choice) -> PartScore:
    return pooled(tally(rows, apply(rows, probs, c), lambda r: "all"))


@dataclass(frozen=True)
class Variant:
    """A model kind with the heads it uses: what cross-validation compares."""

    model: str
    heads: tuple[Head, ...]

    @property
    def name(self) -> str:
        return f"{self.model}:{'+'.join(h.name for h in self.heads)}"


def nested_cv(
    rows: Sequence[Row], variant: Variant
) -> tuple[list[Attribution | None], list[Choice]]:
    """Honest cross-validated attributions: for each outer fold (grouped by document), the
    thresholds are chosen by an inner cross-validation of the outer training rows only."""
    labels = [int(r.rules_right or r.candidate_right) for r in rows]
    decided: list[Attribution | None] = [None] * len(rows)
    choices: list[Choice] = []
    for tr, te in grouped_folds([r.gold.doc_id for r in rows], labels):
        train = [rows[i] for i in tr]
        inner = out_of_fold(variant.model, train, variant.heads, seed=SEED + 1)
        c = choose(train, inner, variant.heads)
        choices.append(c)
        test = [rows[i] for i in te]
        probs = probabilities(variant.model, train, test, variant.heads)
        for i, a in zip(te, apply(test, probs, c), strict=True):
            decided[i] = a
    return decided, choices


# --------------------------------------------------------------------------- report


def figures(s: PartScore) -> dict[str, float | int]:
    return {
        "sentences": s.sentences,
        "gold_reported": s.gold_reported,
        "predicted_reported": s.predicted_reported,
        "correct": s.correct,
        "precision": round(s.precision, 4),
        "recall": round(s.recall, 4),
        "f1": round(f1(s), 4),
    }


def table(rows: Sequence[tuple[str, str, PartScore]]) -> str:
    lines = [
        "| set | decision | sentences | gold rep. | pred. rep. | right | P | R | F1 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for where, what, s in rows:
        lines.append(
            f"| {where} | {what} | {s.sentences} | {s.gold_reported} | {s.predicted_reported} "
            f"| {s.correct} | {s.precision:.3f} ({s.correct}/{s.predicted_reported}) "
            f"| {s.recall:.3f} ({s.correct}/{s.gold_reported}) | {f1(s):.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.attribution_learned", description=__doc__)
    ap.add_argument("--out", type=Path, default=OUT, help="where to write the JSON results")
    ap.add_argument(
        "--cv-only", action="store_true", help="cross-validate on the training parts only"
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    parser = load_parser()
    parts = TRAIN_PARTS if args.cv_only else (*TRAIN_PARTS, TEST_PART)
    rows = collect(parts, parser)
    train = [r for r in rows if r.gold.part in TRAIN_PARTS]
    test = [r for r in rows if r.gold.part == TEST_PART]
    t_rules = time.perf_counter() - t0
    variants = [Variant(m, hs) for m in MODELS for hs in ((KEEP,), (KEEP, FLAG))]
    rules_cv = tally(train, [r.rules for r in train], lambda r: r.gold.part)
    report: dict[str, Any] = {
        "train_parts": list(TRAIN_PARTS),
        "eligible": {
            "keep": {
                "rows": sum(KEEP.eligible(r) for r in train),
                "positive": sum(KEEP.eligible(r) and KEEP.label(r) for r in train),
            },
            "flag": {
                "rows": sum(FLAG.eligible(r) for r in train),
                "positive": sum(FLAG.eligible(r) and FLAG.label(r) for r in train),
            },
        },
        "cv": {"rules": {k: figures(v) for k, v in rules_cv.items()}},
    }
    report["cv"]["rules"]["all"] = figures(pooled(rules_cv))
    lines: list[tuple[str, str, PartScore]] = [("train (CV)", "rules", pooled(rules_cv))]
    best: tuple[float, Variant] | None = None
    for v in variants:
        decided, choices = nested_cv(train, v)
        by_part = tally(train, decided, lambda r: r.gold.part)
        total = pooled(by_part)
        report["cv"][v.name] = {
            **{k: figures(s) for k, s in by_part.items()},
            "all": figures(total),
            "fold_thresholds": [c.__dict__ for c in choices],
        }
        lines.append(("train (CV)", v.name, total))
        if best is None or f1(total) > best[0] + 1e-9:
            best = (f1(total), v)
    assert best is not None
    chosen = best[1]
    oof = out_of_fold(chosen.model, train, chosen.heads)
    choice = choose(train, oof, chosen.heads)
    report["chosen"] = {"variant": chosen.name, **choice.__dict__}
    t_cv = time.perf_counter() - t0 - t_rules
    if test:
        probs = probabilities(chosen.model, train, test, chosen.heads)
        keep_only = Choice(choice.keep_at, NEVER.flag_at)
        outcomes = {
            "rules": [r.rules for r in test],
            f"rules + {chosen.name}": apply(test, probs, choice),
        }
        if len(chosen.heads) > 1:
            outcomes[f"rules + {chosen.model}:keep (same model)"] = apply(test, probs, keep_only)
        report[TEST_PART] = {}
        for what, decided in outcomes.items():
            per = tally(test, decided, lambda r: r.corpus)
            report[TEST_PART][what] = {
                "all": figures(pooled(per)),
                **{f"corpus={k}": figures(s) for k, s in sorted(per.items())},
            }
            lines.append((f"{TEST_PART} (once)", what, pooled(per)))
        for what, decided in outcomes.items():
            per = tally(test, decided, lambda r: r.corpus)
            for corpus, s in sorted(per.items()):
                lines.append((f"{TEST_PART} {corpus}", what, s))
    elapsed = time.perf_counter() - t0
    report["seconds"] = {
        "rules_and_features": round(t_rules, 1),
        "cross_validation": round(t_cv, 1),
        "total": round(elapsed, 1),
    }
    print(table(lines))
    print(
        f"\nchosen by CV: {chosen.name}, reject below keep p={choice.keep_at}, "
        f"flag at p>={choice.flag_at}; {elapsed:.0f} s"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
