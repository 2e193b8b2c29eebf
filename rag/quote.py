"""From retrieved paragraphs to quotes, an answer, or an abstention.

Each sentence of a retrieved paragraph gets a *support* score: how well it answers the
question, blending meaning (cosine between the question and the sentence vector, computed at
index time) with lexical evidence (the share of the question's idf weight the sentence
contains, which catches names such as "Merz" that embeddings blur).

The answer is the best-supported sentence, widened to one contiguous span when the sentence
cannot stand alone: a sentence that opens with a pronoun ("He added that ...") takes in the
sentence before it that names the speaker, and a reported-speech continuation right after the
best sentence ("He added that ...") is taken in too. When no sentence reaches the abstention
threshold (a setting, measured by ``python -m eval.threshold``), there is no answer, only a
reason and the nearest passages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from rag.retrieve import Corpus
from rag.types import Chunk, Hit, Passage, Quote, Span

#: Weight of meaning against lexical overlap in a sentence's support score.
SEMANTIC_WEIGHT = 0.7
#: A lower-ranked passage must beat the top passage's best sentence by this much per rank.
RANK_PENALTY = 0.02

_ANAPHOR = re.compile(
    r"[\"“‘'(]?(?:he|she|they|it|his|her|their|its|this|that|these|those|such|"
    r"the latter|the former)\b",
    re.IGNORECASE,
)
_SUBJECT_PRONOUN = re.compile(r"[\"“‘'(]?(?:he|she|they|we|i)\b", re.IGNORECASE)
_REPORTING = re.compile(
    r"\b(?:add(?:s|ed)|sa(?:y|ys|id)|note[sd]?|stress(?:es|ed)|argue[sd]?|warn(?:s|ed)|"
    r"insist(?:s|ed)|explain(?:s|ed)|continue[sd]?|claim(?:s|ed)|suggest(?:s|ed)|"
    r"told|tell(?:s)?|state[sd]?|emphasi[sz](?:es|ed)|declare[sd]?|acknowledge[sd]?|"
    r"concede[sd]?|underline[sd]?|pointed out|went on)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Candidate:
    """The best sentence of one passage, before widening."""

    passage: int  # index into the ranked hits
    sentence: int  # index into the chunk's sentences
    score: float


def sentence_support(
    corpus: Corpus, hit: Hit, query_vec: np.ndarray, query_terms: np.ndarray
) -> np.ndarray:
    """Support score of every sentence in the hit's chunk (aligned with ``chunk.sentences``)."""
    chunk = hit.chunk
    rows = corpus.sentence_rows(corpus.position_of(chunk))
    cosine = corpus.sentence_vectors[rows] @ query_vec
    lexical = np.array(
        [corpus.lexical.overlap(query_terms, terms) for terms in corpus.sentence_terms[rows]],
        dtype=np.float32,
    )
    return (SEMANTIC_WEIGHT * cosine + (1 - SEMANTIC_WEIGHT) * lexical).astype(np.float32)


def widen(text: str, sentences: tuple[Span, ...], best: int) -> tuple[int, int]:
    """The range of sentence indices ``[first, last]`` that the answer must cover so that the
    best sentence can be read on its own (who is speaking, what "he added")."""
    first = last = best
    # Back to the sentence that names who "he", "they" or "this" is (at most two steps).
    while first > 0 and best - first < 2 and _ANAPHOR.match(_sentence(text, sentences[first])):
        first -= 1
    # Forward over reported speech that continues the statement ("He added that ...").
    while last + 1 < len(sentences) and last - best < 2:
        following = _sentence(text, sentences[last + 1])
        if not (_SUBJECT_PRONOUN.match(following) and _REPORTING.search(following[:60])):
            break
        last += 1
    return first, last


def _sentence(text: str, span: Span) -> str:
    return text[span.start : span.end]


def quotes_for(corpus: Corpus, hit: Hit, support: np.ndarray, limit: int) -> tuple[Quote, ...]:
    """The passage's ``limit`` best-supported sentences as quotes, best first."""
    chunk = hit.chunk
    doc_text = corpus.documents[chunk.doc_id].text
    order = np.argsort(-support, kind="stable")[:limit]
    return tuple(
        _quote(chunk, doc_text, chunk.sentences[i].start, chunk.sentences[i].end, support[i])
        for i in order
    )


def _quote(chunk: Chunk, doc_text: str, start: int, end: int, score: float) -> Quote:
    return Quote(
        doc_id=chunk.doc_id,
        paragraph=chunk.paragraph,
        start=start,
        end=end,
        text=doc_text[start:end],
        score=round(float(score), 6),
    )


def choose_answer(
    corpus: Corpus, hits: list[Hit], supports: list[np.ndarray]
) -> tuple[Quote | None, float]:
    """The answer span and the support score behind it (None, -inf when there are no
    sentences at all)."""
    best: Candidate | None = None
    for p, support in enumerate(supports):
        if len(support) == 0:
            continue
        i = int(np.argmax(support))
        score = float(support[i]) - RANK_PENALTY * p
        if best is None or score > best.score:
            best = Candidate(passage=p, sentence=i, score=score)
    if best is None:
        return None, float("-inf")
    chunk = hits[best.passage].chunk
    doc_text = corpus.documents[chunk.doc_id].text
    first, last = widen(doc_text, chunk.sentences, best.sentence)
    raw = float(supports[best.passage][best.sentence])
    quote = _quote(chunk, doc_text, chunk.sentences[first].start, chunk.sentences[last].end, raw)
    return quote, raw


def build_passages(
    corpus: Corpus, hits: list[Hit], supports: list[np.ndarray], max_quotes: int
) -> tuple[Passage, ...]:
    return tuple(
        Passage(hit=hit, quotes=quotes_for(corpus, hit, support, max_quotes))
        for hit, support in zip(hits, supports, strict=True)
    )


def abstention_reason(best_support: float, threshold: float, n_hits: int) -> str | None:
    """Why there is no answer, or None when the best support clears the threshold."""
    if n_hits == 0:
        return "No passage in the indexed articles matches the question."
    if best_support < threshold:
        return (
            f"The articles do not appear to answer this: the best supporting sentence scores "
            f"{best_support:.2f}, below the abstention threshold {threshold:.2f}."
        )
    return None
