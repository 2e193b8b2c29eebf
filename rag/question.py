"""What a question asks for, read before and after retrieval (pure functions, no models).

Three readings of a question that the answer layer needs and that embeddings and BM25 do not
give it:

* **The author.** Commentary readers ask about "the author", "the writer" or "the columnist",
  and an article never calls its author that: its bio line names her. :func:`with_author`
  rewrites such a question with the author's name from the document's metadata, so that it
  can be matched against what the article says ("Who is the author?" -> "Who is Gwendolyn
  Sasse?"). The question shown and answered stays the reader's; the response's
  ``searched_as`` says what was searched.
* **Names and their other names.** A question that names someone or something the article
  never mentions is seldom answered by it ("What did Macron say ...?"). But commentary names
  governments by their capital ("Berlin", "Moscow") or people ("the Germans"), so a name
  counts as present when the passage holds it or another name of the same country (its
  name, capital, demonym or usual alternative spellings, from the ``countryinfo`` package's
  data), and the author's own name counts as present in every passage of her article (her
  own voice). :func:`names_found` is the share of the question's names present.
* **The kind of answer.** "How many ...?" asks for a number, "When ...?" / "What year ...?"
  for a time, and "Which official ...?" for a person's name; a passage on the topic that
  holds none does not answer it, however relevant it reads. :func:`expected_answer` and
  :func:`answer_type_found` check that, and nothing finer: other question words ("who",
  "where", "what") leave the kind of answer open, because commentary answers them with
  phrases ("European leaders", "Nato countries bordering Ukraine") that no type check
  recognises reliably.

:func:`lacks` turns the last two into a refusal with its reason, before any score is
consulted (docs/abstention.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from core.text import fold

AnswerKind = Literal["number", "time", "person"]

# --------------------------------------------------------------------------- the author

#: A reference to the article's author, as readers write it.
_AUTHOR_REFERENCE = re.compile(
    r"(?:\b(?:the|this|that|our)\s+|^\s*)(?:article'?s\s+|piece'?s\s+|op-?ed'?s\s+|column'?s\s+|"
    r"essay'?s\s+|commentary'?s\s+)?"
    r"(?:author|writer|columnist|commentator|analyst|essayist|op-?ed\s+writer)\b",
    re.IGNORECASE,
)
_WHO_WROTE = re.compile(
    r"\bwho\s+(?:wrote|has\s+written|penned|authored|is\s+behind)\b|\bwritten\s+by\s+whom\b",
    re.IGNORECASE,
)


_OPINION_VERBS = (
    r"think|thinks|believe|believes|argue|argues|say|says|said|write|writes|wrote|describe|"
    r"describes|call|calls|see|sees|view|views|consider|considers|suggest|suggests|claim|claims|"
    r"mean|means|feel|feels|make|makes|assess|assesses|conclude|concludes|expect|expects|fear|"
    r"fears|hope|hopes|find|finds|regard|regards|predict|predicts|doubt|doubts|warn|warns|note|"
    r"notes|criticise|criticises|criticize|criticizes|judge|judges|characteri[sz]e|"
    r"characteri[sz]es|want|wants|recommend|recommends|propose|proposes|point|points|stress|"
    r"stresses|emphasi[sz]e|emphasi[sz]es|mention|mentions|identify|identifies|explain|explains"
)
#: The author as the one who speaks: "according to the writer", "what does the author think
#: of ...", "in the author's view". Such a question asks what the article says, not who wrote it.
_AUTHOR_SPEAKS = re.compile(
    rf"\baccording\s+to\s+{_AUTHOR_REFERENCE.pattern}|"
    rf"{_AUTHOR_REFERENCE.pattern}\s+(?:\w+\s+){{0,2}}(?:{_OPINION_VERBS})\b|"
    rf"{_AUTHOR_REFERENCE.pattern}'?s?'?\s+(?:\w+\s+)?(?:view|views|opinion|take|assessment|"
    r"judgement|judgment|argument|arguments|position|verdict|conclusion|point|points|thesis|"
    r"claim|worry|concern|fear|hope|criticism|analysis|reading|prediction|words)\b|"
    rf"\bin\s+{_AUTHOR_REFERENCE.pattern}'?s?'?\s+(?:view|opinion|eyes|words|assessment)\b",
    re.IGNORECASE,
)


def author_speaks(question: str) -> bool:
    """Whether the author is named as the one who speaks or thinks ("according to the
    writer, ..."): the question is then about what the article says."""
    return _AUTHOR_SPEAKS.search(question) is not None


def refers_to_author(question: str) -> bool:
    """Whether the question asks about the article's author without naming her."""
    return bool(_AUTHOR_REFERENCE.search(question) or _WHO_WROTE.search(question))


def with_author(question: str, author: str) -> str:
    """The question with its references to the author replaced by ``author``'s name (and,
    for "who wrote ...?", the name added); unchanged when it has none, when the author is
    only the one who speaks (:func:`author_speaks`: the question is about the article's
    content, and her name would draw the search to her bio line), or ``author`` is empty."""
    if not author.strip() or not refers_to_author(question) or author_speaks(question):
        return question
    rewritten = _AUTHOR_REFERENCE.sub(author, question)
    if _WHO_WROTE.search(rewritten):
        rewritten = f"{rewritten.rstrip()} {author}"
    return rewritten


# --------------------------------------------------------------------------- names

_TOKEN = re.compile(r"[^\W_]+")


def folded_words(text: str) -> set[str]:
    return set(_TOKEN.findall(fold(text)))


#: Question words that are capitalised because they start a clause or are titles, not names.
_NOT_NAMES = frozenset(
    {
        "i",
        "is",
        "are",
        "was",
        "were",
        "do",
        "does",
        "did",
        "what",
        "who",
        "whom",
        "whose",
        "which",
        "when",
        "where",
        "why",
        "how",
        "according",
        "in",
        "on",
        "the",
        "a",
        "an",
        "and",
        "or",
        "if",
        "has",
        "have",
        "had",
        "can",
        "could",
        "would",
        "will",
        "should",
        "tell",
        "give",
        "list",
        "name",
        "explain",
        "describe",
        "summarize",
        "summarise",
        "mr",
        "mrs",
        "ms",
        "dr",
        "president",
        "chancellor",
        "prime",
        "minister",
        "says",
        "said",
    }
)


def question_names(question: str) -> list[str]:
    """The words of ``question`` that name something: capitalised words other than the first
    and other than question or title words (proper nouns as readers write them), and
    numbers ("1999", "35")."""
    words = _TOKEN.findall(question)
    return [
        w
        for i, w in enumerate(words)
        if w[0].isdigit() or (i > 0 and w[0].isupper() and w.casefold() not in _NOT_NAMES)
    ]


#: Usual short forms that ``countryinfo``'s alternative spellings only hold inside longer
#: names ("United States of America", "Great Britain").
_SHORT_FORMS = {"united states": ("America",), "united kingdom": ("Britain",)}
#: Seats of government that commentary names instead of the country ("the Kremlin said").
_SEATS = {
    "russia": ("Kremlin",),
    "united states": ("White House", "Pentagon"),
    "united kingdom": ("Downing Street", "Whitehall"),
    "france": ("Elysee",),
    "germany": ("Bundestag", "Bundesregierung"),
}


@lru_cache(maxsize=1)
def country_aliases() -> dict[str, frozenset[str]]:
    """Folded name -> every folded name of the same country: its name, capital (first word:
    "Washington"), demonym, and its alternative spellings of letters (ISO codes of two or
    three capitals are kept only for "US", "UK" and "EU"-like forms that prose uses)."""
    groups: list[set[str]] = []
    data = resources.files("countryinfo") / "data"
    for entry in sorted(data.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".json"):
            continue
        raw = json.loads(entry.read_text(encoding="utf-8"))
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            continue
        names = {name}
        capital = raw.get("capital")
        if isinstance(capital, str) and capital:
            names.add(capital)
            names.add(capital.split()[0])
        demonym = raw.get("demonym")
        if isinstance(demonym, str) and demonym:
            names.update((demonym, f"{demonym}s"))  # "German", "Germans"
        for alt in raw.get("altSpellings") or []:
            if not isinstance(alt, str) or not alt.isascii():
                continue
            if alt.isupper() and alt not in ("US", "UK", "USA"):
                continue  # ISO codes ("DE", "DEU") are not how prose names a country
            names.add(alt)
        names.update(_SHORT_FORMS.get(fold(name), ()))
        names.update(_SEATS.get(fold(name), ()))
        groups.append({fold(n) for n in names if n.strip()})
    out: dict[str, set[str]] = {}
    for group in groups:
        for member in group:
            out.setdefault(member, set()).update(group)
    return {k: frozenset(v) for k, v in out.items()}


def _present(name: str, words: set[str], text: str) -> bool:
    folded = fold(name)
    parts = folded.split()
    if not parts:
        return False
    if len(parts) == 1:
        return parts[0] in words
    return f" {folded} " in f" {text} "


@lru_cache(maxsize=1)
def _edit_distance() -> Any:
    from symspellpy.editdistance import DistanceAlgorithm, EditDistance

    return EditDistance(DistanceAlgorithm.DAMERAU_OSA)


def _misspelt(name: str, words: Iterable[str]) -> bool:
    """Whether one of ``words`` is ``name`` mistyped: same first letter, one edit away (two
    for names of eight letters or more). Names under four letters must match exactly."""
    if len(name) < 4 or name.isdigit():
        return False
    limit = 2 if len(name) >= 8 else 1
    compare = _edit_distance().compare
    return any(
        w[:1] == name[:1] and abs(len(w) - len(name)) <= limit and compare(name, w, limit) >= 0
        for w in words
    )


class _Folded:
    """A text's folded words and word sequence, made once for every name looked up in it."""

    def __init__(self, text: str, also: Iterable[str]) -> None:
        self.words = folded_words(text)
        self.text = " ".join(_TOKEN.findall(fold(text)))
        self.extra = {w for a in also for w in folded_words(a)}

    def holds(self, name: str) -> bool:
        folded = fold(name)
        if _present(folded, self.words, self.text) or folded in self.extra:
            return True
        aliases = country_aliases().get(folded, ())
        if any(_present(alias, self.words, self.text) for alias in aliases):
            return True
        return " " not in folded and _misspelt(folded, self.words | self.extra)


@lru_cache(maxsize=256)
def _folded(text: str, also: tuple[str, ...]) -> _Folded:
    """:class:`_Folded` of ``text``, kept for the texts asked about again: every question folds
    its answer's whole article (``names_in_article``), which took about a third of a fast
    answer's time on the seed article before it was kept."""
    return _Folded(text, also)


def name_present(name: str, passage: str, *, also: Iterable[str] = ()) -> bool:
    """Whether ``passage`` holds ``name`` (or a word it is a typo of: "Mertz", "Sase"),
    another name of the same country, or ``name`` is one of the words of ``also`` (names
    that count as present, such as the author's)."""
    return _folded(passage, tuple(also)).holds(name)


def names_found(question: str, passage: str, *, also: Iterable[str] = ()) -> float:
    """Share of the question's names (:func:`question_names`) that the passage holds (see
    :func:`name_present`); 1.0 when the question names nothing."""
    names = question_names(question)
    if not names:
        return 1.0
    folded = _folded(passage, tuple(also))
    return sum(folded.holds(n) for n in names) / len(names)


def missing_names(question: str, passage: str, *, also: Iterable[str] = ()) -> list[str]:
    """The question's names that the passage does not hold, in question order."""
    names = question_names(question)
    folded = _folded(passage, tuple(also)) if names else None
    return [n for n in names if folded is not None and not folded.holds(n)]


# --------------------------------------------------------------------------- answer kinds

_ASKS_NUMBER = re.compile(
    r"\bhow\s+(?:many|much)\b|\bwhat\s+(?:number|percentage|share|proportion|amount|sum)\b|"
    r"\bhow\s+(?:large|big|high|long|far|old)\s+(?:is|was|are|were|will|would)\b",
    re.IGNORECASE,
)
_ASKS_TIME = re.compile(
    r"^\s*(?:and\s+|but\s+|so\s+)?when\b|\bwhat\s+(?:year|date|day|month|time)\b|"
    r"\bwhich\s+(?:year|date|day|month)\b|\bin\s+what\s+year\b|\bhow\s+long\s+ago\b|"
    r"\bsince\s+when\b|\buntil\s+when\b|\bby\s+when\b",
    re.IGNORECASE,
)
_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
    r"eighty|ninety|hundred|hundreds|thousand|thousands|million|millions|billion|billions|"
    r"dozen|dozens|half|twice|double|single|both|several|few|many|majority|minority|"
    r"percent|per\s+cent"
)
_HAS_NUMBER = re.compile(rf"\d|\b(?:{_NUMBER_WORDS})\b", re.IGNORECASE)
_MONTHS = (
    r"january|february|march|april|may|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_HAS_TIME = re.compile(
    rf"\b\d{{3,4}}s?\b|\b\d+(?:st|nd|rd|th)\b|\b(?:{_MONTHS})\b|"
    r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|today|yesterday|"
    r"tomorrow|tonight|ago|recent|recently|since|until|till|after|before|during|throughout|"
    r"following|spring|summer|autumn|winter|decade|decades|century|centuries)\b|"
    r"\b(?:last|next|this|that|coming|past|previous)\s+(?:week|month|year|decade|weekend|"
    r"spring|summer|autumn|winter)\b|\bat\s+the\s+(?:end|start|beginning|close)\s+of\b|"
    r"\b(?:in|within|for|over)\s+(?:\w+\s+){0,2}(?:days|weeks|months|years)\b",
    re.IGNORECASE,
)


_ROLES = (
    r"official|officials|minister|ministers|general|generals|diplomat|diplomats|envoy|envoys|"
    r"spokesman|spokeswoman|spokesperson|ambassador|ambassadors|secretary|commander|"
    r"commanders|politician|politicians|negotiator|negotiators|mediator|president|chancellor|"
    r"premier|prime\s+minister|head\s+of\s+state|chief\s+of\s+staff"
)
#: "Which official ...?", "Who is Ukraine's defence minister?", "name of the chancellor":
#: a question for a person named by a role, answered only by a name.
_ASKS_PERSON = re.compile(
    rf"\b(?:which|what)\s+(?:[\w-]+\s+){{0,2}}(?:{_ROLES})\b|"
    rf"\bwho\s+(?:is|was|are|were|will\s+be)\s+(?:the\s+)?(?:[\w-]+'s\s+)?"
    rf"(?:[\w-]+\s+)?(?:{_ROLES})\b|\bname\s+of\s+(?:the\s+)?(?:[\w-]+\s+){{0,2}}"
    rf"(?:{_ROLES})\b",
    re.IGNORECASE,
)
#: Two or more capitalised words in a row ("Friedrich Merz", "President Putin"): how prose
#: names a person. Country names and the like are excluded where it is checked.
_NAME_RUN = re.compile(r"\b[A-Z][\w'’-]+(?:\s+[A-Z][\w'’-]+)+")
_ARTICLE_WORDS = frozenset({"the", "a", "an", "this", "that", "as", "of", "in", "on", "and"})


def _has_person_name(text: str) -> bool:
    aliases = country_aliases()
    for match in _NAME_RUN.finditer(text):
        words = [w for w in match.group(0).split() if fold(w) not in _ARTICLE_WORDS]
        named = [w for w in words if fold(w) not in aliases]
        if len(words) >= 2 and named:
            return True
    return False


def expected_answer(question: str) -> AnswerKind | None:
    """``number`` for "how many/much ...", ``time`` for "when ...", "what year ...",
    ``person`` for a person asked for by a role ("which official ...?"); else None (any
    answer may do)."""
    if _ASKS_NUMBER.search(question):
        return "number"
    if _ASKS_TIME.search(question):
        return "time"
    if _ASKS_PERSON.search(question):
        return "person"
    return None


def answer_type_found(question: str, answer: str) -> bool:
    """Whether ``answer`` holds the kind of answer the question asks for (always true when
    it asks for no particular kind)."""
    kind = expected_answer(question)
    # A number or year the question itself gives ("how many of the 35 countries ...?") is
    # not its answer.
    given = {fold(m.group(0)) for m in _HAS_NUMBER.finditer(question)}
    if kind == "number":
        return any(fold(m.group(0)) not in given for m in _HAS_NUMBER.finditer(answer))
    if kind == "time":
        return any(fold(m.group(0)) not in given for m in _HAS_TIME.finditer(answer))
    if kind == "person":
        return _has_person_name(answer)
    return True


def lacks(
    question: str, signals: Mapping[str, float], document: str, *, also: Iterable[str] = ()
) -> str | None:
    """Why to refuse whatever the evidence scores, or None: the chosen answer lacks the kind
    of answer asked for (the ``type_found`` signal is 0), or its article never mentions a
    name the question asks about, nor another name of the same country
    (``names_in_article`` below 1: an article that never names Macron does not say what
    Macron said)."""
    if signals.get("type_found", 1.0) < 1.0:
        kind = expected_answer(question) or ""
        what = {"number": "a number", "time": "a date or time", "person": "a person's name"}
        return (
            "The articles do not appear to answer this: the question asks for "
            f"{what.get(kind, 'something specific')}, and the passage that comes closest "
            "gives none."
        )
    if signals.get("names_in_article", 1.0) < 1.0:
        return (
            "The articles do not appear to answer this: the article that comes closest does "
            "not mention " + ", ".join(missing_names(question, document, also=also)) + "."
        )
    return None
