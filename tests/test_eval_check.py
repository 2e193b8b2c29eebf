"""The regression gate, the calibration split, the report sections and the command's wiring,
on small synthetic reports (no model)."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import pytest

from eval import cli
from eval.calibration import calibrate, choose_threshold, in_calibration_part
from eval.dataset import SQUAD_QUESTIONS
from eval.gate import make_baseline, metric_tolerance, run_check
from eval.metrics import Outcome, TextSpan
from eval.render import replace_section
from eval.report import Baseline, Denominators, Report, ReportMeta, build_report


def outcome(
    qid: str,
    rank1: bool,
    hit: bool,
    *,
    unanswerable: bool = False,
    support=0.9,
    threshold: float = 0.0,
):
    gold = () if unanswerable else ("d#1",)
    return Outcome(
        id=qid,
        category="unanswerable" if unanswerable else "factual",
        answerable=not unanswerable,
        gold_paragraphs=gold,
        gold_spans=() if unanswerable else (TextSpan("d", 10, 20),),
        ranked=("d#1", "d#2") if rank1 else ("d#2", "d#1"),
        answer=TextSpan("d", 0, 30) if hit else TextSpan("d", 40, 50),
        support=support,
        n_hits=2,
        exact=True,
        threshold=threshold,
    )


META = ReportMeta(command="rag eval own", date="2026-01-01", model="m", abstain_threshold=0.5)


def report_of(outcomes: list[Outcome]) -> Report:
    return build_report({"hybrid": outcomes}, 0.5, META)


GOOD = [outcome(f"q{i}", True, True) for i in range(40)] + [
    outcome(f"u{i}", True, False, unanswerable=True, support=0.1) for i in range(10)
]


def test_the_same_run_passes() -> None:
    baseline = make_baseline(report_of(GOOD))
    code, text = run_check(baseline, report_of(GOOD))
    assert code == 0 and "check passed" in text


def test_a_worse_run_fails_and_lists_the_changed_questions() -> None:
    baseline = make_baseline(report_of(GOOD))
    worse = copy.copy(GOOD)
    worse[3] = outcome("q3", False, True)  # lost its first rank
    worse[4] = outcome("q4", True, False)  # lost its answer
    for i in range(3):  # three of ten unanswerable questions now answered
        worse[40 + i] = outcome(f"u{i}", True, False, unanswerable=True, support=0.9)
    code, text = run_check(baseline, report_of(worse))
    assert code == 1
    assert "was right, now wrong (5):" in text
    assert "q3" in text and "R@1, hit -> not R@1, hit" in text
    assert "q4" in text and "R@1, hit -> R@1, miss" in text
    assert "u1" in text and "abstained -> answered" in text
    # One question of 40 is within the tolerance; three of ten are not.
    assert "recall@1" not in text.split("FAILED")[1]
    assert "hybrid abstention_recall = 0.7000 is below its floor 0.8" in text


def test_one_flipped_question_never_fails_the_gate() -> None:
    baseline = make_baseline(report_of(GOOD))
    for i in range(len(GOOD)):
        flipped = copy.copy(GOOD)
        q = GOOD[i]
        flipped[i] = (
            outcome(q.id, False, False)
            if q.answerable
            else outcome(q.id, True, False, unanswerable=True, support=0.9)
        )
        assert run_check(baseline, report_of(flipped))[0] == 0, q.id


def test_a_better_run_passes_and_lists_the_fixed_questions() -> None:
    before = copy.copy(GOOD)
    before[0] = outcome("q0", False, False)
    baseline = make_baseline(report_of(before))
    code, text = run_check(baseline, report_of(GOOD))
    assert code == 0
    assert "was wrong, now right (1):" in text and "q0" in text


def test_a_drop_within_tolerance_passes_and_floors_are_value_minus_tolerance() -> None:
    many = [outcome(f"q{i}", True, True) for i in range(100)]
    baseline = make_baseline(report_of(many), tolerance=0.02)
    entries = baseline.modes["hybrid"]
    assert entries["recall@1"].floor == 0.98  # two questions of 100
    assert entries["mrr@10"].floor == 0.98
    assert entries["quote_exactness"].to_dict() == {
        "value": 1.0,
        "tolerance": 0.0,
        "floor": 1.0,
        "target": ">= 1.0",
    }
    assert entries["false_abstention"].ceiling == 0.02
    slightly = copy.copy(many)
    slightly[:2] = [outcome(f"q{i}", False, True) for i in range(2)]
    assert run_check(baseline, report_of(slightly))[0] == 0
    worse = copy.copy(many)
    worse[:3] = [outcome(f"q{i}", False, True) for i in range(3)]
    code, text = run_check(baseline, report_of(worse))
    assert code == 1 and "hybrid recall@1 = 0.9700 is below its floor 0.98" in text


def test_the_tolerance_is_at_least_two_questions() -> None:
    counts = Denominators(all=143, answerable=125, unanswerable=18, refused=17)
    assert metric_tolerance("recall@1", counts, 0.02) == 0.02
    assert metric_tolerance("abstention_recall", counts, 0.02) == 0.1112
    assert metric_tolerance("abstention_precision", counts, 0.02) == 0.1177
    assert metric_tolerance("quote_exactness", counts, 0.02) == 0.0


def test_inexact_quotes_always_fail() -> None:
    baseline = make_baseline(report_of(GOOD))
    bad = copy.copy(GOOD)
    bad[0] = Outcome(**{**vars(GOOD[0]), "exact": False})
    code, text = run_check(baseline, report_of(bad))
    assert code == 1 and "quote_exactness" in text


def test_calibration_split_and_threshold() -> None:
    ids = [f"q{i}" for i in range(200)]
    part = [in_calibration_part(i) for i in ids]
    assert part == [in_calibration_part(i) for i in ids]  # fixed
    assert 70 < sum(part) < 130
    # 20 answerable scores 0.50..0.69: at most 5% (1 question) may fall below the threshold.
    assert choose_threshold([0.5 + i / 100 for i in range(20)], 0.05) == 0.51
    # Outcomes hold margins over the mode's threshold (0.43): confidences 0.50..0.69.
    outcomes = [
        outcome(f"q{i}", True, True, support=0.07 + (i % 20) / 100, threshold=0.43)
        for i in range(40)
    ]
    outcomes += [
        outcome(f"u{i}", True, False, unanswerable=True, support=-0.13, threshold=0.43)
        for i in range(10)
    ]
    result = calibrate(outcomes, "hybrid", "threshold")
    assert result.current_threshold == 0.43 and result.rule == "threshold"
    # The chosen threshold lies among the answerable confidences, above every unanswerable one.
    assert 0.3 < result.threshold <= 0.52
    assert result.calibration["false_abstention"] is not None
    assert result.calibration["false_abstention"] <= 0.05
    assert set(result.calibration_ids).isdisjoint(result.held_out_ids)
    assert result.held_out["abstention_recall"] == 1.0


def test_report_sections_are_replaced_in_place() -> None:
    text = replace_section("", "squad2", "squad table")
    text = replace_section(text, "own", "own v1")
    text = replace_section(text, "own", "own v2")
    assert text.index("own v2") < text.index("squad table")
    assert "own v1" not in text and text.count("<!-- begin:own -->") == 1


def test_register_adds_the_eval_subcommands() -> None:
    parser = argparse.ArgumentParser(prog="rag")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub)
    args = parser.parse_args(["eval", "check", "--quiet"])
    assert args.func is cli.cmd_check and args.check and args.quiet
    assert not args.update_baseline and args.no_write
    args = parser.parse_args(["eval", "own", "--update-baseline", "--calibrate"])
    assert args.func is cli.cmd_own and not args.check and args.update_baseline and args.calibrate
    args = parser.parse_args(["eval", "bench", "x", "--sample", "5", "--distractors"])
    assert args.func is cli.cmd_bench
    assert args.bench == Path("x") and args.sample == 5 and args.distractors
    args = parser.parse_args(["eval", "squad2", "f.json", "--articles", "2"])
    assert args.func is cli.cmd_squad2 and args.squad2 == Path("f.json") and args.articles == 2
    args = parser.parse_args(["eval", "learn-abstention", "--no-write"])
    assert args.func is cli.cmd_learn_abstention and args.no_write
    with pytest.raises(SystemExit):  # the old flags are gone
        parser.parse_args(["eval", "--check"])


def test_plain_eval_runs_the_own_sets(monkeypatch) -> None:
    seen: list[argparse.Namespace] = []
    monkeypatch.setattr(cli, "cmd_own", lambda args: seen.append(args) or 0)
    parser = argparse.ArgumentParser(prog="rag")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval"])
    assert args.func(args) == 0
    assert not seen[0].check and not seen[0].quiet and seen[0].questions is None
    assert seen[0].cache_dir == cli.DEFAULT_CACHE


def test_command_line_names_the_subcommand() -> None:
    assert cli.command_line(["eval", "check", "--quiet"]) == "rag eval check --quiet"
    assert cli.command_line(["bench", "a b"]) == "rag eval bench 'a b'"


def test_reports_and_baselines_keep_their_json_format() -> None:
    """The typed records read the files on disk and write them back byte for byte."""
    for name in ("report.json", "report-squad.json"):
        text = (cli.EVAL_DIR / name).read_text(encoding="utf-8")
        assert Report.from_json(text).to_json() == text, name
    for name in ("baseline.json", "baseline-squad.json"):
        text = (cli.EVAL_DIR / name).read_text(encoding="utf-8")
        assert Baseline.from_json(text).to_json() == text, name


def test_a_baseline_made_from_a_report_round_trips() -> None:
    report = report_of(GOOD)
    assert Report.from_json(report.to_json()) == report
    baseline = make_baseline(report)
    assert Baseline.from_json(baseline.to_json()) == baseline
    assert run_check(Baseline.from_json(baseline.to_json()), report)[0] == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "/nonexistent/retrieval_bench"],
        ["squad2", "/nonexistent/dev-v2.0.json"],
        ["own", "--squad", "/nonexistent/dev-v2.0.json", "--questions", str(SQUAD_QUESTIONS)],
        ["check", "--squad", "/nonexistent/dev-v2.0.json", "--questions", str(SQUAD_QUESTIONS)],
    ],
)
def test_missing_shared_data_skips_with_a_message(argv: list[str], capsys) -> None:
    assert cli.main(argv) == 0
    assert "skipped:" in capsys.readouterr().out
