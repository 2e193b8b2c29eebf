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

from core.types import Chunk, Hit, Passage, Quote, Span, SpeakerRef
from rag.retrieve import Corpus
from rag.speakers import author_of, speaker_of

#: Weight of meaning against lexical overlap in a sentence's support score.
SEMANTIC_WEIGHT = 0.7
#: A lower-ranked passage must beat the top passage's best sentence by this much per rank.
#: Fast mode quotes the best sentence's better neighbour too when it is supported within
#: FAST_PAIR_MARGIN of it (0: never). Both chosen on the tuning halves of the two question
#: sets by ``python -m bench.fast_answer`` (eval/report.md, section *Fast mode's answer
#: choice*): at 0.05 and 0.2 fast answer hit is 0.714 (seed) and 0.705 (stand-ins), against
#: 0.607 and 0.574 with neither; a margin of 0.3 quotes longer for no more on the seed set.
RANK_PENALTY = 0.05
FAST_PAIR_MARGIN = 0.2

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


@dataclass(frozen=True)
class Evidence:
    """Per sentence of one passage: cosine to the question, and lexical overlap (0..1)."""

    cosine: np.ndarray
    lexical: np.ndarray

    @property
    def support(self) -> np.ndarray:
        return (SEMANTIC_WEIGHT * self.cosine + (1 - SEMANTIC_WEIGHT) * self.lexical).astype(
            np.float32
        )


@dataclass(frozen=True)
class WindowScores:
    """Cross-encoder logits for the top passage's sentences and adjacent sentence pairs."""

    sentences: np.ndarray  # (n,)
    pairs: np.ndarray  # (n - 1,): pair i is sentences i and i + 1


@dataclass(frozen=True)
class Choice:
    """The chosen answer: sentences ``first..last`` of passage ``passage``, with the signals
    of its best sentence ``sentence``."""

    passage: int
    sentence: int
    first: int
    last: int
    support: float
    cosine: float
    lexical: float
    rerank: float | None  # cross-encoder logit of the quoted window (accurate mode)


def sentence_evidence(
    corpus: Corpus, hit: Hit, query_vec: np.ndarray, query_terms: np.ndarray
) -> Evidence:
    """Cosine and lexical evidence for every sentence of the hit's chunk."""
    rows = corpus.sentence_rows(corpus.position_of(hit.chunk))
    cosine = (corpus.sentence_vectors[rows] @ query_vec).astype(np.float32)
    lexical = np.array(
        [corpus.lexical.overlap(query_terms, terms) for terms in corpus.sentence_terms[rows]],
        dtype=np.float32,
    )
    return Evidence(cosine=cosine, lexical=lexical)


def sentence_support(
    corpus: Corpus, hit: Hit, query_vec: np.ndarray, query_terms: np.ndarray
) -> np.ndarray:
    """Support score of every sentence in the hit's chunk (aligned with ``chunk.sentences``)."""
    return sentence_evidence(corpus, hit, query_vec, query_terms).support


def sentence_windows(text: str, chunk: Chunk) -> tuple[list[str], list[str]]:
    """The texts of a chunk's sentences and of its adjacent sentence pairs."""
    spans = chunk.sentences
    singles = [text[s.start : s.end] for s in spans]
    pairs = [text[spans[i].start : spans[i + 1].end] for i in range(len(spans) - 1)]
    return singles, pairs


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


def quotes_for(
    corpus: Corpus,
    hit: Hit,
    support: np.ndarray,
    limit: int,
    eligible: np.ndarray | None = None,
) -> tuple[Quote, ...]:
    """The passage's ``limit`` best-supported sentences as quotes, best first (only the
    ``eligible`` ones when given: a speaker's statements)."""
    chunk = hit.chunk
    order = [
        int(i)
        for i in np.argsort(-support, kind="stable")
        if eligible is None or bool(eligible[int(i)])
    ][:limit]
    return tuple(
        _quote(corpus, chunk, i, chunk.sentences[i].start, chunk.sentences[i].end, support[i])
        for i in order
    )


def _quote(
    corpus: Corpus, chunk: Chunk, sentence: int, start: int, end: int, score: float
) -> Quote:
    """A quote of ``[start, end)``, attributed to the speaker of the chunk's ``sentence``."""
    text = corpus.documents[chunk.doc_id].text
    voice = chunk.voices[sentence] if chunk.voices else None
    speaker = None
    if voice is not None:
        m = voice.mention
        speaker = SpeakerRef(
            name=speaker_of(corpus, chunk, voice),
            mention=m,
            mention_text="" if m is None else text[m.start : m.end],
            reported_by=author_of(corpus, chunk.doc_id) if voice.voice == "reported" else None,
        )
    return Quote(
        doc_id=chunk.doc_id,
        paragraph=chunk.paragraph,
        start=start,
        end=end,
        text=text[start:end],
        score=round(float(score), 6),
        speaker=speaker,
        voice=None if voice is None else voice.voice,
    )


def choose_answer(
    corpus: Corpus,
    hits: list[Hit],
    evidence: list[Evidence],
    windows: WindowScores | None = None,
    pair_margin: float = 0.0,
) -> Choice | None:
    """The answer: None when there are no sentences at all.

    Without ``windows`` (fast mode) it is the best-supported sentence over the passages, a
    lower-ranked passage paying :data:`RANK_PENALTY` per rank. With ``windows`` (accurate mode,
    the hits reranked) it is the top passage's sentence the cross-encoder scores highest, or
    an adjacent pair of sentences when the pair scores ``pair_margin`` logits higher or more
    (the ``pair_margin`` setting)."""
    supports = [e.support for e in evidence]
    if windows is not None and hits and len(supports[0]) > 0:
        single = int(np.argmax(windows.sentences))
        best, first, last = single, single, single
        rerank = float(windows.sentences[single])
        if len(windows.pairs) and float(windows.pairs.max()) >= rerank + pair_margin:
            pair = int(np.argmax(windows.pairs))
            first, last = pair, pair + 1
            best = pair if windows.sentences[pair] >= windows.sentences[pair + 1] else pair + 1
            rerank = float(windows.pairs[pair])
        return _widened(corpus, hits, evidence, 0, best, first, last, rerank)
    top: Candidate | None = None
    for p, support in enumerate(supports):
        if len(support) == 0:
            continue
        i = int(np.argmax(support))
        score = float(support[i]) - RANK_PENALTY * p
        if top is None or score > top.score:
            top = Candidate(passage=p, sentence=i, score=score)
    if top is None:
        return None
    first, last = _with_close_neighbour(supports[top.passage], top.sentence, FAST_PAIR_MARGIN)
    return _widened(corpus, hits, evidence, top.passage, top.sentence, first, last)


def _with_close_neighbour(support: np.ndarray, best: int, margin: float) -> tuple[int, int]:
    """``(first, last)``: the best sentence, and its better-supported neighbour when that one
    scores within ``margin`` of it (an answer that runs over two sentences)."""
    if margin <= 0:
        return best, best
    neighbours = [i for i in (best - 1, best + 1) if 0 <= i < len(support)]
    if not neighbours:
        return best, best
    other = max(neighbours, key=lambda i: float(support[i]))
    if float(support[other]) < float(support[best]) - margin:
        return best, best
    return min(best, other), max(best, other)


def _widened(
    corpus: Corpus,
    hits: list[Hit],
    evidence: list[Evidence],
    passage: int,
    best: int,
    first: int,
    last: int,
    rerank: float | None = None,
) -> Choice:
    chunk = hits[passage].chunk
    doc_text = corpus.documents[chunk.doc_id].text
    lo, _ = widen(doc_text, chunk.sentences, first)
    _, hi = widen(doc_text, chunk.sentences, last)
    ev = evidence[passage]
    return Choice(
        passage=passage,
        sentence=best,
        first=lo,
        last=hi,
        support=float(ev.support[best]),
        cosine=float(ev.cosine[best]),
        lexical=float(ev.lexical[best]),
        rerank=rerank,
    )


def answer_quote(corpus: Corpus, hits: list[Hit], choice: Choice) -> Quote:
    """The quote for a choice: its sentences as one exact span of the document."""
    chunk = hits[choice.passage].chunk
    start, end = chunk.sentences[choice.first].start, chunk.sentences[choice.last].end
    return _quote(corpus, chunk, choice.sentence, start, end, choice.support)


def choice_text(corpus: Corpus, hits: list[Hit], choice: Choice) -> str:
    """The text the choice would quote."""
    return answer_quote(corpus, hits, choice).text


def build_passages(
    corpus: Corpus,
    hits: list[Hit],
    supports: list[np.ndarray],
    max_quotes: int,
    eligible: list[np.ndarray] | None = None,
) -> tuple[Passage, ...]:
    """Each hit with its best sentences as quotes (of the ``eligible`` ones, when given)."""
    return tuple(
        Passage(
            hit=hit,
            quotes=quotes_for(
                corpus, hit, support, max_quotes, None if eligible is None else eligible[i]
            ),
        )
        for i, (hit, support) in enumerate(zip(hits, supports, strict=True))
    )


#: The reason given when nothing at all is indexed: the fix is on the operator's side.
NOTHING_INDEXED = (
    "No articles are indexed yet: add .txt or .md articles to the data folder (setting "
    "RAG_DATA_DIR) and rebuild the index, or upload them with PUT /documents/{doc_id}."
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
