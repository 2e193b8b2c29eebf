"""Who said what in the evaluation (issue 18): the question file's ``speaker`` field and its
``who_said_what`` questions, the speaker accuracy metric, its floor in the gate, its section of
the report, and the attribution figures' section. No model: the committed question set is
checked against the seed article and its hand-labelled sentences (eval/attribution/seed.jsonl);
the metric's logic on hand-made outcomes. (The seed set runs through the pipeline, in process
and over HTTP, in tests/test_eval_url.py.)"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from core.types import Answer, Quote, SpeakerRef
from eval import cli
from eval.calibration import in_calibration_part
from eval.dataset import (
    DEFAULT_QUESTIONS,
    UNANSWERABLE,
    WHO_SAID_WHAT,
    DatasetError,
    EvalQuestion,
    parse_questions,
    parse_record,
    to_record,
    validate_questions,
)
from eval.gate import make_baseline, run_check
from eval.http import answer_speaker
from eval.metrics import Outcome, TextSpan, speaker_right, summarize, summarize_by_category
from eval.render import attribution_section, markdown_report, who_said_what
from eval.report import QuestionReport, Report, ReportMeta, build_report
from eval.runner import margin
from rag.load import load_data_dir

REPO = Path(__file__).resolve().parent.parent
SEED = "sasse-coalition-of-the-willing"
LABELS = REPO / "eval" / "attribution" / "seed.jsonl"
META = ReportMeta(command="rag eval own", date="2026-01-01", model="m", abstain_threshold=0.5)


# --------------------------------------------------------------------------- the field


def record(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "w1",
        "question": "What did Merz say about German troops?",
        "category": WHO_SAID_WHAT,
        "doc_id": "d",
        "gold_paragraphs": [1],
        "gold_spans": [[0, 10]],
        "answer_text": "0123456789",
        "speaker": "Friedrich Merz",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_a_who_said_what_question_names_its_speaker() -> None:
    q = parse_record(record(speaker="  Friedrich Merz "), 3)
    assert q.answerable and q.speaker == "Friedrich Merz"
    assert to_record(q)["speaker"] == "Friedrich Merz"
    assert parse_record(to_record(q), 3) == q
    with pytest.raises(DatasetError, match=r"line 3 \(w1\): a who_said_what question needs"):
        parse_record(record(speaker=None), 3)
    for bad in ("", "  ", 7):
        with pytest.raises(DatasetError, match="'speaker' must be a non-empty string"):
            parse_record(record(speaker=bad), 3)
    # A refusal: an unanswerable question that names the speaker it asks about.
    refusal = record(
        category=UNANSWERABLE, doc_id=None, gold_paragraphs=[], gold_spans=[], answer_text=""
    )
    q = parse_record(refusal, 4)
    assert not q.answerable and q.speaker == "Friedrich Merz"
    # Other questions name no one, and their records stay as they were.
    plain = parse_record(record(category="factual", speaker=None), 5)
    assert plain.speaker is None and "speaker" not in to_record(plain)


# --------------------------------------------------------------------------- the committed set


def labelled_sentences() -> list[dict[str, object]]:
    return [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines() if line]


def says(label: dict[str, object], speaker: str, author: str) -> bool:
    """Whether the labelled sentence is ``speaker``'s: the author's own voice, or a reported
    statement whose labelled names are the speaker's (the registry joins a coordinated subject,
    "the UK and France", into one speaker named "UK and France")."""
    if label["voice"] == "author":
        return speaker == author
    names = [str(n) for n in label["speaker"]]  # type: ignore[attr-defined]
    return speaker in names or all(n in speaker for n in names)


def test_the_committed_who_said_what_questions_name_the_labelled_speakers() -> None:
    questions = parse_questions(DEFAULT_QUESTIONS)
    (document,) = [d for d in load_data_dir(REPO / "data") if d.id == SEED]
    validate_questions(questions, {SEED: document})
    author = document.meta.author
    labels = [s for s in labelled_sentences() if s["doc_id"] == SEED]
    named = [q for q in questions if q.speaker is not None]
    asked = [q for q in named if q.answerable]
    refusals = [q for q in named if not q.answerable]
    assert {q.category for q in asked} == {WHO_SAID_WHAT}
    assert all(q.speaker for q in questions if q.category == WHO_SAID_WHAT)
    assert len(asked) >= 12 and len(refusals) >= 6
    for half in (True, False):  # both halves hold both kinds
        assert any(in_calibration_part(q.id) == half for q in asked)
        assert any(in_calibration_part(q.id) == half for q in refusals)

    def sentences_in(q: EvalQuestion) -> list[dict[str, object]]:
        spans = [(s.start, s.end) for s in q.gold_spans]
        return [
            s
            for s in labels
            if any(a <= s["sentence"][0] and s["sentence"][1] <= b for a, b in spans)  # type: ignore[index]
        ]

    contrasted = 0
    for q in asked:
        assert q.speaker is not None
        inside = sentences_in(q)
        assert inside, q.id  # every gold span is whole labelled sentences
        # Each acceptable span holds a sentence of the gold speaker.
        for span in q.gold_spans:
            mine = [s for s in inside if span.start <= s["sentence"][0] < span.end]  # type: ignore[index]
            assert any(says(s, q.speaker, author) for s in mine), (q.id, span)
        # Someone else speaks in the same paragraph: the answer must not be theirs.
        numbers = set(q.gold_paragraphs)
        around = [s for s in labels if s["paragraph"] in numbers]
        contrasted += any(not says(s, q.speaker, author) for s in around)
    assert contrasted >= len(asked) // 2
    # Refusals of both kinds: a speaker the article quotes (on something else) and one it never
    # quotes.
    reported = [s for s in labels if s["voice"] == "reported"]
    quoted = [q for q in refusals if any(says(s, q.speaker or "", author) for s in reported)]
    assert quoted and len(quoted) < len(refusals)
    assert all(q.note.startswith("near") for q in refusals)


# --------------------------------------------------------------------------- the metric


def outcome(
    qid: str,
    *,
    gold: str | None = "Friedrich Merz",
    speaker: str | None = "Friedrich Merz",
    answer: tuple[int, int] | None = (0, 30),
    span: tuple[int, int] = (10, 20),
    support: float = 0.9,
    answerable: bool = True,
    category: str = WHO_SAID_WHAT,
) -> Outcome:
    return Outcome(
        id=qid,
        category=category if answerable else UNANSWERABLE,
        answerable=answerable,
        gold_paragraphs=("d#1",) if answerable else (),
        gold_spans=(TextSpan("d", *span),) if answerable else (),
        ranked=("d#1", "d#2"),
        answer=TextSpan("d", *answer) if answer else None,
        support=support,
        n_hits=2,
        exact=True,
        gold_speaker=gold,
        speaker=speaker,
    )


def test_speaker_accuracy_wants_the_speakers_words_or_a_refusal() -> None:
    assert speaker_right(outcome("a"), 0.5)
    # Overlapping the gold sentence is enough (the answer need not contain it).
    assert speaker_right(outcome("a", answer=(15, 40)), 0.5)
    assert not speaker_right(outcome("a", answer=(20, 40)), 0.5)  # touches it, no overlap
    assert not speaker_right(outcome("a", speaker="UK and France"), 0.5)
    assert not speaker_right(outcome("a", speaker=None), 0.5)  # unattributed
    assert not speaker_right(outcome("a", support=0.2), 0.5)  # refused
    assert not speaker_right(outcome("a", answer=None), 0.5)
    assert not speaker_right(Outcome(**{**vars(outcome("a")), "answer": TextSpan("e", 0, 30)}), 0.5)
    # A refusal question is right when refused, whoever the answer would have quoted.
    assert speaker_right(outcome("r", answerable=False, support=0.2), 0.5)
    assert speaker_right(outcome("r", answerable=False, support=-math.inf), -1.0)
    assert not speaker_right(outcome("r", answerable=False, support=0.9), 0.5)
    with pytest.raises(ValueError, match="names no speaker"):
        speaker_right(outcome("x", gold=None), 0.5)


def test_speaker_accuracy_counts_only_the_questions_that_name_a_speaker() -> None:
    items = [
        outcome("w1"),  # right
        outcome("w2", speaker="Gwendolyn Sasse"),  # another speaker's words
        outcome("w3", support=0.2),  # refused
        outcome("r1", answerable=False, support=0.2),  # refused: right
        outcome("f1", gold=None, category="factual"),  # names no one: not counted
        outcome("u1", gold=None, answerable=False, support=0.9),  # not counted
    ]
    m = summarize(items, 0.5)
    assert m["speaker_accuracy"] == pytest.approx(2 / 4)
    assert summarize(items[4:], 0.5)["speaker_accuracy"] is None
    by = summarize_by_category(items, 0.5).by_category
    assert by[WHO_SAID_WHAT]["speaker_accuracy"] == pytest.approx(1 / 3)
    assert by[UNANSWERABLE]["speaker_accuracy"] == 1.0
    assert by["factual"]["speaker_accuracy"] is None


def test_the_outcome_keeps_the_services_decision_on_speaker_questions() -> None:
    merz = SpeakerRef("Friedrich Merz", reported_by="Gwendolyn Sasse")
    quote = Quote(SEED, 5, 2005, 2141, "x", 0.9, speaker=merz, voice="reported")

    def answer(quoted: Quote | None, confidence: float, abstained: bool) -> Answer:
        return Answer("q", quoted, abstained, None, (), confidence=confidence, threshold=0.5)

    # Asked with abstention off (most questions): the raw margin, whatever it is.
    assert margin(answer(quote, 0.3, False), served=False) == pytest.approx(-0.2)
    assert margin(answer(None, -math.inf, True), served=False) == -math.inf
    # Asked as the service asks (who said what): an answer is an answer, a refusal a refusal.
    assert margin(answer(quote, 0.7, False), served=True) == pytest.approx(0.2)
    assert margin(answer(None, 0.3, True), served=True) == pytest.approx(-0.2)
    # "The articles don't report Macron saying anything about this": refused at any threshold.
    assert margin(answer(None, 0.8, True), served=True) == -math.inf
    # Over HTTP the answer's speaker is its JSON's speaker.name.
    assert answer_speaker({"speaker": {"name": "Friedrich Merz", "mention": None}}) == (
        "Friedrich Merz"
    )
    assert answer_speaker({"speaker": None}) is None and answer_speaker({}) is None


# --------------------------------------------------------------------------- report and gate


def speaker_set(wrong: int = 0) -> list[Outcome]:
    """20 who-said-what questions (the first ``wrong`` answered with another speaker's words),
    five refusals, and 30 questions that name no one."""
    items = [
        outcome(f"w{i}", speaker="Putin" if i < wrong else "Friedrich Merz") for i in range(20)
    ]
    items += [outcome(f"r{i}", answerable=False, support=0.1) for i in range(5)]
    items += [outcome(f"f{i}", gold=None, category="factual") for i in range(30)]
    return items


def test_the_gate_holds_the_speaker_accuracy_to_a_floor_of_two_questions() -> None:
    report = build_report({"hybrid": speaker_set()}, 0.5, META)
    mode = report.modes["hybrid"]
    assert mode.overall["speaker_accuracy"] == 1.0 and mode.denominators.speaker == 25
    baseline = make_baseline(report)
    entry = baseline.modes["hybrid"]["speaker_accuracy"]
    assert entry.tolerance == 0.08 and entry.floor == 0.92  # two of 25 questions
    assert entry.target == ">= 0.9"
    assert run_check(baseline, build_report({"hybrid": speaker_set(2)}, 0.5, META))[0] == 0
    code, text = run_check(baseline, build_report({"hybrid": speaker_set(3)}, 0.5, META))
    assert code == 1 and "hybrid speaker_accuracy = 0.8800 is below its floor 0.92" in text
    # The per-question record keeps who was asked for and who answered, and reads back.
    status = report.questions["hybrid"]["w0"]
    assert (status.gold_speaker, status.speaker, status.speaker_right) == (
        "Friedrich Merz",
        "Friedrich Merz",
        True,
    )
    assert Report.from_json(report.to_json()) == report
    plain = report.questions["hybrid"]["f0"].to_dict()
    assert "gold_speaker" not in plain and QuestionReport.from_dict(plain).gold_speaker is None


def test_the_report_section_gives_the_speaker_accuracy_by_half_and_its_misses() -> None:
    items = speaker_set(2)
    report = build_report({"hybrid": items, "accurate": speaker_set()}, 0.5, META)
    questions = {
        o.id: EvalQuestion(o.id, f"question {o.id}?", o.category, None, (), (), "") for o in items
    }
    lines = who_said_what(report, questions)
    text = "\n".join(lines)
    assert lines[0] == "### Who said what (issue 18)"
    assert "the 20 `who_said_what` questions" in text and "the 5 who-said-what refusals" in text
    assert "| hybrid | 0.920 (23/25) |" in text and "| accurate | 1.000 (25/25) |" in text
    tuning = sum(1 for o in items if o.gold_speaker and in_calibration_part(o.id))
    assert f"/{tuning}) |" in text
    assert (
        "| hybrid | w0 |" in text and "| Friedrich Merz | Putin | another speaker's words |" in text
    )
    assert "| accurate | w" not in text
    rows = {(t.mode, t.metric): t for t in report.targets}
    assert rows[("hybrid", "speaker_accuracy")].op == ">="
    assert "| hybrid | speaker_accuracy | 18 | >= 0.9 |" in markdown_report(report, questions, None)
    # A set whose questions name no speaker has no such section.
    assert who_said_what(build_report({"hybrid": items[25:]}, 0.5, META), questions) == []


def test_the_committed_report_and_baseline_hold_the_speaker_accuracy() -> None:
    report = Report.read(cli.EVAL_DIR / "report.json")
    questions = {q.id: q for q in parse_questions(DEFAULT_QUESTIONS)}
    named = {q.id for q in questions.values() if q.speaker is not None}
    baseline = json.loads((cli.EVAL_DIR / "baseline.json").read_text(encoding="utf-8"))
    for mode, data in report.modes.items():
        statuses = report.questions[mode]
        assert {q for q, s in statuses.items() if s.gold_speaker is not None} == named
        right = sum(1 for q in named if statuses[q].speaker_right)
        assert data.overall["speaker_accuracy"] == round(right / len(named), 4)
        assert data.denominators.speaker == len(named)
        assert (
            baseline["modes"][mode]["speaker_accuracy"]["value"] == data.overall["speaker_accuracy"]
        )
        assert any(t.mode == mode and t.metric == "speaker_accuracy" for t in report.targets)
    squad = Report.read(cli.EVAL_DIR / "report-squad.json")  # names no speaker
    assert all(m.overall["speaker_accuracy"] is None for m in squad.modes.values())
    report_md = (cli.EVAL_DIR / "report.md").read_text(encoding="utf-8")
    assert "### Who said what (issue 18)" in report_md
    assert "<!-- begin:attribution -->" in report_md


# --------------------------------------------------------------------------- attribution


def test_the_attribution_section_reads_the_scorers_figures() -> None:
    report = json.loads((LABELS.parent / "report.json").read_text(encoding="utf-8"))
    parts = report["parts"]
    text = attribution_section(parts, "rag eval attribution", "today", report.get("timing"))
    assert text.startswith("## Speaker attribution (issue 18)")
    assert "Command: `rag eval attribution` — run today" in text
    assert "python -m eval.attribution" in text
    seed = parts["seed"]
    assert f"| seed | {seed['sentences']} | {seed['gold_reported']} |" in text
    correct = sum(p["correct"] for p in parts.values())
    predicted = sum(p["predicted_reported"] for p in parts.values())
    gold = sum(p["gold_reported"] for p in parts.values())
    assert f"| precision | >= 0.9 | {correct / predicted:.3f} |" in text
    assert f"| recall | >= 0.85 | {correct / gold:.3f} |" in text
    # the targets are also shown on the unread held-out parts alone, pooled
    held = [parts["heldout6"], parts["heldout7"]]
    recall = sum(p["correct"] for p in held) / sum(p["gold_reported"] for p in held)
    count = sum(p["sentences"] for p in held)
    assert (
        f"| held-out parts only (heldout6, heldout7: {count} sentences) | recall | >= 0.85 | "
        in text
    )
    assert f"| {recall:.3f} | {'yes' if recall >= 0.85 else '**no**'} |" in text
    if "timing" in report:
        assert f"{report['timing']['ratio_with_attribution']}x today's" in text


def test_rag_eval_attribution_is_a_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="rag")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", "attribution", "--no-write"])
    assert args.func is cli.cmd_attribution and args.no_write and not args.timing
